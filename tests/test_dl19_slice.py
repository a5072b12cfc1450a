"""Quality on the real MS MARCO passage slice judged with TREC DL19 (skips without ../shared/data)."""

import pytest

from conftest import DL19_SLICE, needs_shared

pytestmark = needs_shared(DL19_SLICE)


@pytest.fixture(scope="module")
def slice_results(dl19_index, encoder):
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries
    from lucerag.eval.runs import run_queries, score_run
    from lucerag.search.retriever import Retriever

    index = dl19_index
    qrels = read_beir_qrels(DL19_SLICE)
    queries = {q: t for q, t in read_beir_queries(DL19_SLICE).items() if q in qrels}
    assert len(queries) == 43
    results = {}
    with Retriever.from_index(index, encoder=encoder) as retriever:
        for method in ("bm25", "dense", "hybrid"):
            run, _ = run_queries(lambda q, m=method: (lambda r: (r.ids, r.scores))(retriever.rank(q, m, 100)),
                                 queries)
            results[method] = score_run(run, qrels, ["nDCG@10", "R@100"])
    return results


def test_bm25_quality(slice_results):
    assert slice_results["bm25"]["nDCG@10"] >= 0.60


def test_dense_quality(slice_results):
    assert slice_results["dense"]["nDCG@10"] >= 0.68


def test_hybrid_beats_the_better_view(slice_results):
    r = slice_results
    assert r["hybrid"]["nDCG@10"] >= max(r["dense"]["nDCG@10"], r["bm25"]["nDCG@10"])
    assert r["hybrid"]["R@100"] >= max(r["dense"]["R@100"], r["bm25"]["R@100"])
