"""The relevance filter: scores -> probability of relevance -> one global threshold.

Raw scores mean different things for different queries: a cosine of 0.45 may be the best
answer to one question and noise for another. Following the idea of query-dependent score
mapping (Rossi et al., "Relevance Filtering for Embedding-based Retrieval", CIKM 2024), each
candidate is described by its own scores *and* by where they sit in its query's score
distribution; a logistic model maps that to P(relevant). One global threshold then decides
what reaches the LLM, and an empty list means nothing was relevant enough.

Applying the model is a few numpy operations (no scikit-learn at query time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, Field

from lucerag.search.fusion import Candidates

FEATURES = (
    "dense",            # cosine similarity
    "dense_gap",        # top cosine of the query's candidates minus this one
    "dense_z",          # (cosine - mean) / std over the query's candidates
    "dense_top",        # the query's best cosine (how answerable the query is)
    "dense_spread",     # std of the query's cosines
    "dense_x_top",      # cosine * top cosine: a query-dependent slope (Cosine-Adapter style)
    "bm25_rel",         # BM25 / the query's best BM25
    "bm25_log",         # log(1 + BM25)
    "bm25_top_log",     # log(1 + the query's best BM25)
    "fused",            # fused score (per-query normalised)
    "fused_rank_log",   # log(fused rank)
    "dense_rank_log",   # log(rank by cosine among candidates)
    "bm25_rank_log",    # log(rank by BM25 among candidates)
    "query_terms_log",  # log(number of query words)
    "dense_q10",        # the query's 10th best cosine
    "dense_q50",        # the query's 50th best cosine
    "dense_over_q10",   # cosine minus the 10th best
    "dense_over_q50",   # cosine minus the 50th best
    "near_top_log",     # log(1 + candidates within 0.1 of the best cosine)
    "bm25_rel_q10",     # the query's 10th best relative BM25
)


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def features(c: Candidates, fused: np.ndarray, query: str) -> np.ndarray:
    """Feature matrix (n candidates x len(FEATURES)) for one query's candidates."""
    n = len(c)
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    dense = c.dense.astype(np.float64)
    bm25 = np.maximum(c.bm25.astype(np.float64), 0.0)
    top, spread = dense.max(), dense.std()
    bm25_top = bm25.max()
    cols = [
        dense,
        top - dense,
        (dense - dense.mean()) / spread if spread > 0 else np.zeros(n),
        np.full(n, top),
        np.full(n, spread),
        dense * top,
        bm25 / bm25_top if bm25_top > 0 else np.zeros(n),
        np.log1p(bm25),
        np.full(n, np.log1p(bm25_top)),
        fused.astype(np.float64),
        np.log(_ranks(fused)),
        np.log(_ranks(dense)),
        np.log(_ranks(bm25)),
        np.full(n, np.log(max(1, len(query.split())))),
    ]
    sorted_dense = np.sort(dense)[::-1]
    q10, q50 = sorted_dense[min(9, n - 1)], sorted_dense[min(49, n - 1)]
    bm25_rel = cols[6]
    cols += [
        np.full(n, q10),
        np.full(n, q50),
        dense - q10,
        dense - q50,
        np.full(n, np.log1p((dense >= top - 0.1).sum())),
        np.full(n, np.sort(bm25_rel)[::-1][min(9, n - 1)]),
    ]
    return np.column_stack(cols)


class Calibrator(BaseModel):
    """A fitted logistic model over FEATURES and the threshold applied to its probabilities."""

    FILENAME: ClassVar[str] = "lucerag-calibrator.json"

    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float = 0.5
    objective: str = "f1"          # how the threshold was chosen: "f1" or "precision>=P"
    relevant_grade: int = 1        # judgments >= this grade counted as relevant when fitting
    encoder: str | None = None     # the encoder whose cosines it was fitted on
    fusion: dict = Field(default_factory=dict)
    trained_on: str = ""
    queries: int = 0
    candidates: int = 0

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(relevant) for each row of a feature matrix."""
        if len(x) == 0:
            return np.zeros(0)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def predict(self, c: Candidates, fused: np.ndarray, query: str) -> np.ndarray:
        return self.probabilities(features(c, fused, query))

    # -- persistence ---------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / self.FILENAME
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibrator":
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        try:
            model = cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"no calibrator at {path} (fit one with `lucerag calibrate`)") from None
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a lucerag calibrator: {exc}") from None
        if model.features != list(FEATURES):
            raise ValueError(f"{path}: fitted on features {model.features}, this lucerag computes "
                             f"{list(FEATURES)}: refit it with `lucerag calibrate`")
        return model

    @classmethod
    def default(cls) -> "Calibrator":
        """The calibrator shipped with lucerag (fitted on the MS MARCO DL19 slice, default encoder)."""
        from lucerag.resources import DEFAULT_CALIBRATOR

        return cls.load(DEFAULT_CALIBRATOR)


def fit(x: np.ndarray, y: np.ndarray, c: float = 0.1) -> dict:
    """Fit the logistic model (scikit-learn, at fitting time only); returns Calibrator fields.

    Raises ImportError naming the extra when scikit-learn is not installed."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise ImportError("fitting a calibrator needs scikit-learn: pip install 'lucerag[eval]'") from exc

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((x - mean) / scale, y)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0])}
