"""The typed result of a search."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Passage(BaseModel):
    """One retrieved passage, with the evidence behind its rank."""

    id: str
    text: str
    title: str = ""
    rank: int = Field(ge=1)
    score: float                      # the method's score: fused score for hybrid
    bm25_score: float | None = None   # exact BM25 score (None if the view was not used)
    dense_score: float | None = None  # cosine similarity (None if the view was not used)
    bm25_rank: int | None = None      # rank in the BM25 candidate list (None: not retrieved there)
    dense_rank: int | None = None     # rank in the dense candidate list (None: not retrieved there)
    p_relevant: float | None = None   # calibrated probability of relevance (None: no calibrator fits, or not hybrid)
    rerank_score: float | None = None  # the re-ranker's score (None: not re-ranked); rank follows it
    metadata: dict[str, Any] = Field(default_factory=dict)
