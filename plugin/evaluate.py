"""Evaluation of ranking methods on a query set with relevance judgments (via ir-measures)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import ir_measures
import numpy as np

DEFAULT_METRICS = ("nDCG@10", "MRR@10", "R@100", "R@1000", "MAP")

# lucerag's metric names -> ir-measures measures (MRR@10 is ir-measures' RR@10).
_MEASURES = {"MRR@10": "RR@10", "MAP": "AP"}


def _measure(name: str, rel: int | None):
    spec = _MEASURES.get(name, name)
    measure = ir_measures.parse_measure(spec)
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
    return {name: round(float(np.mean(list(per_query(run, qrels, name, rel).values()))), 4)
            for name in metrics}


def per_query(run, qrels, metric: str = "nDCG@10", rel: int | None = None) -> dict[str, float]:
    """One metric for each judged query (0 for queries the run missed)."""
    m = _measure(metric, rel)
    scores = {q: 0.0 for q in qrels}
    for r in ir_measures.iter_calc([m], qrels, {q: d for q, d in run.items() if d and q in qrels}):
        scores[r.query_id] = float(r.value)
    return scores


def write_trec_run(run: dict[str, dict[str, float]], path: str | Path, tag: str) -> None:
    """Write a run in TREC format (``qid Q0 docid rank score tag``)."""
    with open(path, "w") as out:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (docid, score) in enumerate(ranked, 1):
                out.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
