"""The cross-validation folds every evaluation uses: one random assignment of queries to folds."""

from __future__ import annotations

import numpy as np


def fold_of(n: int, folds: int = 5, seed: int = 13) -> np.ndarray:
    """The fold (0..folds-1) of each of ``n`` queries: a seeded permutation, so folds differ in size
    by at most one and the same ``seed`` gives the same folds in fusion tuning and filter evaluation."""
    return np.random.default_rng(seed).permutation(n) % folds
