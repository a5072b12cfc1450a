"""Leave-one-collection-out evaluation of fusion and of the relevance filter.

Everything here is fitted on some collections and measured on another one it never saw:
for every ordered pair (A, B) of the available collections, fusion parameters, the calibrator
and its threshold, and every baseline's parameter are chosen on A and scored on B.

Per collection the inputs are cached candidates (:mod:`lucerag.eval.collections`): the judged
queries against their own corpus (answerable), and unanswerable queries against it: the other
collections' queries (nothing in this corpus answers them) and the team's written out-of-domain
questions (tests/data/ood_queries.txt; the disjoint ood_train.txt serves as negatives when fitting).

Fusion metrics: nDCG@10 of BM25, dense, fixed convex (w = 0.8, the old default), RRF (k = 60),
convex with the weight fitted on A, adaptive fusion fitted on A, and the per-query oracle (best
weight per query on a 0.05 grid); "gap closed" = (fused - best single view) / (oracle - best view).

Filter metrics on B: macro F1 over the judged queries (precision/recall of the kept set within the
fused top ``depth``), share of judged queries answered with nothing, share of unanswerable queries
answered with nothing, ECE over every candidate of the judged and unanswerable queries, and the
share of probe queries refused: keyword queries drawn from B's judged queries
(:mod:`lucerag.eval.keywords`; answerable) and, when given, nonsense queries (emoji, other scripts,
made-up words; unanswerable). The mixture model is reported without and with its lexical evidence
(:mod:`lucerag.search.lexical`), which opens the gate for a query whose terms all occur in its top BM25 passage.
Baselines: fixed top-k, raw cosine threshold, gap cut (largest drop in fused score), and the
peers' ``min_score`` on min-max fused scores; each parameter chosen for best F1 on A.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lucerag.search.adaptive import AdaptiveWeights, list_features
from lucerag.search.calibration import FEATURES, Calibrator, features, gate_from_negatives, mixture_calibrator
from lucerag.search.fusion import Candidates, fuse, order

DENSE_TOP = FEATURES.index("dense_top")
WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.05), 2)
BM25_WEIGHTS = np.round(np.arange(0.0, 0.2001, 0.01), 2)  # anchored fusion: cosine units per BM25 sd


# -- ranking metrics ---------------------------------------------------------------------------

def ndcg(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (trec_eval's ndcg_cut), judged grades >= 1 count."""
    gains = np.array([max(judged.get(d, 0), 0) for d in ranked[:k]], dtype=np.float64)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(np.array([g for g in judged.values() if g > 0], dtype=np.float64))[::-1][:k]
    idcg = float((ideal * disc[:len(ideal)]).sum())
    return float((gains * disc[:len(gains)]).sum() / idcg) if idcg > 0 else 0.0


def ranked_ids(c: Candidates, scores: np.ndarray, depth: int) -> list[str]:
    return [c.ids[i] for i in order(c, scores, depth)[:10]]


@dataclass
class Judged:
    """One collection's judged queries with their candidates, and unanswerable query sets on its corpus."""

    name: str
    cands: dict[str, Candidates]
    texts: dict[str, str]
    qrels: dict[str, dict[str, int]]
    unanswerable: dict[str, tuple[dict[str, Candidates], dict[str, str]]] = field(default_factory=dict)
    negatives: tuple[dict[str, Candidates], dict[str, str]] | None = None  # for fitting only
    pseudo: tuple[dict[str, Candidates], dict[str, str], dict] | None = None  # label-free, own corpus
    probes: dict[str, tuple[dict[str, Candidates], dict[str, str]]] = field(default_factory=dict)  # refusals only
    covered: dict[str, bool | None] = field(default_factory=dict)  # query text -> lexical evidence here


def view_scores(j: Judged, how: str, depth: int, **kw) -> np.ndarray:
    """nDCG@10 per judged query (array in j.cands order) for one way of scoring candidates."""
    out = []
    for qid, c in j.cands.items():
        if how == "bm25":
            s = c.bm25.astype(np.float64)
        elif how == "dense":
            s = c.dense.astype(np.float64)
        elif how == "adaptive":
            from lucerag.search.adaptive import adaptive_fuse

            s = adaptive_fuse(c, kw["params"], depth)
        else:
            s = fuse(c, how, depth=depth, **kw)
        out.append(ndcg(ranked_ids(c, s, depth), j.qrels.get(qid, {})))
    return np.array(out)


def weight_matrix(j: Judged, depth: int) -> np.ndarray:
    """nDCG@10 (queries x WEIGHTS) of min-max convex fusion at each dense weight."""
    return np.column_stack([view_scores(j, "convex", depth, dense_weight=float(w), norm="minmax")
                            for w in WEIGHTS])


def fit_fixed_weight(train: list[Judged], depth: int) -> float:
    """The single convex weight best on the training collections (mean of per-collection means)."""
    means = np.mean([weight_matrix(j, depth).mean(axis=0) for j in train], axis=0)
    return float(WEIGHTS[int(np.argmax(means))])


def fit_anchored_weight(train: list[Judged], depth: int) -> float:
    """The anchored fusion's BM25 weight best on the training collections (mean of per-collection
    means of nDCG@10 over BM25_WEIGHTS)."""
    means = np.mean([np.column_stack([view_scores(j, "anchored", depth, bm25_weight=float(v))
                                      for v in BM25_WEIGHTS]).mean(axis=0) for j in train], axis=0)
    return float(BM25_WEIGHTS[int(np.argmax(means))])


def _phis(j: Judged, depth: int) -> np.ndarray:
    return np.array([list_features(c, depth) for c in j.cands.values()])


GRID = {"a": np.arange(-4.0, 4.01, 0.25), "b": np.arange(-1.0, 1.01, 0.125),
        "c": np.arange(-3.0, 3.01, 0.25), "d": np.arange(-8.0, 8.01, 0.5)}


def fit_adaptive(train: list[Judged], depth: int, sweeps: int = 4) -> AdaptiveWeights:
    """Coordinate ascent over GRID maximising the mean over training collections of mean nDCG@10
    (per-query nDCG at each 0.05 weight step, the predicted weight rounded to the nearest step).
    Starts from the best fixed weight (b = c = d = 0); ties keep the simpler, earlier value."""
    mats = [weight_matrix(j, depth) for j in train]
    phis = [_phis(j, depth) for j in train]

    def score(p: AdaptiveWeights) -> float:
        total = 0.0
        for m, ph in zip(mats, phis):
            col = np.clip(np.rint(p.weights(ph) / 0.05).astype(int), 0, len(WEIGHTS) - 1)
            total += m[np.arange(len(m)), col].mean()
        return total / len(mats)

    best = max((AdaptiveWeights(a=float(a)) for a in GRID["a"]), key=score)
    best_s = score(best)
    for _ in range(sweeps):
        improved = False
        for name in ("b", "c", "d", "a"):
            for v in GRID[name]:
                p = AdaptiveWeights(**{**best.as_dict(), name: float(v)})
                s = score(p)
                if s > best_s + 1e-6:
                    best, best_s, improved = p, s, True
        if not improved:
            break
    return best


def fusion_report(j: Judged, depth: int, fixed_w: float, params: AdaptiveWeights, lam: float) -> dict:
    m = weight_matrix(j, depth)
    bm25, dense = float(view_scores(j, "bm25", depth).mean()), float(view_scores(j, "dense", depth).mean())
    oracle = float(m.max(axis=1).mean())
    means: dict[str, float] = {
        "bm25": bm25, "dense": dense,
        "convex w=0.8": view_scores(j, "convex", depth, dense_weight=0.8, norm="minmax").mean(),
        "rrf k=60": view_scores(j, "rrf", depth, rrf_k=60).mean(),
        "convex (fitted w)": view_scores(j, "convex", depth, dense_weight=fixed_w,
                                                          norm="minmax").mean(),
        "adaptive (fitted)": view_scores(j, "adaptive", depth, params=params).mean(),
        "anchored (fitted bm25 weight)": view_scores(j, "anchored", depth, bm25_weight=lam).mean(),
        "oracle per query": oracle,
    }
    best_view = max(bm25, dense)
    gap = oracle - best_view
    rows: dict[str, float | None] = {k: round(float(v), 4) for k, v in means.items()}
    for name in ("convex (fitted w)", "adaptive (fitted)", "anchored (fitted bm25 weight)"):
        rows[f"{name}: margin over best view"] = round(means[name] - best_view, 4)
        rows[f"{name}: oracle gap closed"] = round((means[name] - best_view) / gap, 3) if gap > 0 else None
    rows["fitted w"] = fixed_w
    rows["fitted bm25 weight"] = lam
    return rows


# -- the filter ---------------------------------------------------------------------------------

@dataclass
class Labelled:
    qid: str
    answerable: bool
    fused: np.ndarray      # fused score of each ranked candidate (best first, top depth)
    x: np.ndarray          # features (ranked order)
    labels: np.ndarray     # 0/1 (ranked order)
    relevant: int          # relevant passages in the candidate list
    covered: bool | None = None  # lexical evidence: its top BM25 passage holds every query term (lucerag.search.lexical)


def label(cands: dict[str, Candidates], texts: dict[str, str], qrels: dict, depth: int, fusion: dict,
          answerable: bool, covered: dict[str, bool | None] | None = None) -> list[Labelled]:
    out = []
    for qid, c in cands.items():
        f = _fuse(c, fusion, depth)
        o = order(c, f, depth)[:depth]
        judged = qrels.get(qid, {})
        y = np.array([1 if judged.get(c.ids[i], 0) >= 1 else 0 for i in o])
        x = features(c, f, texts[qid], depth)[o]
        out.append(Labelled(qid, answerable, f[o], x, y, int(y.sum()), (covered or {}).get(texts[qid])))
    return out


def _fuse(c: Candidates, fusion: dict, depth: int) -> np.ndarray:
    if fusion.get("method") == "adaptive":
        from lucerag.search.adaptive import adaptive_fuse

        return adaptive_fuse(c, AdaptiveWeights(**fusion.get("params", {})), depth)
    return fuse(c, fusion.get("method", "convex"), dense_weight=fusion.get("dense_weight", 0.8),
                norm=fusion.get("norm", "minmax"), rrf_k=fusion.get("rrf_k", 60), depth=depth,
                bm25_weight=fusion.get("bm25_weight", 0.06))


def prf(keep: np.ndarray, labels: np.ndarray) -> float:
    """F1 of one query's kept set (an empty answer to a query with no relevant candidate scores 1)."""
    returned, relevant = int(keep.sum()), int(labels.sum())
    tp = int((keep & (labels == 1)).sum())
    if relevant == 0:
        return 1.0 if returned == 0 else 0.0
    if tp == 0:
        return 0.0
    p, r = tp / returned, tp / relevant
    return 2 * p * r / (p + r)


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    from lucerag.eval.filter import ece as _ece

    return _ece(p, y, bins)


def _cut_report(keeps_ans, ans, keeps_un: dict, keeps_probe: dict | None = None) -> dict:
    """F1 over the judged queries, share of them answered with nothing, and the share of
    unanswerable queries answered with nothing: over all sets, and per set (``empty:<set>``);
    the share of each probe set answered with nothing (``refused:<set>``)."""
    every = [k for ks in keeps_un.values() for k in ks]
    out = {"f1": round(float(np.mean([prf(k, q.labels) for k, q in zip(keeps_ans, ans)])), 4),
           "answerable_empty": round(float(np.mean([not k.any() for k in keeps_ans])), 4),
           "unanswerable_empty": round(float(np.mean([not k.any() for k in every])), 4) if every else None}
    for name, ks in keeps_un.items():
        out[f"empty:{name}"] = round(float(np.mean([not k.any() for k in ks])), 4) if ks else None
    for name, ks in (keeps_probe or {}).items():
        out[f"refused:{name}"] = round(float(np.mean([not k.any() for k in ks])), 4) if ks else None
    return out


def _best_param(values, keep_fn, train_ans, train_neg):
    """Parameter with best F1 over the training answerable queries plus negatives."""
    qs = train_ans + train_neg
    best_v, best_s = None, -1.0
    for v in values:
        s = np.mean([prf(keep_fn(q, v), q.labels) for q in qs])
        if s > best_s:
            best_v, best_s = v, s
    return best_v


BASELINES = {
    "fixed top-k": (range(1, 101), lambda q, k: np.arange(len(q.labels)) < k),
    "raw cosine threshold": (np.round(np.arange(-0.2, 1.0, 0.01), 2), lambda q, t: q.x[:, 0] >= t),
    # the peers' min_score: a threshold on the fused scores min-max normalised over the query's list
    "min_score on min-max": (np.round(np.arange(0.0, 1.0001, 0.01), 2),
                             lambda q, t: _minmax(q.fused) >= t),
}


def _minmax(s: np.ndarray) -> np.ndarray:
    span = s.max() - s.min() if len(s) else 0.0
    return (s - s.min()) / span if span > 0 else np.ones_like(s)


def gap_keep(q: Labelled) -> np.ndarray:
    s = q.fused
    cut = int(np.argmax(s[:-1] - s[1:])) + 1 if len(s) > 1 else len(s)
    return np.arange(len(s)) < cut


def fit_filter(train_ans: list[Labelled], train_neg: list[Labelled], **kw) -> Calibrator:
    """The calibrator as ``lucerag calibrate`` fits it (lucerag.eval.filter.fit_calibrator):
    logistic model on every candidate, threshold for best mean F1 over the training queries."""
    from lucerag.eval.filter import fit_calibrator

    return fit_calibrator(train_ans + train_neg, **kw)  # type: ignore[arg-type]  # uses .x and .labels only


def filter_report(cal: Calibrator, train_ans, train_neg, test_ans, test_un, baselines: bool = True,
                  name: str = "calibrated filter", probes: dict | None = None) -> dict:
    """Rows of the filter table measured on ``test_ans`` (judged) and ``test_un`` ({set name:
    unanswerable queries}): the calibrator ``cal`` under ``name`` and, with ``baselines``, each
    baseline with its parameter chosen on ``train_ans`` + ``train_neg``; each row also gives the
    share of every set of ``probes`` ({set name: queries}) answered with nothing."""
    rows: dict = {}
    probes = probes or {}
    un_all = [q for qs in test_un.values() for q in qs]
    probs_ans = [cal.probabilities(q.x, q.covered) for q in test_ans]
    probs_un = [cal.probabilities(q.x, q.covered) for q in un_all]

    def cut(q):
        return cal.cut(q.x, covered=q.covered)

    rows[name] = _cut_report([cut(q) for q in test_ans], test_ans,
                             {k: [cut(q) for q in qs] for k, qs in test_un.items()},
                             {k: [cut(q) for q in qs] for k, qs in probes.items()})
    rows[name]["ece"] = round(ece(np.concatenate(probs_ans + probs_un),
                                  np.concatenate([q.labels for q in test_ans + un_all])), 4)
    rows[name]["ece_answerable"] = round(ece(np.concatenate(probs_ans),
                                             np.concatenate([q.labels for q in test_ans])), 4)
    rows[name]["threshold"] = cal.threshold
    if cal.gate is not None:
        rows[name]["gate"] = cal.gate
    if not baselines:
        return rows
    for bname, (values, keep) in BASELINES.items():
        v = _best_param(values, keep, train_ans, train_neg)
        rows[bname] = _cut_report([keep(q, v) for q in test_ans], test_ans,
                                  {k: [keep(q, v) for q in qs] for k, qs in test_un.items()},
                                  {k: [keep(q, v) for q in qs] for k, qs in probes.items()})
        rows[bname]["param"] = float(v)
    rows["gap cut"] = _cut_report([gap_keep(q) for q in test_ans], test_ans,
                                  {k: [gap_keep(q) for q in qs] for k, qs in test_un.items()},
                                  {k: [gap_keep(q) for q in qs] for k, qs in probes.items()})
    return rows


# -- the leave-one-collection-out run -----------------------------------------------------------

def load_judged(names: list[str], data_root, work_dir, depth: int = 100, ood=None, negatives=None,
                pseudo: int = 200, progress: bool = False, log=print, nonsense=None) -> dict[str, Judged]:
    """Indexes (built once under ``work_dir``) and cached candidates for every collection in
    ``names``: its judged queries, the other collections' queries and ``ood`` questions as
    unanswerable sets, ``negatives`` (unanswerable questions for fitting only), and as probes its
    keyword queries (:func:`lucerag.eval.keywords.keyword_queries`) and the ``nonsense`` queries;
    the lexical evidence of every query on every corpus."""
    from pathlib import Path

    from lucerag.eval.collections import ensure_index, gather, load_collection
    from lucerag.eval.filter import read_query_lines
    from lucerag.eval.keywords import keyword_queries
    from lucerag.search.lexical import TermCoverage
    from lucerag.search.retriever import Retriever

    work_dir = Path(work_dir)
    cols = {n: load_collection(n, data_root, work_dir) for n in names}
    ood_q = read_query_lines(ood) if ood else {}
    neg_q = read_query_lines(negatives) if negatives else {}
    nonsense_q = read_query_lines(nonsense) if nonsense else {}
    out = {}
    for name, c in cols.items():
        log(f"{name}: index {ensure_index(c, progress)}")
        cache = work_dir / "cache"
        with Retriever.from_index(c.index) as r:
            j = Judged(name, gather(r, c.queries, depth, cache, f"{name}-on-{name}"), c.queries, c.qrels)
            for other, oc in cols.items():
                if other != name:
                    j.unanswerable[other] = (gather(r, oc.queries, depth, cache, f"{other}-on-{name}"), oc.queries)
            if ood_q:
                j.unanswerable["ood"] = (gather(r, ood_q, depth, cache, f"ood-on-{name}"), ood_q)
            if neg_q:
                j.negatives = (gather(r, neg_q, depth, cache, f"negatives-on-{name}"), neg_q)
            if pseudo:
                from lucerag.eval.pseudo import pseudo_queries

                pq, pqrels = pseudo_queries(r.dense_index, pseudo)
                j.pseudo = (gather(r, pq, depth, cache, f"pseudo-on-{name}"), pq, pqrels)
            kw = keyword_queries(c.queries, c.qrels, r.bm25_index)
            j.probes["keyword"] = (gather(r, kw, depth, cache, f"keywords-on-{name}"), kw)
            if nonsense_q:
                j.probes["nonsense"] = (gather(r, nonsense_q, depth, cache, f"nonsense-on-{name}"), nonsense_q)
            coverage = TermCoverage(r.bm25)
            sets = [(j.cands, c.queries), *j.unanswerable.values(), *j.probes.values()]
            for cands, texts in sets + ([j.negatives] if j.negatives else []):
                for qid, cand in cands.items():
                    j.covered[texts[qid]] = coverage.covered(texts[qid], float(cand.bm25.max()) if len(cand) else 0.0)
        out[name] = j
    return out


def _labelled(j: Judged, fusion: dict, depth: int):
    ans = label(j.cands, j.texts, j.qrels, depth, fusion, True, j.covered)
    neg = label(*j.negatives, {}, depth, fusion, False, j.covered) if j.negatives else []
    un = {name: label(cands, texts, {}, depth, fusion, False, j.covered)
          for name, (cands, texts) in j.unanswerable.items()}
    return ans, neg, un


def _probes(j: Judged, fusion: dict, depth: int) -> dict[str, list[Labelled]]:
    """The probe sets (keyword, nonsense) of ``j``, labelled without judgments (refusals only)."""
    return {name: label(cands, texts, {}, depth, fusion, name == "keyword", j.covered)
            for name, (cands, texts) in j.probes.items()}


def leave_one_out(judged: dict[str, Judged], depth: int = 100) -> dict:
    """For every collection B: fit on all the others, measure on B. Returns {B: report}."""
    report = {}
    for test_name, test in judged.items():
        train = [j for n, j in judged.items() if n != test_name]
        fixed_w = fit_fixed_weight(train, depth)
        params = fit_adaptive(train, depth)
        lam = fit_anchored_weight(train, depth)
        # the filter is measured under the fusion lucerag ships: anchored, BM25 weight fitted on A
        fusion = {"method": "anchored", "bm25_weight": lam, "depth": depth}
        t_ans, t_neg = [], []
        for j in train:
            a, n, _ = _labelled(j, fusion, depth)
            t_ans += a
            t_neg += n
        cal = fit_filter(t_ans, t_neg)
        ans, test_neg, un = _labelled(test, fusion, depth)
        probes = _probes(test, fusion, depth)
        filters = filter_report(cal, t_ans, t_neg, ans, un, probes=probes)
        # the mixture model: nothing fitted on labels; its answerability gate comes from the written
        # unanswerable questions (ood_train) searched on a corpus: B's own (label-free adaptation,
        # what `lucerag calibrate --negatives` does on a user's index), or A's for comparison; each
        # without and with the lexical evidence (a query whose terms all occur in its top BM25 passage)
        recorded = {**fusion}
        for whose, neg in (("B", test_neg), ("A", t_neg)):
            if not neg:
                continue
            gate = gate_from_negatives(q.x[0, DENSE_TOP] for q in neg)
            for lexical, what in ((False, "mixture"), (True, "mixture + lexical evidence")):
                mix = mixture_calibrator(gate, fusion=recorded, lexical=lexical)
                filters |= filter_report(mix, [], [], ans, un, baselines=False, probes=probes,
                                         name=f"{what}, gate from {whose}'s negatives")
        if test.pseudo is not None:
            # adapted to B's corpus without B's labels: pseudo-queries from B's own passages
            # (+ the written negatives searched on B) join A's judged queries
            pseudo = label(*test.pseudo, depth, fusion, True)
            adapted = fit_filter(t_ans + pseudo, t_neg + test_neg)
            filters |= filter_report(adapted, [], [], ans, un, baselines=False, name="filter + pseudo-queries",
                                     probes=probes)
        report[test_name] = {
            "fitted_on": [j.name for j in train],
            "queries": len(ans), "unanswerable": {k: len(v) for k, v in un.items()},
            "probes": {k: len(v) for k, v in probes.items()},
            "fusion": fusion_report(test, depth, fixed_w, params, lam),
            "adaptive_params": params.as_dict(),
            "filter": filters,
        }
    return report


def markdown(report: dict) -> str:
    """The leave-one-collection-out tables (fusion, filter) as markdown."""
    names = list(report)
    rows = list(next(iter(report.values()))["fusion"])
    lines = ["| nDCG@10 | " + " | ".join(f"{n} (fitted on {', '.join(report[n]['fitted_on'])})" for n in names) + " |",
             "| --- |" + " --- |" * len(names)]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(str(report[n]["fusion"][r]) for n in names) + " |")
    out = "\n".join(lines) + "\n\n"
    probes = sorted({k for n in names for k in report[n].get("probes", {})})
    lines = ["| measured on | cut-off | F1 | answerable empty | unanswerable empty: all | other collection's "
             "queries | written questions | ECE | ECE judged only |" + "".join(f" {p} refused |" for p in probes),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + " --- |" * len(probes)]

    def pct(v) -> str:
        return f"{v:.2%}" if v is not None else ""

    for n in names:
        for cut, r in report[n]["filter"].items():
            e = f"{r['ece']:.4f} | {r['ece_answerable']:.4f}" if "ece" in r else " | "
            cross = [v for k, v in r.items() if k.startswith("empty:") and k != "empty:ood" and v is not None]
            lines.append(f"| {n} | {cut} | {r['f1']:.4f} | {r['answerable_empty']:.2%} | "
                         f"{r['unanswerable_empty']:.2%} | {pct(cross[0]) if len(cross) == 1 else ''} | "
                         f"{pct(r.get('empty:ood'))} | {e} |" + "".join(f" {pct(r.get(f'refused:{p}'))} |"
                                                                        for p in probes))
    return out + "\n".join(lines) + "\n"


def fit_defaults(judged: dict[str, Judged], encoder_manifest, depth: int = 100,
                 model: str = "mixture") -> tuple[float, Calibrator]:
    """The anchored fusion's BM25 weight and the calibrator fitted on every collection in ``judged`` (what lucerag
    ships), the calibrator recording the fusion and encoder it was fitted under.

    ``model="mixture"`` (the default: it won held out, see docs/fusion-and-filter.md): the
    answerability gate is the LOWEST of the collections' gates (each from the negatives searched on
    that corpus), so no collection's answerable queries are refused for the gate's sake; a user's
    own gate comes from ``lucerag calibrate --model mixture --negatives``. ``"logistic"``: the
    logistic model fitted on all judged queries and negatives."""
    from lucerag.config import FusionConfig

    train = list(judged.values())
    w = fit_anchored_weight(train, depth)
    fusion = {"method": "anchored", "bm25_weight": w, "depth": depth}
    ans, neg, gates = [], [], []
    for j in train:
        a, n, _ = _labelled(j, fusion, depth)
        ans += a
        neg += n
        if n:
            gates.append(gate_from_negatives(q.x[0, DENSE_TOP] for q in n))
    m = encoder_manifest
    recorded = FusionConfig(**fusion).model_dump()
    info = dict(encoder=m.name, encoder_precision=m.precision, encoder_recipe=m.recipe, fusion=recorded)
    if model == "mixture":
        if not gates:
            raise ValueError("the mixture calibrator needs negatives (unanswerable questions) on each collection")
        cal = mixture_calibrator(min(gates), gate_from="corpus", queries=len(neg), **info,
                                 trained_on="gate: lowest of " + ", ".join(
                                     f"{j.name} {g}" for j, g in zip(train, gates)) + " (lucerag bench transfer)")
        return w, cal
    cal = fit_filter(ans, neg, **info,
                     trained_on=" + ".join(j.name for j in train) + " (lucerag bench transfer)")
    return w, cal
