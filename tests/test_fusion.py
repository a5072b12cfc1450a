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


def _views(rng, n=2000):
    """A corpus of ``n`` passages with correlated BM25 and cosine scores (BM25 zero for most)."""
    dense = rng.normal(0.3, 0.1, n)
    bm25 = np.where(rng.random(n) < 0.4, np.maximum(0, 8 * dense + rng.normal(0, 2, n)), 0.0)
    return bm25, dense


def _candidates_at(bm25, dense, depth):
    """What the retriever gathers at ``depth``: the union of both views' top ``depth``, both scores."""
    top_b = np.argsort(-bm25, kind="stable")[:depth]
    top_b = top_b[bm25[top_b] > 0]
    top_d = np.argsort(-dense, kind="stable")[:depth]
    ids = list(dict.fromkeys(top_b.tolist() + top_d.tolist()))
    rank_b = {p: r for r, p in enumerate(top_b.tolist(), 1)}
    rank_d = {p: r for r, p in enumerate(top_d.tolist(), 1)}
    return Candidates([str(i) for i in ids], bm25[ids], dense[ids],
                      np.array([rank_b.get(i, 0) for i in ids]), np.array([rank_d.get(i, 0) for i in ids]))


@pytest.mark.parametrize("method,norm", [("convex", "minmax"), ("convex", "zscore"), ("convex", "rank"),
                                         ("rrf", "minmax"), ("adaptive", "minmax"), ("anchored", "minmax")])
def test_first_results_do_not_depend_on_how_many_were_asked_for(method, norm):
    """Over 200 random queries: the top 10 fused from depth max(10, 100) equal the first 10 fused
    from depth 300, because statistics and order come from the top-100 head of each view."""
    from lucerag.search.fusion import order

    rng = np.random.default_rng(7)
    moved_without_head = 0
    for _ in range(200):
        bm25, dense = _views(rng)
        shallow, deep = _candidates_at(bm25, dense, 100), _candidates_at(bm25, dense, 300)
        top = [shallow.ids[i] for i in order(shallow, fuse(shallow, method, norm=norm, depth=100), 100)[:10]]
        first = [deep.ids[i] for i in order(deep, fuse(deep, method, norm=norm, depth=100), 100)[:10]]
        assert top == first
        old = [deep.ids[i] for i in np.argsort(-fuse(deep, method, norm=norm), kind="stable")[:10]]
        moved_without_head += old != top
    if method in ("convex", "anchored") and norm in ("minmax", "zscore"):
        assert moved_without_head > 0  # the old way (statistics over all candidates) did move them


def test_head_statistics_leave_deeper_candidates_below_zero():
    from lucerag.search.fusion import head

    c = Candidates(["a", "b", "c"], np.array([10.0, 5.0, 1.0]), np.array([0.9, 0.5, 0.1]),
                   np.array([1, 2, 3]), np.array([1, 2, 3]))
    assert head(c, 2).tolist() == [True, True, False]
    assert normalise(c.bm25, "minmax", head(c, 2)).tolist() == pytest.approx([1.0, 0.0, -0.8])


def test_adaptive_weight_follows_the_view_that_stands_out():
    from lucerag.search.adaptive import AdaptiveWeights, list_features

    rng = np.random.default_rng(3)
    flat = rng.normal(0.3, 0.01, 100)
    peaked = np.concatenate([[0.9, 0.85, 0.8], rng.normal(0.3, 0.01, 97)])
    ranks = np.arange(1, 101)
    dense_sure = Candidates([str(i) for i in range(100)], flat * 10, peaked, ranks, ranks)
    bm25_sure = Candidates([str(i) for i in range(100)], peaked * 10, flat, ranks, ranks)
    p = AdaptiveWeights(a=0.0, b=1.0, c=0.0)
    assert p.weight(list_features(dense_sure)) > 0.9 > 0.1 > p.weight(list_features(bm25_sure))


def test_anchored_fusion_keeps_the_cosine_scale_and_ignores_the_bm25_scale():
    """cosine + w * zscore(BM25): the order does not change when BM25 scores are rescaled (another
    corpus' document lengths or idf), and a dense gap larger than the BM25 term can move is kept."""
    from lucerag.search.fusion import anchored, order

    rng = np.random.default_rng(11)
    for _ in range(50):
        bm25, dense = _views(rng)
        c = _candidates_at(bm25, dense, 100)
        scaled = Candidates(c.ids, c.bm25 * 7.3, c.dense, c.bm25_rank, c.dense_rank)
        assert order(c, anchored(c, 0.06, 100), 100).tolist() == order(scaled, anchored(scaled, 0.06, 100), 100).tolist()
    c = Candidates(["a", "b"], np.array([0.0, 30.0]), np.array([0.9, 0.5]), np.array([2, 1]), np.array([1, 2]))
    assert anchored(c, 0.06)[0] > anchored(c, 0.06)[1]  # 0.4 cosine apart: BM25 (2 sd at most here) cannot flip it
    assert fuse(c, "anchored", bm25_weight=0.0).tolist() == pytest.approx(c.dense.tolist())
