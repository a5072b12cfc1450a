"""The int8 scan (lucerag.search.scan): exact integer products on every CPU, the float top-k back."""

from __future__ import annotations

import numpy as np
import pytest

from lucerag.search.scan import Int8Scan, oversample, quantise_rows


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight clusters, so many cosines are near-ties (the hard case for a coarse scan)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return _unit(centres[rng.integers(0, 20, n)] + 0.15 * rng.standard_normal((n, dim)))


def test_quantised_rows_stay_within_seven_bits_and_reconstruct_the_vectors():
    m = _clustered(500)
    m[7] = 0.0  # an all-zero row must not divide by zero
    w, scales = quantise_rows(m)
    assert w.dtype == np.int8 and int(np.abs(w).max()) <= 63
    assert np.abs(w.astype(np.float32) * scales[:, None] - m).max() <= scales.max() / 2 + 1e-7
    assert not w[7].any()


def test_integer_dot_products_are_exact_even_at_the_saturation_corner():
    """The scan's int32 products equal numpy's int64 ones, including all-extreme rows and queries
    (u8 255 x s8 +-63 pairs: the AVX2 vpmaddubsw pair sum would saturate with 8-bit weights)."""
    dim = 96
    m = np.vstack([np.ones(dim), -np.ones(dim), _clustered(300, dim)]).astype(np.float32)
    scan = Int8Scan(m)
    w, _ = quantise_rows(m)
    for q in (np.ones(dim, np.float32), -np.ones(dim, np.float32), m[5]):
        peak = np.abs(q).max()
        a = (np.clip(np.rint(q / (peak / 127)), -127, 127) + 128).astype(np.uint8)
        dots = scan._session.run(None, {"q": a[None]})[0][0]
        assert np.array_equal(dots.astype(np.int64), w.astype(np.int64) @ (a.astype(np.int64) - 128))


@pytest.mark.parametrize("k", [1, 10, 100])
def test_search_returns_the_float_top_k_with_exact_cosines(k):
    m = _clustered(5000)
    scan = Int8Scan(m)
    rng = np.random.default_rng(1)
    for q in _unit(rng.standard_normal((30, m.shape[1]))):
        rows, scores = scan.search(q, k)
        exact = m @ q
        truth = np.argsort(-exact, kind="stable")[:k]
        assert len(rows) == k
        assert np.allclose(scores, exact[rows], atol=1e-6)
        assert np.all(np.diff(scores) <= 1e-7)           # best first
        assert np.allclose(np.sort(scores)[::-1], exact[truth], atol=1e-6)  # the same k scores as the float scan


def test_small_and_empty_inputs():
    m = _clustered(30)
    rows, scores = Int8Scan(m).search(m[3], 100)      # k above n: every row, ranked
    assert len(rows) == 30 and rows[0] == 3 and scores[0] == pytest.approx(1.0, abs=1e-6)
    rows, scores = Int8Scan(np.zeros((0, 8), np.float32)).search(np.ones(8, np.float32), 10)
    assert len(rows) == 0 and len(scores) == 0
    assert oversample(10) == 110 and oversample(100) == 200
    with pytest.raises(ValueError, match="shape"):
        Int8Scan(np.zeros(8, np.float32))
