"""Choose the fusion method and weight on judged queries, by cross-validation over queries.

Candidates (both views' scores) do not depend on the fusion settings, so they are gathered
once per query; every setting on the grid is then scored from them with ir-measures.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from lucerag.eval.folds import fold_of

from lucerag.eval.runs import per_query
from lucerag.search.fusion import METHOD_PARAMETERS, Candidates, fuse, order


def grid() -> list[dict]:
    """Fusion settings tried: anchored BM25 weights (the default method; its weight was 0.05-0.07
    when fitted on MS MARCO or SciFact, docs/fusion-and-filter.md), RRF constants, and convex
    weights for each normalisation."""
    settings: list[dict] = [{"method": "anchored", "bm25_weight": float(w)}
                            for w in np.round(np.concatenate([np.arange(0.0, 0.2001, 0.01), [0.25, 0.3, 0.4, 0.5]]), 2)]
    settings += [{"method": "rrf", "rrf_k": k} for k in (10, 30, 60, 100)]
    weights = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    settings += [{"method": "convex", "norm": n, "dense_weight": float(w)}
                 for n, w in product(("minmax", "zscore", "rank"), weights)]
    return settings


def setting_of(fusion) -> dict:
    """The grid-style setting of a ``[fusion]`` configuration: its method and the parameters that
    method reads (:data:`lucerag.search.fusion.METHOD_PARAMETERS`)."""
    return {"method": fusion.method, **{key: getattr(fusion, key) for key in METHOD_PARAMETERS[fusion.method]}}


def score_settings(candidates: dict[str, Candidates], qrels, settings: list[dict], metric: str = "nDCG@10",
                   k: int = 100, depth: int | None = None) -> np.ndarray:
    """Matrix (settings x queries) of the metric for each setting on each query; ``depth``: the
    fusion depth whose head gives the normalisation statistics and the order, as the retriever
    fuses (:meth:`~lucerag.search.retriever.Retriever.fuse`)."""
    qids = list(candidates)
    out = np.zeros((len(settings), len(qids)))
    for s, setting in enumerate(settings):
        run = {}
        for qid in qids:
            c = candidates[qid]
            fused = fuse(c, **setting, depth=depth)
            top = order(c, fused, depth)[:k]
            run[qid] = {c.ids[i]: float(fused[i]) for i in top}
        scores = per_query(run, {q: qrels[q] for q in qids}, metric)
        out[s] = [scores[q] for q in qids]
    return out


def cross_validate_settings(matrix: np.ndarray, folds: int = 5, seed: int = 13) -> tuple[float, list[int]]:
    """Mean held-out score when each fold uses the setting (row of ``matrix``: settings x queries)
    best on the other folds, and the setting chosen for each fold."""
    n = matrix.shape[1]
    fold = fold_of(n, folds, seed)
    held = np.zeros(n)
    chosen = []
    for f in range(folds):
        train, test = fold != f, fold == f
        best = int(np.argmax(matrix[:, train].mean(axis=1)))
        chosen.append(best)
        held[test] = matrix[best, test]
    return float(held.mean()), chosen


def tune(retriever, queries: dict[str, str], qrels, metric: str = "nDCG@10", folds: int = 5) -> dict:
    """Cross-validated choice of fusion settings; returns the report and the final setting."""
    depth = retriever.config.fusion.depth
    candidates = {qid: retriever.candidates(text, depth)[0] for qid, text in queries.items()}
    settings = grid()
    matrix = score_settings(candidates, qrels, settings, metric, depth=depth)
    cv, chosen = cross_validate_settings(matrix, folds)
    best = int(np.argmax(matrix.mean(axis=1)))
    current_setting = setting_of(retriever.config.fusion)
    current_score = float(score_settings(candidates, qrels, [current_setting], metric, depth=depth).mean())
    return {
        "metric": metric,
        "queries": len(queries),
        "cv": round(cv, 4),
        "chosen_per_fold": [settings[i] for i in chosen],
        "best": settings[best],
        "best_in_sample": round(float(matrix[best].mean()), 4),
        "current": current_setting,
        "current_score": round(current_score, 4),
        "dense_scores_only": round(float(matrix[settings.index({"method": "convex", "norm": "minmax",
                                                          "dense_weight": 1.0})].mean()), 4),
        "bm25_scores_only": round(float(matrix[settings.index({"method": "convex", "norm": "minmax",
                                                         "dense_weight": 0.0})].mean()), 4),
    }
