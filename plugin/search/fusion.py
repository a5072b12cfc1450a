"""Fuse the BM25 and dense views of one query's candidates into one ranking.

Candidates are the union of both views' top lists.  Every candidate carries BOTH scores (the
retriever fills in exact BM25 scores for dense-only candidates and exact cosines for
BM25-only ones), so a passage one view missed is never treated as scoring zero there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Candidates:
    """Parallel arrays over the union of both views' candidates for one query."""

    ids: list[str]
    bm25: np.ndarray        # exact BM25 score (0 when no query term occurs in the passage)
    dense: np.ndarray       # exact cosine similarity
    bm25_rank: np.ndarray   # 1-based rank in the BM25 list, 0 when not retrieved there
    dense_rank: np.ndarray  # 1-based rank in the dense list, 0 when not retrieved there

    def __len__(self) -> int:
        return len(self.ids)


def normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """Per-query score normalisation: ``minmax``, ``zscore`` or ``rank`` (1 - r/n)."""
    if len(scores) == 0:
        return scores.astype(np.float64)
    s = scores.astype(np.float64)
    if how == "minmax":
        span = s.max() - s.min()
        return (s - s.min()) / span if span > 0 else np.ones_like(s)
    if how == "zscore":
        sd = s.std()
        return (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    if how == "rank":
        order = np.argsort(-s, kind="stable")
        ranks = np.empty(len(s))
        ranks[order] = np.arange(len(s))
        return 1.0 - ranks / len(s)
    raise ValueError(f"unknown normalisation {how!r}: use minmax, zscore or rank")


def rrf(c: Candidates, k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the views that retrieved a passage."""
    fused = np.zeros(len(c))
    for ranks in (c.bm25_rank, c.dense_rank):
        present = ranks > 0
        fused[present] += 1.0 / (k + ranks[present])
    return fused


def convex(c: Candidates, dense_weight: float = 0.8, norm: str = "minmax") -> np.ndarray:
    """``w * norm(dense) + (1 - w) * norm(bm25)`` over the candidate set."""
    return dense_weight * normalise(c.dense, norm) + (1.0 - dense_weight) * normalise(c.bm25, norm)


def fuse(c: Candidates, method: str = "convex", *, dense_weight: float = 0.8,
         norm: str = "minmax", rrf_k: int = 60) -> np.ndarray:
    """Fused score of every candidate (higher is better)."""
    if method == "rrf":
        return rrf(c, rrf_k)
    if method == "convex":
        return convex(c, dense_weight, norm)
    raise ValueError(f"unknown fusion method {method!r}: use convex or rrf")
