"""Fit and evaluate the relevance filter against simple cut-offs, cross-validated over queries.

Each query contributes its fused candidate list (top ``depth``), labelled from the qrels.
A cut-off keeps a prefix or a subset of that list; it is scored by per-query precision,
recall and F1 (macro-averaged). Recall counts the relevant passages inside the list: the
filter can only keep what retrieval found. A query with no relevant passage scores F1 = 1
when nothing is returned and 0 otherwise.

Baselines, each with its parameter chosen on the training folds:
``topk`` (a fixed number of passages), ``raw_threshold`` (a fixed cosine threshold) and
``gap_cut`` (cut at the largest drop between consecutive fused scores, like Weaviate's autocut).
"""

from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from lucerag.eval.folds import fold_of
from lucerag.search.calibration import Calibrator, features, fit
from lucerag.search.fusion import Candidates, order as fused_order

T = TypeVar("T")


@dataclass
class LabelledQuery:
    """One query's fused candidate list (best first) with 0/1 labels."""

    qid: str
    text: str
    candidates: Candidates     # all candidates (union of both views)
    fused: np.ndarray          # fused score per candidate
    order: np.ndarray          # candidate indices, best first, cut at depth
    labels: np.ndarray         # label of each ranked candidate (order)
    x: np.ndarray              # features of each ranked candidate (order)


def collect(retriever, queries: dict[str, str], qrels: dict[str, dict[str, int]], grade: int = 2,
            depth: int = 100, progress: bool = False) -> list[LabelledQuery]:
    """Candidates, features and labels for every query (queries absent from qrels: all 0)."""
    from tqdm import tqdm

    f = retriever.config.fusion
    out = []
    for qid, text in tqdm(queries.items(), disable=not progress, unit="q", leave=False):
        cands, _ = retriever.candidates(text, f.depth)
        fused = retriever.fuse(cands)
        order = fused_order(cands, fused, f.depth)[:depth]
        judged = qrels.get(qid, {})
        labels = np.array([1 if judged.get(cands.ids[i], 0) >= grade else 0 for i in order])
        x = features(cands, fused, text, f.depth)[order]
        out.append(LabelledQuery(qid, text, cands, fused, order, labels, x))
    return out


def read_query_lines(path) -> dict[str, str]:
    """Queries from a text file, one per line (``#`` comments and blank lines skipped)."""
    from pathlib import Path

    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {f"{Path(path).stem}:{n}": line.strip() for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")}


# -- set metrics -----------------------------------------------------------------------

def prf(keep: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of the kept set for one query (empty-set conventions above)."""
    returned, relevant = int(keep.sum()), int(labels.sum())
    tp = int((keep & (labels == 1)).sum())
    if returned == 0 and relevant == 0:
        return 1.0, 1.0, 1.0
    p = tp / returned if returned else 1.0
    r = tp / relevant if relevant else 1.0
    f1 = 2 * p * r / (p + r) if tp else 0.0
    return p, r, f1


def mean_prf(keeps: list[np.ndarray], qs: list[LabelledQuery]) -> dict[str, float]:
    scores = np.array([prf(k, q.labels) for k, q in zip(keeps, qs)]) if qs else np.zeros((0, 3))
    return {"precision": float(scores[:, 0].mean()), "recall": float(scores[:, 1].mean()),
            "f1": float(scores[:, 2].mean())}


def ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error with equal-width probability bins."""
    if len(probabilities) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(labels[mask].mean() - probabilities[mask].mean())
    return float(total / len(probabilities))


# -- cut-offs --------------------------------------------------------------------------

def _best(values: Iterable[T], score: Callable[[T], float]) -> T:
    """The value maximising score(value) (first on ties); ``values`` must not be empty."""
    it = iter(values)
    best_v = next(it)
    best_s = score(best_v)
    for v in it:
        s = score(v)
        if s > best_s:
            best_v, best_s = v, s
    return best_v


def topk_keeps(qs, k: int) -> list[np.ndarray]:
    return [np.arange(len(q.labels)) < k for q in qs]


def threshold_keeps(qs, column: int, t: float) -> list[np.ndarray]:
    return [q.x[:, column] >= t for q in qs]


def gap_keeps(qs) -> list[np.ndarray]:
    keeps = []
    for q in qs:
        s = q.fused[q.order]
        cut = int(np.argmax(s[:-1] - s[1:])) + 1 if len(s) > 1 else len(s)
        keeps.append(np.arange(len(s)) < cut)
    return keeps


def prob_keeps(qs, probs: list[np.ndarray], t: float) -> list[np.ndarray]:
    return [p >= t for p in probs]


def choose_threshold(qs, probs, target_precision: float | None = None) -> float:
    """Best-F1 threshold, or the lowest threshold whose mean precision reaches the target."""
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2)
    if target_precision is None:
        return float(_best(grid, lambda t: mean_prf(prob_keeps(qs, probs, t), qs)["f1"]))
    for t in grid:
        if mean_prf(prob_keeps(qs, probs, t), qs)["precision"] >= target_precision:
            return float(t)
    return float(grid[-1])


QUERY_WEIGHTED = True


def fit_calibrator(qs: list[LabelledQuery], target_precision: float | None = None,
                   query_weighted: bool = QUERY_WEIGHTED, c: float = 0.1, **info) -> Calibrator:
    """Fit the model on all candidates of ``qs`` and choose its threshold on them.

    ``query_weighted``: every query weighs the same in the fit whatever its candidate count, so
    a collection's share follows its number of queries. Raises ValueError when the labels hold
    one class only."""
    x = np.vstack([q.x for q in qs])
    y = np.concatenate([q.labels for q in qs])
    if len(set(y.tolist())) < 2:
        raise ValueError("calibration needs both relevant and non-relevant candidates")
    w = None
    if query_weighted:
        w = np.concatenate([np.full(len(q.labels), len(y) / (len(qs) * max(1, len(q.labels)))) for q in qs])
    cal = Calibrator(**fit(x, y, c, sample_weight=w), **info, queries=len(qs), candidates=len(y))
    probs = [cal.probabilities(q.x) for q in qs]
    cal.threshold = choose_threshold(qs, probs, target_precision)
    cal.objective = "f1" if target_precision is None else f"precision>={target_precision}"
    return cal


DENSE_COLUMN = 0  # features()[:, 0] is the raw cosine


def query_folds(qs: list, extra_train=(), folds: int = 5, seed: int = 13):
    """(train, test) per fold: queries split at random by ``seed``; ``extra_train`` joins every
    training fold and is never tested. Empty test folds are skipped."""
    fold = fold_of(len(qs), folds, seed)
    for f in range(folds):
        test = [q for q, g in zip(qs, fold) if g == f]
        if test:
            yield [q for q, g in zip(qs, fold) if g != f] + list(extra_train), test


def cross_validate_filter(qs: list[LabelledQuery], extra_train: Sequence[LabelledQuery] = (), folds: int = 5,
                   seed: int = 13, target_precision: float | None = None) -> dict:
    """Filter vs baselines with parameters chosen on training folds, scored on held-out queries.

    ``extra_train`` (e.g. unanswerable queries) is added to every training fold, never scored.
    """
    held: dict[str, list] = {"filter": [], "topk": [], "raw_threshold": [], "gap_cut": []}
    scored, all_probs, all_labels = [], [], []
    for train, test in query_folds(qs, extra_train, folds, seed):
        cal = fit_calibrator(train, target_precision)
        probs = [cal.probabilities(q.x) for q in test]
        held["filter"] += prob_keeps(test, probs, cal.threshold)
        all_probs += probs
        all_labels += [q.labels for q in test]
        depth = max(len(q.labels) for q in train)
        k = _best(range(1, depth + 1), lambda k: mean_prf(topk_keeps(train, k), train)["f1"])
        held["topk"] += topk_keeps(test, k)
        cosines = np.round(np.arange(-0.2, 1.0, 0.01), 2)
        t = _best(cosines, lambda t: mean_prf(threshold_keeps(train, DENSE_COLUMN, t), train)["f1"])
        held["raw_threshold"] += threshold_keeps(test, DENSE_COLUMN, t)
        held["gap_cut"] += gap_keeps(test)
        scored += test
    result = {name: mean_prf(keeps, scored) for name, keeps in held.items()}
    report: dict[str, Any] = dict(result.pop("filter"))
    report["ece"] = ece(np.concatenate(all_probs), np.concatenate(all_labels))
    report["baselines"] = result
    report["queries"] = len(scored)
    report["folds"] = folds
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in report.items()} | {
        "baselines": {n: {m: round(x, 4) for m, x in r.items()} for n, r in result.items()}}


def empty_rate(cal: Calibrator, qs: list[LabelledQuery]) -> float:
    """Share of queries for which the filter returns nothing."""
    if not qs:
        return 0.0
    return float(np.mean([not cal.cut(q.x).any() for q in qs]))
