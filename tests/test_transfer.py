"""Leave-one-collection-out evaluation: metrics, fitting on some collections and measuring on another,
and the query path's first results not depending on k (real DL19 index when the shared data is there)."""

import numpy as np
import pytest

from conftest import DATA, DL19_SLICE, needs_shared
from lucerag.eval.transfer import Judged, fit_adaptive, leave_one_out, markdown, ndcg, prf
from lucerag.search.fusion import Candidates


def test_ndcg_matches_the_definition():
    judged = {"a": 2, "b": 1}
    ideal = 2 + 1 / np.log2(3)
    assert ndcg(["a", "b", "x"], judged) == pytest.approx(1.0)
    assert ndcg(["x", "a"], judged) == pytest.approx((2 / np.log2(3)) / ideal)
    assert ndcg(["x"], {}) == 0.0


def test_empty_answer_conventions():
    assert prf(np.zeros(3, bool), np.zeros(3, int)) == 1.0   # unanswerable, nothing returned
    assert prf(np.ones(3, bool), np.zeros(3, int)) == 0.0    # unanswerable, something returned
    assert prf(np.zeros(3, bool), np.array([1, 0, 0])) == 0.0


def _collection(name, rng, queries, bm25_good, answerable=True):
    """Synthetic collection: one relevant passage per query, found well by BM25 when ``bm25_good``
    else by dense; its list then stands out in that view."""
    cands, texts, qrels = {}, {}, {}
    for q in range(queries):
        n = 150
        dense = rng.normal(0.3, 0.05, n)
        bm25 = np.abs(rng.normal(5, 1.5, n))
        if answerable:
            if bm25_good:
                bm25[0] += 10
                dense[0] += rng.normal(0.02, 0.05)
            else:
                dense[0] += 0.3
                bm25[0] += rng.normal(0.5, 1.5)
        ranks_b = np.empty(n, int)
        ranks_b[np.argsort(-bm25)] = np.arange(1, n + 1)
        ranks_d = np.empty(n, int)
        ranks_d[np.argsort(-dense)] = np.arange(1, n + 1)
        qid = f"{name}{q}"
        ids = [f"{qid}-{i}" for i in range(n)]
        cands[qid] = Candidates(ids, bm25, dense, np.where(ranks_b <= 100, ranks_b, 0),
                                np.where(ranks_d <= 100, ranks_d, 0))
        texts[qid] = f"query {q}"
        qrels[qid] = {ids[0]: 1} if answerable else {}
    return cands, texts, qrels


def test_adaptive_fusion_fitted_on_one_collection_transfers_to_another():
    rng = np.random.default_rng(5)
    # A: half the queries are lexical, half semantic; B: mostly lexical. A fixed weight fitted on
    # A cannot serve B; a weight following each list's standout can.
    a1, a2 = _collection("a", rng, 20, True), _collection("A", rng, 20, False)
    a = Judged("a", {**a1[0], **a2[0]}, {**a1[1], **a2[1]}, {**a1[2], **a2[2]})
    params = fit_adaptive([a], 100)
    assert params.b > 0  # trusts the view that stands out
    b = Judged("b", *_collection("b", rng, 25, True))
    for other in ("a", "b"):
        un = _collection(f"u{other}", rng, 10, True, answerable=False)
        (a if other == "b" else b).unanswerable[other] = (un[0], un[1])
    report = leave_one_out({"a": a, "b": b}, 100)
    fb = report["b"]["fusion"]
    assert fb["adaptive (fitted)"] >= fb["convex (fitted w)"] + 0.05
    assert report["b"]["fitted_on"] == ["a"] and report["a"]["fitted_on"] == ["b"]
    table = markdown(report)
    assert "adaptive (fitted)" in table and "raw cosine threshold" in table and "min_score on min-max" in table


def test_ablation_fits_on_one_collection_and_reports_its_ceiling_on_the_other():
    """`lucerag bench transfer-ablation` on two synthetic collections: every row is fitted on the other
    collection, never beats the same family's best on the measured one, and the report is plain JSON."""
    import json

    from lucerag.eval.ablation import ablation, markdown as ablation_markdown

    rng = np.random.default_rng(8)
    cols = {}
    for name, lexical in (("a", True), ("b", False)):
        j = Judged(name, *_collection(name, rng, 12, lexical))
        neg = _collection(f"n{name}", rng, 6, lexical, answerable=False)
        j.negatives = (neg[0], neg[1])
        cols[name] = j
    report = ablation(cols, 100)
    for kind in ("cut", "fusion"):
        rows = report[kind]
        assert {(r["measured_on"], r["fitted_on"]) for r in rows} == {("a", "b"), ("b", "a")}
        for r in rows:
            if r["in_sample"] is not None:
                assert r["value"] <= r["in_sample"] + 1e-9, r
    shipped = [r for r in report["cut"] if r["variant"] == "mixture (shipped)"]
    assert all(0.0 <= r["value"] <= 1.0 for r in shipped) and len(shipped) == 2
    json.dumps(report, allow_nan=False)
    table = ablation_markdown(report)
    assert "gap spacing test" in table and "zscore over BM25's own top" in table


@needs_shared(DL19_SLICE)
def test_top10_at_k10_equals_first10_at_k300_on_the_dl19_slice(dl19_index, encoder):
    """Over the 50 DL19 queries and the 52 written out-of-domain ones: paging never reorders."""
    from lucerag.eval.filter import read_query_lines
    from lucerag.eval.topics import read_beir_queries
    from lucerag.search.retriever import Retriever

    queries = list(read_beir_queries(DL19_SLICE).values()) + list(read_query_lines(DATA / "ood_queries.txt").values())
    with Retriever.from_index(dl19_index, encoder=encoder) as r:
        for q in queries:
            assert r.rank(q, "hybrid", 10).ids == r.rank(q, "hybrid", 300).ids[:10], q
        for q in queries[:20]:
            short, p_short = r.filtered(q, 10, cut=False)
            long, p_long = r.filtered(q, 300, cut=False)
            assert short.ids == long.ids[:10]
            assert p_short == pytest.approx(p_long[:10])


def test_pseudo_queries_are_sentences_of_their_own_relevant_passage(mini_index):
    from lucerag.eval.pseudo import pseudo_queries
    from lucerag.index.reader import LuceneIndex
    from lucerag.lucene import jvm

    jvm.start()
    index = LuceneIndex(mini_index)
    try:
        queries, qrels = pseudo_queries(index, n=8, seed=1)
        assert 0 < len(queries) <= 8 and set(queries) == set(qrels)
        texts = {pid: index.record(d).get("contents", "") for pid, d in
                 index.docnums([p for judged in qrels.values() for p in judged]).items()}
        for qid, q in queries.items():
            (pid, grade), = qrels[qid].items()
            assert grade == 1 and 6 <= len(q.split()) <= 20
            title = index.record(index.docnums([pid])[pid]).get("title") or ""
            assert q in texts[pid] or q == title
        assert pseudo_queries(index, n=8, seed=1) == (queries, qrels)  # seeded
    finally:
        index.close()
