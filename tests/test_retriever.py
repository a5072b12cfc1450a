"""The query path on a real index: BM25, dense and hybrid, one index or two."""

import pytest

from conftest import mini_documents
from lucerag.config import Config
from lucerag.index.reader import IndexNotFoundError
from lucerag.ingest.pipeline import build_index
from lucerag.search.retriever import QueryError, Retriever


@pytest.mark.parametrize("method", ["bm25", "dense", "hybrid"])
def test_each_method_finds_the_answer(retriever, method):
    # unfiltered: the relevance filter (tests/test_filter.py) may rightly keep the answer alone
    passages = retriever.search("why does a volcano erupt", k=3, method=method, filter=False)
    assert passages[0].id == "p03"
    assert len(passages) >= 2  # BM25 returns only passages sharing a term with the query
    assert [p.rank for p in passages] == list(range(1, len(passages) + 1))
    assert all(a.score >= b.score for a, b in zip(passages, passages[1:]))
    assert "magma" in passages[0].text and passages[0].title == "Volcanoes"


def test_hybrid_passages_carry_both_views(retriever):
    passages = retriever.search("approximate nearest neighbour search graph", k=5)
    top = passages[0]
    assert top.id == "p13"
    assert top.bm25_score is not None and top.dense_score is not None
    assert top.bm25_rank == 1 or top.dense_rank == 1
    assert all(p.dense_score is not None and -1.0 <= p.dense_score <= 1.0 for p in passages)


def test_hybrid_fills_in_exact_scores_for_one_view_candidates(retriever, encoder):
    """A passage only one view retrieved gets its real score from the other view, not zero."""
    query = "how do bees tell others where flowers are"
    depth = 3
    candidates, _ = retriever.candidates(query, depth)
    only_bm25 = [i for i in range(len(candidates)) if candidates.dense_rank[i] == 0]
    only_dense = [i for i in range(len(candidates)) if candidates.bm25_rank[i] == 0]
    assert only_bm25 or only_dense
    qv = encoder.encode_query(query)
    for i in only_bm25:
        doc = next(d for d in mini_documents() if d.id == candidates.ids[i])
        expected = float(encoder.encode_passages([doc.text])[0] @ qv)
        assert candidates.dense[i] == pytest.approx(expected, abs=1e-3)
    full_bm25 = dict(zip(*(lambda h: (h.ids, h.scores))(retriever.bm25.search(query, 100))))
    for i in only_dense:
        assert candidates.bm25[i] == pytest.approx(full_bm25.get(candidates.ids[i], 0.0), rel=1e-5)


def test_bm25_scores_by_doc_number_equal_the_search_scores(retriever):
    """The exact-score fill-in reaches documents one by one; it must agree with a full BM25 search,
    in any order, and leave out documents without a query term."""
    import random

    query = "bees flowers honey"
    hits = retriever.bm25.search(query, 10_000)
    every = list(range(retriever.bm25.index.reader.maxDoc()))
    random.Random(0).shuffle(every)
    got = retriever.bm25.score(query, every)
    assert 0 < len(hits) < len(every)  # some documents do not match, so absence is tested
    assert got == pytest.approx(dict(zip(hits.docnums, hits.scores.tolist())), rel=1e-6)


def test_lucene_syntax_is_plain_text(retriever):
    for query in ['AND OR ( ) : " * ~ ^ \\', "volcano AND (magma OR lava)~2 title:*", "c++ -- \"unterminated"]:
        passages = retriever.search(query, k=3)
        assert isinstance(passages, list)
    assert retriever.search("volcano AND (magma OR lava)~2", k=1, method="bm25")[0].id in {"p03", "p04"}


def test_empty_query_is_rejected(retriever):
    for query in ["", "   \n\t"]:
        with pytest.raises(QueryError, match="query is empty"):
            retriever.search(query)


def test_unknown_method_is_named(retriever):
    with pytest.raises(ValueError, match="unknown method 'sparse'"):
        retriever.search("tea", method="sparse")


def test_rrf_fusion_from_configuration(mini_index, encoder):
    config = Config.for_index(mini_index, fusion={"method": "rrf", "rrf_k": 60})
    with Retriever(config, encoder=encoder) as r:
        top = r.search("how is espresso made", k=2)
    assert top[0].id == "p14"
    assert top[0].score == pytest.approx(sum(1 / (60 + x) for x in (top[0].bm25_rank, top[0].dense_rank) if x))


def test_two_existing_indexes_give_the_same_ranking(tmp_path, mini_index, encoder, retriever):
    """Anserini deployments keep BM25 and HNSW in separate indexes: configuration accepts both."""
    bm25_dir, dense_dir = tmp_path / "bm25", tmp_path / "dense"
    build_index(mini_documents(), bm25_dir, dense=False, progress=False)
    build_index(mini_documents(), dense_dir, encoder=encoder, progress=False)
    config = Config.model_validate({"index": {"bm25_path": str(bm25_dir), "dense_path": str(dense_dir)}})
    with Retriever(config, encoder=encoder) as two:
        for query in ["what causes tides in the ocean", "do antibiotics work against viruses"]:
            a = two.search(query, k=5)
            b = retriever.search(query, k=5)
            assert [p.id for p in a] == [p.id for p in b]
            assert [p.score for p in a] == pytest.approx([p.score for p in b], abs=1e-6)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="no Lucene index at"):
        Retriever.from_index(tmp_path / "missing")


def test_dense_without_vectors_is_a_clear_error(tmp_path, encoder):
    build_index(mini_documents(), tmp_path / "bm25", dense=False, progress=False)
    with Retriever.from_index(tmp_path / "bm25", encoder=encoder) as r:
        assert r.search("tea", k=1, method="bm25")[0].id == "p15"
        with pytest.raises(ValueError, match="no dense vectors"):
            r.search("tea", method="dense")


def test_int8_query_encoder_from_configuration(mini_index, retriever):
    """encoder.precision = "int8" quantises a copy of the model once and ranks like fp32."""
    config = Config.for_index(mini_index, encoder={"precision": "int8"})
    with Retriever(config) as r:
        assert r.encoder.manifest.precision == "int8"
        for query in ["why does a volcano erupt", "how is espresso made", "what causes tides in the ocean"]:
            a = r.search(query, k=3, filter=False)
            b = retriever.search(query, k=3, filter=False)
            assert a[0].id == b[0].id
            assert a[0].dense_score == pytest.approx(b[0].dense_score, abs=0.02)


def test_dense_over_two_indexes_reads_the_text_from_the_bm25_index(tmp_path, mini_index, encoder, retriever):
    """Issue 15 item 14: an Anserini-style HNSW index stores ids and vectors only."""
    from test_ids import _lucene_index

    from lucerag.ingest.pipeline import dense_passage_text

    docs = mini_documents()  # encoded as the one-index reference was (title + text)
    vectors = encoder.encode_passages([dense_passage_text(d.title, d.text) for d in docs])
    dense_dir = _lucene_index(tmp_path / "hnsw", [(d.id, None, v) for d, v in zip(docs, vectors)], mini_index)
    bm25_dir = tmp_path / "bm25"
    build_index(docs, bm25_dir, dense=False, progress=False)
    config = Config.model_validate({"index": {"bm25_path": str(bm25_dir), "dense_path": str(dense_dir)}})
    text = {d.id: d.text for d in docs}
    with Retriever(config, encoder=encoder) as two:
        for method in ("dense", "hybrid"):
            found = two.search("why does a volcano erupt", k=5, method=method, filter=False)
            same = retriever.search("why does a volcano erupt", k=5, method=method, filter=False)
            assert [p.id for p in found] == [p.id for p in same]
            assert [p.text for p in found] == [text[p.id] for p in found] and all(p.text for p in found)
            assert [p.title for p in found] == [p.title for p in same]


def test_an_encoded_index_with_no_passages_finds_nothing_by_every_method(tmp_path, encoder):
    """Issue 15 item 15: dense and hybrid return [] like bm25, not "built with --bm25-only?"."""
    build_index([], tmp_path / "empty", encoder=encoder, progress=False)
    with Retriever.from_index(tmp_path / "empty", encoder=encoder) as r:
        for method in ("bm25", "dense", "hybrid"):
            assert r.search("anything at all", k=5, method=method, filter=False) == []
            assert r.rank("anything at all", method, 5).ids == []
    build_index([], tmp_path / "sparse", dense=False, progress=False)
    with Retriever.from_index(tmp_path / "sparse", encoder=encoder) as r:  # BM25-only: still an error
        with pytest.raises(ValueError, match="no dense vectors"):
            r.search("anything", method="dense")


def test_query_vector_cache_is_lru_and_off_at_zero(mini_index, encoder):
    """Repeated query texts reuse their vector; the least recently used is dropped; cache 0 encodes every time."""
    from lucerag.config import Config
    from lucerag.search.retriever import Retriever

    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def encode_query(self, text):
            calls.append(text)
            return self.inner.encode_query(text)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    with Retriever(Config.for_index(mini_index, encoder={"cache": 2}), Counting(encoder)) as r:
        first = r.rank("solar panels", "hybrid", 5).ids
        assert r.rank("solar panels", "hybrid", 5).ids == first and calls == ["solar panels"]
        r.rank("wind", "dense", 3), r.rank("rain", "dense", 3), r.rank("solar panels", "dense", 3)
        assert calls == ["solar panels", "wind", "rain", "solar panels"]  # evicted by two newer texts
        assert not r.query_vector("rain").flags.writeable
    calls.clear()
    with Retriever(Config.for_index(mini_index, encoder={"cache": 0}), Counting(encoder)) as r:
        r.rank("wind", "dense", 3), r.rank("wind", "dense", 3)
        assert calls == ["wind", "wind"]
