"""Evaluation of ranking methods on a query set with relevance judgments (via ir-measures).

Runs are ``{qid: {docid: score}}``; metrics come from ir-measures (pytrec_eval underneath).
Besides the mean of each metric, :func:`per_query_scores` keeps each query's value so that two
methods run on the same queries can be compared with paired significance tests
(:func:`paired_test`: scipy's paired t-test and a two-sided paired randomisation test, which
randomly swaps the two methods' scores per query), and :func:`markdown_table` writes the table
the docs show.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

DEFAULT_METRICS = ("nDCG@10", "MRR@10", "R@100", "R@1000", "MAP")


def metrics_for_depth(depth: int, metrics: Iterable[str] = DEFAULT_METRICS) -> tuple[str, ...]:
    """``metrics`` without those cut deeper than runs of ``depth`` reach (R@1000 of a 100-deep run
    would be R@100 under another name)."""
    return tuple(m for m in metrics if "@" not in m or int(m.rsplit("@", 1)[1]) <= depth)

# lucerag's metric names -> ir-measures measures (MRR@10 is ir-measures' RR@10).
_MEASURES = {"MRR@10": "RR@10", "MAP": "AP"}


def require_eval_extra() -> None:
    """Raise ImportError naming the ``eval`` extra unless ir-measures is installed (call before long work)."""
    _ir_measures()


def _ir_measures():
    """ir_measures (the ``eval`` extra), or ImportError naming the extra."""
    try:
        import ir_measures
    except ImportError as exc:
        raise ImportError("evaluation needs ir-measures: pip install 'lucerag[eval]'") from exc
    return ir_measures


def _measure(name: str, rel: int | None):
    spec = _MEASURES.get(name, name)
    measure = _ir_measures().parse_measure(spec)
    # Graded judgments (TREC DL) count as relevant from grade `rel` for binary measures.
    if rel is not None and not spec.startswith("nDCG"):
        measure = measure(rel=rel)
    return measure


def run_queries(rank: Callable[[str], tuple[list[str], np.ndarray]], queries: dict[str, str],
                progress: bool = False) -> tuple[dict[str, dict[str, float]], list[float]]:
    """A TREC-style run ``{qid: {docid: score}}`` and per-query latencies in ms."""
    from tqdm import tqdm

    run, latencies = {}, []
    for qid, text in tqdm(queries.items(), disable=not progress, unit="q", leave=False):
        start = time.perf_counter()
        ids, scores = rank(text)
        latencies.append((time.perf_counter() - start) * 1000)
        run[qid] = dict(zip(ids, map(float, scores)))
    return run, latencies


def score_run(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]],
              metrics: Iterable[str] = DEFAULT_METRICS, rel: int | None = None) -> dict[str, float]:
    """Mean of each metric over all judged queries (a query the run misses scores 0)."""
    return mean_scores(per_query_scores(run, qrels, metrics, rel))


def mean_scores(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{metric: mean over queries}`` (rounded to 4 places) from :func:`per_query_scores`."""
    return {name: round(float(np.mean(list(values.values()))), 4) if values else 0.0
            for name, values in per_query.items()}


def per_query(run, qrels, metric: str = "nDCG@10", rel: int | None = None) -> dict[str, float]:
    """One metric for each judged query (0 for queries the run missed)."""
    return per_query_scores(run, qrels, [metric], rel)[metric]


def per_query_scores(run, qrels, metrics: Iterable[str] = DEFAULT_METRICS,
                     rel: int | None = None) -> dict[str, dict[str, float]]:
    """``{metric: {qid: value}}`` for every judged query (0 for queries the run missed),
    all metrics computed in one pass over the run."""
    metrics = list(metrics)
    measures = {_measure(name, rel): name for name in metrics}
    scores = {name: {q: 0.0 for q in qrels} for name in metrics}
    judged_run = {q: d for q, d in run.items() if d and q in qrels}
    if judged_run:
        for r in _ir_measures().iter_calc(list(measures), qrels, judged_run):
            scores[measures[r.measure]][r.query_id] = float(r.value)
    return scores


def paired_test(a: dict[str, float], b: dict[str, float], permutations: int = 10_000,
                seed: int = 0) -> dict[str, float]:
    """Paired significance of ``b - a`` over the queries both have.

    Returns the mean difference, scipy's paired t-test (``t``, ``p_ttest``) and a two-sided
    paired randomisation test (``p_permutation``: each query's pair of scores is swapped with
    probability 1/2, ``permutations`` times with a fixed seed; the p-value counts the observed
    statistic, so it is never 0). Identical scores give p = 1. Raises ImportError naming the extra
    when scipy is not installed.
    """
    try:
        from scipy import stats
    except ImportError as exc:
        raise ImportError("significance tests need scipy: pip install 'lucerag[eval]'") from exc

    qids = sorted(set(a) & set(b))
    if not qids:
        raise ValueError("the two methods share no query")
    diff = np.array([b[q] - a[q] for q in qids], dtype=np.float64)
    n, observed = len(diff), float(diff.mean())
    if not np.any(diff):
        return {"n": n, "mean_diff": 0.0, "t": 0.0, "p_ttest": 1.0, "p_permutation": 1.0}
    if np.allclose(diff, diff[0]) or n < 2:
        t, p_t = float("inf") * np.sign(observed), 0.0
    else:
        res = stats.ttest_rel([b[q] for q in qids], [a[q] for q in qids])
        t, p_t = float(res.statistic), float(res.pvalue)
    rng = np.random.default_rng(seed)
    hits, done, chunk = 0, 0, 2_000
    while done < permutations:
        m = min(chunk, permutations - done)
        signs = rng.integers(0, 2, size=(m, n), dtype=np.int8) * 2 - 1
        means = (signs * diff).mean(axis=1)
        hits += int(np.sum(np.abs(means) >= abs(observed) - 1e-12))
        done += m
    p_perm = (hits + 1) / (permutations + 1)
    return {"n": n, "mean_diff": round(observed, 4), "t": round(t, 4) if np.isfinite(t) else t,
            "p_ttest": round(p_t, 6), "p_permutation": round(p_perm, 6)}


def compare_methods(per_query_by_method: dict[str, dict[str, dict[str, float]]], reference: str,
                    metrics: Iterable[str] | None = None, permutations: int = 10_000,
                    seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """Paired tests of every other method against ``reference``: ``{method: {metric: test}}``."""
    if reference not in per_query_by_method:
        raise ValueError(f"reference method {reference!r} was not evaluated")
    ref = per_query_by_method[reference]
    out = {}
    for method, scores in per_query_by_method.items():
        if method == reference:
            continue
        names = list(metrics) if metrics is not None else [m for m in scores if m in ref]
        out[method] = {m: paired_test(ref[m], scores[m], permutations, seed) for m in names}
    return out


def markdown_table(results: dict[str, dict[str, float]], significance: dict | None = None,
                   reference: str | None = None, alpha: float = 0.05, test: str = "p_permutation",
                   queries: int | None = None) -> str:
    """A markdown table, one row per method, one column per metric.

    With ``significance`` (from :func:`compare_methods`), a cell is marked ``†`` when the
    difference to ``reference`` is significant at ``alpha`` (``test``: ``p_permutation`` or
    ``p_ttest``), and a note under the table says so.
    """
    rows = {m: r for m, r in results.items() if isinstance(r, dict) and r
            and all(isinstance(v, (int, float)) for v in r.values())}
    if not rows:
        return ""
    metrics = list(next(iter(rows.values())))
    lines = ["| method | " + " | ".join(metrics) + " |", "| --- |" + " --- |" * len(metrics)]
    for method, values in rows.items():
        cells = []
        for m in metrics:
            cell = f"{values.get(m, float('nan')):.4f}"
            sig = (significance or {}).get(method, {}).get(m)
            if sig is not None and sig[test] < alpha:
                cell += " †"
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    notes = []
    if queries is not None:
        notes.append(f"{queries} queries")
    if significance and reference:
        label = "paired randomisation test" if test == "p_permutation" else "paired t-test"
        notes.append(f"† significantly different from {reference} ({label}, p < {alpha})")
    if notes:
        lines += ["", "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def in_listed_order(run: dict[str, dict[str, float]], step: float = 1e-6) -> dict[str, dict[str, float]]:
    """``run`` with each query's scores made to fall by at least ``step`` from one document to the
    next, in the order the ranking listed them (equal scores keep that order). trec_eval and
    ir-measures break score ties by document id, descending, so without this an evaluation scores a
    reordering of the ranked list lucerag returned; Anserini adjusts its runs' ties the same way
    (ScoreTiesAdjusterReranker). Scores move by at most ``step`` per tied or near-tied document."""
    out: dict[str, dict[str, float]] = {}
    for qid, docs in run.items():
        adjusted: dict[str, float] = {}
        last: float | None = None
        for docid, score in sorted(docs.items(), key=lambda kv: -kv[1]):  # stable: ties keep the listed order
            if last is not None and score > last - step:
                score = last - step
            adjusted[docid] = last = score
        out[qid] = adjusted
    return out


def write_trec_run(run: dict[str, dict[str, float]], path: str | Path, tag: str) -> None:
    """Write a run in TREC format (``qid Q0 docid rank score tag``)."""
    with open(path, "w") as out:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (docid, score) in enumerate(ranked, 1):
                out.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file back (``qid Q0 docid rank score tag``)."""
    run: dict[str, dict[str, float]] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


# -- the relevance filter: precision and recall against the threshold --------------------------

def filter_threshold_curve(labelled, extra_train=(), folds: int = 5, seed: int = 13,
                           thresholds: Iterable[float] | None = None) -> dict:
    """Cross-validated precision, recall and F1 of the relevance filter for each threshold.

    The same folds as :func:`lucerag.eval.filter.cross_validate_filter` (same seed): each held-out
    query's candidates get probabilities from a calibrator fitted on the other folds (plus
    ``extra_train``); the mean per-query precision/recall/F1 of keeping ``p >= t`` is reported
    for every ``t``, with the thresholds the folds chose.
    """
    from lucerag.eval.filter import fit_calibrator, mean_prf, prob_keeps, query_folds

    grid = np.round(np.arange(0.02, 0.99, 0.02), 2) if thresholds is None else np.asarray(list(thresholds))
    scored, probs, chosen = [], [], []
    for train, test in query_folds(labelled, extra_train, folds, seed):
        cal = fit_calibrator(train)
        chosen.append(cal.threshold)
        scored += test
        probs += [cal.probabilities(q.x) for q in test]
    curve = [{"threshold": float(t), **{k: round(v, 4) for k, v in mean_prf(prob_keeps(scored, probs, t),
                                                                          scored).items()}}
             for t in grid]
    return {"curve": curve, "fold_thresholds": [round(float(t), 2) for t in chosen], "queries": len(scored)}
