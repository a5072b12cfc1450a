"""Tried and dropped: cut rules for the mixture filter and variants of anchored fusion, measured
leave-one-collection-out (``lucerag bench transfer-ablation``; results in docs/fusion-and-filter.md).

Each variant has at most one parameter. For every ordered pair (A, B) of collections it is chosen on A and
measured on B; the best value on B itself ("B in sample") is reported too, as the ceiling no rule
of that family can pass on B however it is fitted.

Cut rules (all label-free on B; each changes only which of the fused top ``depth`` an answerable
query keeps, the answerability gate is the mixture's, set from the written negatives on B's corpus):

- ``mixture``: the shipped rule (mixture posterior >= 0.5, at least the best candidate);
- ``gap/sd``, ``gap/median spacing``, ``gap share of kept range``: inside the mixture's kept set,
  cut at its largest drop between consecutive scores when that drop, divided by the fitted relevant
  Gaussian's standard deviation / by the median drop of the kept set / by the kept set's whole
  range, exceeds the parameter: a drop improbably large for one cluster marks a separate top one;
- ``gap spacing test``: the same drop on the fitted Gaussian's probability scale: the kept scores
  mapped through its CDF are uniform on an interval under the model, and the largest of m uniform
  spacings exceeds a share x of the interval with probability at most m (1 - x)^(m - 1) (the first
  term of the exact union bound); cut when -log of that bound exceeds the parameter;
- ``sd floor``: the mixture refitted with the Gaussian's floor at this many list standard deviations;
- ``expected count``: keep round(expected number of relevant), min with the posterior cut;
- agreement of the views (Manmatha et al. fitted one model per search engine to combine them): a
  mixture on the dense cosines and one on BM25 next to the fused one; keep what all three call
  relevant, or where the product of the three posteriors reaches 0.5.

Fusion variants: ``cosine + w * t(bm25)`` for transforms ``t`` of the BM25 scores (z-score over the
head, the shipped one; z-score over BM25's own top ``depth``; clipped z-scores; robust z-score with
median and MAD; min-max), and ``w = a * exp(b * standardised feature)`` with a per-query weight from a
label-free list feature (lucerag.search.adaptive.list_features), both fitted on A.
"""

from __future__ import annotations

import numpy as np

from lucerag.eval.transfer import Judged, Labelled, _labelled, fit_anchored_weight, gap_keep, ndcg, prf, ranked_ids
from lucerag.search.calibration import FEATURES, gate_from_negatives
from lucerag.search.fusion import Candidates, head, normalise
from lucerag.search.scoredist import ScoreMixture, fit_mixture

DENSE_TOP = FEATURES.index("dense_top")
NONE = np.array([np.nan])  # the parameter grid of a rule without a parameter


# -- cut rules ------------------------------------------------------------------------------------

def mixture_count(s: np.ndarray, m: ScoreMixture) -> int:
    """How many of ``s`` (fused scores, best first) the shipped mixture rule keeps (>= 1)."""
    return max(1, int((m.posterior(s) >= 0.5).sum()))


def gap_in_kept(s: np.ndarray, m: ScoreMixture, k: int, stat: str, tau: float) -> int:
    """The kept count after the gap rule ``stat`` (``sd``, ``median``, ``range`` or ``uniform``) with
    threshold ``tau`` inside the first ``k`` scores of ``s`` (best first): the position of the largest
    drop when its statistic exceeds ``tau``, else ``k``. Raises ValueError for an unknown ``stat``."""
    if k < 2:
        return k
    top = s[:k]
    drops = top[:-1] - top[1:]
    j = int(np.argmax(drops))
    if stat == "sd":
        value = drops[j] / m.sd
    elif stat == "median":
        value = drops[j] / max(float(np.median(drops)), 1e-12) if k >= 3 else np.inf
    elif stat == "range":
        value = drops[j] / max(float(top[0] - top[-1]), 1e-12)
    elif stat == "uniform":
        from scipy.stats import norm

        u = norm.cdf((top - m.shift - m.mean) / m.sd)
        width = max(1.0 - float(u[-1]), 1e-12)
        du = u[:-1] - u[1:]
        j = int(np.argmax(du))
        bound = min(1.0, k * (1.0 - du[j] / width) ** (k - 1))
        value = -np.log(max(bound, 1e-300))
    else:
        raise ValueError(f"unknown gap statistic {stat!r}: use sd, median, range or uniform")
    return j + 1 if value > tau else k


CUT_RULES = {
    "gap/sd": ("sd", np.round(np.arange(0.0, 3.01, 0.1), 2)),
    "gap/median spacing": ("median", np.arange(1.0, 40.0, 1.0)),
    "gap share of kept range": ("range", np.round(np.arange(0.0, 1.001, 0.05), 2)),
    "gap spacing test": ("uniform", np.arange(0.0, 10.01, 0.5)),
}
SD_FLOORS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def _answerable_f1(ans: list[Labelled], gate: float, counts: np.ndarray) -> float:
    """Macro F1 over judged queries keeping the first ``counts[i]`` of query i, nothing under the gate."""
    f = []
    for q, k in zip(ans, counts):
        keep = np.arange(len(q.labels)) < (k if q.x[0, DENSE_TOP] >= gate else 0)
        f.append(prf(keep, q.labels))
    return float(np.mean(f))


def _masks_f1(ans: list[Labelled], gate: float, masks: list[np.ndarray]) -> float:
    """Macro F1 over judged queries keeping ``masks[i]`` (plus the best candidate) of query i, nothing
    under the gate."""
    f = []
    for q, mask in zip(ans, masks):
        keep = mask.copy()
        keep[0] = True
        f.append(prf(keep & (q.x[0, DENSE_TOP] >= gate), q.labels))
    return float(np.mean(f))


def _view_posterior(scores: np.ndarray) -> np.ndarray:
    return fit_mixture(scores).posterior(scores) if scores.std() > 0 else np.ones(len(scores))


def cut_curves(ans: list[Labelled], gate: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{rule: (parameter grid, F1 at each value)} on one collection's judged queries."""
    fits = [fit_mixture(q.fused) for q in ans]
    base = np.array([mixture_count(q.fused, m) for q, m in zip(ans, fits)])
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "mixture (shipped)": (np.array([0.5]), np.array([_answerable_f1(ans, gate, base)]))}
    for name, (stat, grid) in CUT_RULES.items():
        f1 = [_answerable_f1(ans, gate, np.array([gap_in_kept(q.fused, m, k, stat, t)
                                                  for q, m, k in zip(ans, fits, base)])) for t in grid]
        out[name] = (grid, np.array(f1))
    floors = []
    for floor in SD_FLOORS:
        floors.append(_answerable_f1(ans, gate, np.array([mixture_count(q.fused, fit_mixture(q.fused, floor))
                                                         for q in ans])))
    out["sd floor"] = (np.array(SD_FLOORS), np.array(floors))
    # agreement of the views: each view's own mixture (dense cosines; BM25 relative to the query's best)
    # next to the fused one; keeps the candidates all three call relevant / whose product reaches 0.5
    # (not prefixes of the fused order), always the best fused candidate
    agree, product = [], []
    for q, m in zip(ans, fits):
        post = np.array([m.posterior(q.fused)] + [_view_posterior(q.x[:, FEATURES.index(v)])
                                                  for v in ("dense", "bm25_rel")])
        agree.append(post.min(axis=0) >= 0.5)
        product.append(post.prod(axis=0) >= 0.5)
    out["all three views' posteriors >= 0.5"] = (NONE, np.array([_masks_f1(ans, gate, agree)]))
    out["product of the three posteriors >= 0.5"] = (NONE, np.array([_masks_f1(ans, gate, product)]))
    expected = np.array([max(1, min(k, round(m.expected_relevant))) for m, k in zip(fits, base)])
    out["expected count"] = (NONE, np.array([_answerable_f1(ans, gate, expected)]))
    gap = np.array([int(gap_keep(q).sum()) for q in ans])
    out["gap cut (baseline)"] = (NONE, np.array([_answerable_f1(ans, -np.inf, gap)]))
    # the ceiling of any rule that picks, per query, either the mixture's cut or the gap cut
    both = [max(prf(np.arange(len(q.labels)) < k, q.labels), prf(gap_keep(q), q.labels))
            for q, k in zip(ans, base)]
    out["per-query oracle of mixture and gap cut"] = (NONE, np.array([float(np.mean(both))]))
    return out


# -- fusion variants ------------------------------------------------------------------------------

def bm25_transforms(c: Candidates, depth: int) -> dict[str, np.ndarray]:
    """The BM25 term of each anchored-fusion variant for one query's candidates, each shape (len(c),)."""
    h = head(c, depth)
    z = normalise(c.bm25, "zscore", h)
    own = (c.bm25_rank > 0) & (c.bm25_rank <= depth)
    b = c.bm25.astype(np.float64)
    med = float(np.median(b[h]))
    mad = 1.4826 * float(np.median(np.abs(b[h] - med)))
    return {"zscore over the head (shipped)": z,
            "zscore over BM25's own top": normalise(c.bm25, "zscore", own),
            "zscore clipped to [-3, 3]": np.clip(z, -3.0, 3.0),
            "zscore clipped to [-2, 2]": np.clip(z, -2.0, 2.0),
            "zscore clipped below at 0": np.maximum(z, 0.0),
            "robust zscore (median, MAD)": (b - med) / mad if mad > 0 else np.zeros(len(c)),
            "min-max": normalise(c.bm25, "minmax", h)}


FUSION_GRID = np.round(np.arange(0.0, 0.3001, 0.01), 2)
MINMAX_GRID = np.round(np.arange(0.0, 0.6001, 0.02), 2)
FEATURE_NAMES = ("standout_dense", "standout_bm25", "overlap", "dense_top")


def fusion_curves(j: Judged, depth: int) -> dict:
    """Per-query nDCG@10 for every variant and weight: {variant: (grid, queries x grid)}, the best
    single view's mean, and the list features (queries x FEATURE_NAMES)."""
    from lucerag.search.adaptive import list_features

    qids = list(j.cands)
    mats: dict[str, list] = {}
    phis, bm25, dense = [], [], []
    for q in qids:
        c = j.cands[q]
        d = c.dense.astype(np.float64)
        judged = j.qrels.get(q, {})
        for name, t in bm25_transforms(c, depth).items():
            grid = MINMAX_GRID if name == "min-max" else FUSION_GRID
            mats.setdefault(name, []).append([ndcg(ranked_ids(c, d + w * t, depth), judged) for w in grid])
        phis.append(list_features(c, depth))
        dense.append(ndcg(ranked_ids(c, d, depth), judged))
        bm25.append(ndcg(ranked_ids(c, c.bm25.astype(np.float64), depth), judged))
    curves = {n: (MINMAX_GRID if n == "min-max" else FUSION_GRID, np.array(m)) for n, m in mats.items()}
    return {"curves": curves, "best_view": max(float(np.mean(dense)), float(np.mean(bm25))),
            "features": np.array(phis)}


def _per_query(mat: np.ndarray, grid: np.ndarray, w: np.ndarray) -> float:
    col = np.clip(np.rint((w - grid[0]) / (grid[1] - grid[0])).astype(int), 0, len(grid) - 1)
    return float(mat[np.arange(len(mat)), col].mean())


def fit_feature_weight(mat: np.ndarray, feats: np.ndarray, grid: np.ndarray) -> tuple[float, float, float, float]:
    """(a, b, median, sd) maximising mean nDCG@10 of ``w = a * exp(b * (f - median) / sd)``; ties
    keep the earlier (smaller a, more negative b) value."""
    med, sd = float(np.median(feats)), float(feats.std()) or 1.0
    best, best_s = (float(grid[0]), 0.0), -1.0
    for a in grid[1:21]:
        for b in np.arange(-1.5, 1.501, 0.25):
            s = _per_query(mat, grid, a * np.exp(b * (feats - med) / sd))
            if s > best_s + 1e-9:
                best, best_s = (float(a), float(b)), s
    return best[0], best[1], med, sd


# -- the run --------------------------------------------------------------------------------------

def ablation(judged: dict[str, Judged], depth: int = 100) -> dict:
    """{"cut": rows, "fusion": rows}: each row {variant, measured_on, fitted_on, param, value,
    in_sample, in_sample_param} (F1 for cut rules; for fusion the margin of nDCG@10 over the best
    single view)."""
    names = list(judged)
    cuts, fus = {}, {}
    for name, j in judged.items():
        train = [o for n, o in judged.items() if n != name]
        # under the fusion the filter is measured with in `lucerag bench transfer` (anchored, w fitted on A)
        fusion = {"method": "anchored", "bm25_weight": fit_anchored_weight(train, depth), "depth": depth}
        ans, neg, _ = _labelled(j, fusion, depth)
        gate = gate_from_negatives(q.x[0, DENSE_TOP] for q in neg) if neg else -np.inf
        cuts[name] = cut_curves(ans, gate)
        fus[name] = fusion_curves(j, depth)
    out: dict[str, list] = {"cut": [], "fusion": []}
    for b in names:
        for a in names:
            if a == b:
                continue
            for rule, (grid, fa) in cuts[a].items():
                gb, fb = cuts[b][rule]
                i, ib = int(np.argmax(fa)), int(np.argmax(fb))
                out["cut"].append({"variant": rule, "measured_on": b, "fitted_on": a, "param": _value(grid[i]),
                                   "value": round(float(fb[i]), 4), "in_sample": round(float(fb[ib]), 4),
                                   "in_sample_param": _value(gb[ib])})
            best_b = fus[b]["best_view"]
            for v, (grid, ma) in fus[a]["curves"].items():
                mb = fus[b]["curves"][v][1].mean(axis=0)
                i, ib = int(np.argmax(ma.mean(axis=0))), int(np.argmax(mb))
                out["fusion"].append({"variant": f"cosine + w * {v}", "measured_on": b, "fitted_on": a,
                                      "param": float(grid[i]), "value": round(float(mb[i]) - best_b, 4),
                                      "in_sample": round(float(mb[ib]) - best_b, 4),
                                      "in_sample_param": float(grid[ib])})
            grid, ma = fus[a]["curves"]["zscore over the head (shipped)"]
            mb = fus[b]["curves"]["zscore over the head (shipped)"][1]
            for f, fname in enumerate(FEATURE_NAMES):
                wa, wb, med, sd = fit_feature_weight(ma, fus[a]["features"][:, f], grid)
                w = wa * np.exp(wb * (fus[b]["features"][:, f] - med) / sd)
                out["fusion"].append({"variant": f"anchored, weight from {fname}", "measured_on": b,
                                      "fitted_on": a, "param": f"a={wa}, b={wb:+.2f}",
                                      "value": round(_per_query(mb, grid, w) - best_b, 4),
                                      "in_sample": None, "in_sample_param": None})
    return out


def _value(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def markdown(report: dict) -> str:
    """The two ablation tables as markdown."""
    lines = ["| cut rule | measured on (fitted on) | parameter fitted on A | F1 on B | best on B in sample (parameter) |",
             "| --- | --- | --- | --- | --- |"]
    for r in report["cut"]:
        p, ip = ("", "") if r["param"] is None else (f"{r['param']:g}", f" ({r['in_sample_param']:g})")
        lines.append(f"| {r['variant']} | {r['measured_on']} ({r['fitted_on']}) | {p} | {r['value']:.4f} | "
                     f"{r['in_sample']:.4f}{ip} |")
    lines += ["", "| fusion | measured on (fitted on) | parameter fitted on A | nDCG@10 margin over best view on B | "
                  "best margin on B in sample (w) |", "| --- | --- | --- | --- | --- |"]
    for r in report["fusion"]:
        ins = "" if r["in_sample"] is None else f"{r['in_sample']:+.4f} ({r['in_sample_param']:g})"
        p = r["param"] if isinstance(r["param"], str) else f"{r['param']:g}"
        lines.append(f"| {r['variant']} | {r['measured_on']} ({r['fitted_on']}) | {p} | {r['value']:+.4f} | {ins} |")
    return "\n".join(lines) + "\n"

