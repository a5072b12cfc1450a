import numpy as np
import pytest

from lucerag.search.fusion import Candidates, convex, fuse, normalise, rrf


def _cands():
    # a: top in BM25 only; b: top in dense only; c: second in both.
    return Candidates(ids=["a", "b", "c"], bm25=np.array([10.0, 1.0, 8.0]), dense=np.array([0.2, 0.9, 0.8]),
                      bm25_rank=np.array([1, 0, 2]), dense_rank=np.array([0, 1, 2]))


def test_minmax_maps_to_unit_interval():
    out = normalise(np.array([2.0, 4.0, 3.0]), "minmax")
    assert out.tolist() == [0.0, 1.0, 0.5]


def test_constant_scores_do_not_divide_by_zero():
    assert normalise(np.array([3.0, 3.0]), "minmax").tolist() == [1.0, 1.0]
    assert normalise(np.array([3.0, 3.0]), "zscore").tolist() == [0.0, 0.0]


def test_rank_normalisation_orders_like_scores():
    out = normalise(np.array([0.1, 0.9, 0.5]), "rank")
    assert np.argsort(-out).tolist() == [1, 2, 0]


def test_rrf_rewards_agreement_between_views():
    scores = rrf(_cands(), k=60)
    assert np.argmax(scores) == 2  # c is ranked by both views
    assert scores[0] == pytest.approx(1 / 61) and scores[1] == pytest.approx(1 / 61)


def test_convex_weight_moves_the_winner():
    c = _cands()
    assert np.argmax(convex(c, dense_weight=0.0)) == 0   # BM25 alone: a
    assert np.argmax(convex(c, dense_weight=1.0)) == 1   # dense alone: b
    assert np.argmax(convex(c, dense_weight=0.5)) == 2   # both: c


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown fusion method 'max'"):
        fuse(_cands(), "max")
    with pytest.raises(ValueError, match="unknown normalisation 'l2'"):
        normalise(np.array([1.0]), "l2")
