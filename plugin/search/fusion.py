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
    # the relevance filter's lexical evidence when the BM25 search found it with its hits (a hit tied
    # for first holds every query term, lucerag.search.lexical); None: not looked for
    covered: bool | None = None

    def __len__(self) -> int:
        return len(self.ids)


def head(c: Candidates, depth: int | None) -> np.ndarray:
    """Mask of the candidates within the top ``depth`` of either view (all when ``depth`` is None).

    Normalisation statistics are taken over this head only, so they do not move when a caller
    asks for more candidates than ``depth`` (see :func:`order`)."""
    if depth is None:
        return np.ones(len(c), bool)
    return ((c.bm25_rank > 0) & (c.bm25_rank <= depth)) | ((c.dense_rank > 0) & (c.dense_rank <= depth))


def normalise(scores: np.ndarray, how: str, ref: np.ndarray | None = None) -> np.ndarray:
    """Per-query score normalisation: ``minmax``, ``zscore`` or ``rank`` (1 - r/n).

    ``ref`` (a boolean mask) selects the scores the statistics are computed on (default: all);
    the others are mapped with the same statistics (min-max values may then fall below 0)."""
    if len(scores) == 0:
        return scores.astype(np.float64)
    s = scores.astype(np.float64)
    r = s if ref is None or not ref.any() else s[ref]
    if how == "minmax":
        span = r.max() - r.min()
        return (s - r.min()) / span if span > 0 else np.ones_like(s)
    if how == "zscore":
        sd = r.std()
        return (s - r.mean()) / sd if sd > 0 else np.zeros_like(s)
    if how == "rank":
        # rank among the reference scores (ties share the better rank): 1 for the best, -> 0
        sorted_ref = np.sort(r)[::-1]
        ranks = np.searchsorted(-sorted_ref, -s, side="left")
        return 1.0 - ranks / len(r)
    raise ValueError(f"unknown normalisation {how!r}: use minmax, zscore or rank")


def rrf(c: Candidates, k: int = 60, depth: int | None = None) -> np.ndarray:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the views that retrieved a passage
    (within their top ``depth`` when given, so deeper retrieval does not change a head score)."""
    fused = np.zeros(len(c))
    for ranks in (c.bm25_rank, c.dense_rank):
        present = (ranks > 0) if depth is None else (ranks > 0) & (ranks <= depth)
        fused[present] += 1.0 / (k + ranks[present])
    return fused


def convex(c: Candidates, dense_weight: float = 0.8, norm: str = "minmax",
           depth: int | None = None) -> np.ndarray:
    """``w * norm(dense) + (1 - w) * norm(bm25)``, statistics over the top-``depth`` head."""
    ref = head(c, depth)
    return dense_weight * normalise(c.dense, norm, ref) + (1.0 - dense_weight) * normalise(c.bm25, norm, ref)


def anchored(c: Candidates, bm25_weight: float = 0.06, depth: int | None = None) -> np.ndarray:
    """``cosine + bm25_weight * zscore(bm25)``: the dense score kept on the encoder's own scale,
    BM25 standardised over the top-``depth`` head (see docs/fusion-and-filter.md).

    Min-max normalisation stretches every query's dense list to [0, 1], a flat list (the encoder
    unsure) as much as a peaked one; the raw cosine keeps that difference and means the same on any
    corpus, while BM25's scale (document length, idf) does not, hence its z-score. ``bm25_weight``
    is in cosine units per BM25 standard deviation."""
    ref = head(c, depth)
    return c.dense.astype(np.float64) + bm25_weight * normalise(c.bm25, "zscore", ref)


# The settings each fusion method reads (besides ``depth``, which every method reads): what a tuned or
# fitted set-up records, and what must match for a calibrator fitted under it.
METHOD_PARAMETERS: dict[str, tuple[str, ...]] = {
    "anchored": ("bm25_weight",), "convex": ("norm", "dense_weight"), "rrf": ("rrf_k",), "adaptive": (),
}


def fuse(c: Candidates, method: str = "convex", *, dense_weight: float = 0.8,
         norm: str = "minmax", rrf_k: int = 60, depth: int | None = None,
         bm25_weight: float = 0.06) -> np.ndarray:
    """Fused score of every candidate (higher is better), shape (len(c),).

    ``depth``: normalisation statistics come from the candidates within the top ``depth`` of
    either view (None: all candidates). Raises ValueError for an unknown method."""
    if method == "anchored":
        return anchored(c, bm25_weight, depth)
    if method == "rrf":
        return rrf(c, rrf_k, depth)
    if method == "convex":
        return convex(c, dense_weight, norm, depth)
    if method == "adaptive":
        from lucerag.search.adaptive import adaptive_fuse

        return adaptive_fuse(c, depth=depth)
    raise ValueError(f"unknown fusion method {method!r}: use anchored, convex, adaptive or rrf")


def order(c: Candidates, fused: np.ndarray, depth: int | None = None) -> np.ndarray:
    """Candidate indices best first, shape (len(c),): the top-``depth`` head (:func:`head`)
    ranked by fused score, then any deeper candidates ranked by fused score.

    With statistics and ordering both tied to the head, the first results do not depend on how
    many were asked for: the list for k=10 is a prefix of the list for k=300."""
    if len(c) == 0:
        return np.zeros(0, np.int64)
    # ties (common under rank normalisation and RRF) break on the dense score, then BM25, then the
    # id: never on where a candidate sits in the arrays, which changes with the candidate depth
    keys = (-c.bm25.astype(np.float64), -c.dense.astype(np.float64), -fused.astype(np.float64), ~head(c, depth))
    at = np.lexsort(keys)
    # the ids decide only between candidates equal on every other key; without any such pair the
    # order is already final (building and comparing the strings is half of this function's time)
    same = np.ones(len(at) - 1, bool)
    for key in keys:
        ranked = key[at]
        same &= ranked[1:] == ranked[:-1]
    if same.any():
        at = np.lexsort((np.asarray(c.ids), *keys))
    return at.astype(np.int64)
