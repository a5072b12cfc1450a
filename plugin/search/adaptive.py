"""Query-adaptive convex fusion: the dense weight is predicted per query from both score lists.

A fixed convex weight is right on average for the collection it was tuned on; which view is
better varies from query to query (on the DL19 slice the per-query best weight reaches 0.768
nDCG@10 where the best single weight reaches 0.714). Without labels at query time, the two score
lists still say something about which view found the answer: a view whose best scores stand out
from the rest of its own list is confident, one whose scores are flat is not, and agreement
between the lists' heads says both found the same passages.

Per query (statistics over the top ``depth`` head of each view, so they do not move with k):

- ``standout_dense``, ``standout_bm25``: (mean of the top 3 - mean of ranks 11..depth) / std of the
  view's head scores: how far the best scores rise above the view's own background;
- ``overlap``: share of the top 10 of one view that is also in the top 10 of the other.

- ``dense_top``: the best cosine (on the encoder's own scale, the same on any corpus).

The weight is ``w = sigmoid(a + b * (standout_dense - standout_bm25) + c * overlap + d * dense_top)``,
clipped to ``[lo, hi]``; min-max normalisation over the head as in :func:`lucerag.search.fusion.convex`.
Every feature is scale-free (a ratio of score differences), so it means the same on a corpus of
short passages and one of long abstracts. Parameters are fitted by ``lucerag bench transfer``
(coordinate ascent on nDCG@10 over a small grid on the training collections; see
docs/fusion-and-filter.md). DEFAULT holds those fitted on the DL19 slice and SciFact-2k together
(in sample: 0.8046 and 0.8063 nDCG@10 against 0.8059 and 0.8039 for the fixed weight 0.75); out of
collection it did not beat a fixed weight, which is why ``convex`` stays the default method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lucerag.search.fusion import Candidates, head, normalise


@dataclass(frozen=True)
class AdaptiveWeights:
    """Parameters of the per-query dense weight (see the module docstring)."""

    a: float = 1.0
    b: float = -0.25
    c: float = -0.75
    d: float = 0.0
    lo: float = 0.0
    hi: float = 1.0

    def weight(self, phi: np.ndarray) -> float:
        """Dense weight for one query's :func:`list_features` ``phi`` (a float in [lo, hi])."""
        return float(self.weights(np.asarray(phi)[None, :])[0])

    def weights(self, phis: np.ndarray) -> np.ndarray:
        """Dense weights for a (queries x 4) matrix of :func:`list_features` rows."""
        z = self.a + self.b * (phis[:, 0] - phis[:, 1]) + self.c * phis[:, 2] + self.d * phis[:, 3]
        return np.clip(1.0 / (1.0 + np.exp(-z)), self.lo, self.hi)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = AdaptiveWeights()


def _standout(scores: np.ndarray) -> float:
    s = np.sort(scores.astype(np.float64))[::-1]
    if len(s) < 4:
        return 0.0
    sd = s.std()
    if sd <= 0:
        return 0.0
    tail = s[10:] if len(s) > 13 else s[3:]
    return float((s[:3].mean() - tail.mean()) / sd)


def list_features(c: Candidates, depth: int | None = None) -> np.ndarray:
    """(standout_dense, standout_bm25, overlap, dense_top) of one query's candidates, shape (4,)."""
    if len(c) == 0:
        return np.zeros(4)
    if depth is None:
        in_bm25, in_dense = c.bm25_rank > 0, c.dense_rank > 0
    else:
        in_bm25 = (c.bm25_rank > 0) & (c.bm25_rank <= depth)
        in_dense = (c.dense_rank > 0) & (c.dense_rank <= depth)
    top_b = set(np.flatnonzero((c.bm25_rank > 0) & (c.bm25_rank <= 10)).tolist())
    top_d = set(np.flatnonzero((c.dense_rank > 0) & (c.dense_rank <= 10)).tolist())
    overlap = len(top_b & top_d) / max(1, min(len(top_b), len(top_d)))
    return np.array([_standout(c.dense[in_dense]) if in_dense.any() else 0.0,
                     _standout(c.bm25[in_bm25]) if in_bm25.any() else 0.0, overlap,
                     float(c.dense[in_dense].max()) if in_dense.any() else 0.0])


def adaptive_fuse(c: Candidates, params: AdaptiveWeights = DEFAULT, depth: int | None = None) -> np.ndarray:
    """Convex min-max fusion with the dense weight predicted for this query, shape (len(c),)."""
    if len(c) == 0:
        return np.zeros(0)
    w = params.weight(list_features(c, depth))
    ref = head(c, depth)
    return w * normalise(c.dense, "minmax", ref) + (1.0 - w) * normalise(c.bm25, "minmax", ref)
