"""LangChain and LlamaIndex retrievers return the Python API's passages (real packages installed)."""

import asyncio

import pytest

from lucerag.rag.api import RAG

QUERIES = ["why does a volcano erupt", "how do plants make sugar from light", "what ranking function uses k1 and b"]


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=2) as r:
        yield r


def test_langchain_retriever_matches_the_api(rag):
    pytest.importorskip("langchain_core", reason="extra lucerag[langchain] not installed")
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from lucerag.adapters.langchain import LuceragRetriever

    lc = LuceragRetriever(rag=rag, k=4, filter=False)
    assert isinstance(lc, BaseRetriever)
    for q in QUERIES:
        expected = rag.retrieve(q, k=4, filter=False)
        docs = lc.invoke(q)
        assert all(isinstance(d, Document) for d in docs)
        assert [d.id for d in docs] == [p.id for p in expected]
        assert [d.page_content for d in docs] == [p.text for p in expected]
        assert [d.metadata["lucerag_score"] for d in docs] == [p.score for p in expected]
        assert docs[0].metadata["lucerag_rank"] == 1 and docs[0].metadata["title"] == expected[0].title
    adocs = asyncio.run(lc.ainvoke(QUERIES[0]))
    assert [d.id for d in adocs] == [p.id for p in rag.retrieve(QUERIES[0], k=4, filter=False)]
    bm25 = LuceragRetriever(rag=rag, k=2, method="bm25").invoke("volcano magma")
    assert [d.id for d in bm25] == [p.id for p in rag.retrieve("volcano magma", k=2, method="bm25")]


def test_langchain_per_call_k_is_checked_not_replaced(rag):
    """invoke(q, k=0) is refused like rag.retrieve(q, k=0): it used to fall back to the retriever's
    own k silently (``k or self.k``), so a caller's k=0 returned the default number of documents."""
    pytest.importorskip("langchain_core", reason="extra lucerag[langchain] not installed")
    from lucerag.adapters.langchain import LuceragRetriever
    from lucerag.errors import QueryError

    lc = LuceragRetriever(rag=rag, k=3, relevance_filter=False)
    with pytest.raises(QueryError, match="k must be between 1"):
        lc.invoke(QUERIES[0], k=0)
    with pytest.raises(QueryError, match="k must be between 1"):
        asyncio.run(lc.ainvoke(QUERIES[0], k=0))
    assert len(lc.invoke(QUERIES[0], k=1)) == 1 and len(lc.invoke(QUERIES[0])) == 3


def test_llamaindex_retriever_matches_the_api(rag):
    pytest.importorskip("llama_index.core", reason="extra lucerag[llamaindex] not installed")
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore

    from lucerag.adapters.llamaindex import LuceragRetriever

    li = LuceragRetriever(rag, k=4, filter=False)
    assert isinstance(li, BaseRetriever)
    for q in QUERIES:
        expected = rag.retrieve(q, k=4, filter=False)
        nodes = li.retrieve(q)
        assert all(isinstance(n, NodeWithScore) for n in nodes)
        assert [n.node.node_id for n in nodes] == [p.id for p in expected]
        assert [n.node.get_content() for n in nodes] == [p.text for p in expected]
        assert [n.score for n in nodes] == [p.score for p in expected]
    anodes = asyncio.run(li.aretrieve(QUERIES[1]))
    assert [n.node.node_id for n in anodes] == [p.id for p in rag.retrieve(QUERIES[1], k=4, filter=False)]


@pytest.fixture(scope="module")
def meta_rag(tmp_path_factory):
    """Documents whose own metadata uses the names retrieval fields used to overwrite."""
    from lucerag.connectors import Document
    from lucerag.ingest.pipeline import build_index
    from lucerag.search.retriever import Retriever

    long = " ".join(f"section {i} explains how office keys are rotated and where spares are kept" for i in range(8))
    docs = [Document(id="kb-1", title="Key rotation", text="Rotate the office keys every month at reception.",
                     metadata={"score": 4.7, "rank": "gold", "id": "SRC-1", "title": "Owner's title",
                               "source": "wiki/keys"}),
            Document(id="kb-long", title="Key handbook", text=long),
            Document(id="kb-2", title="Vacation", text="Vacation requests go to your manager.")]
    index = tmp_path_factory.mktemp("meta") / "idx"
    build_index(docs, index, dense=False, progress=False, max_words=30, overlap_words=4)
    with Retriever.from_index(index) as retriever, RAG(retriever, workers=1) as r:
        yield r


def test_langchain_keeps_the_sources_metadata_and_names_its_own_fields(meta_rag):
    """Issue 15 item 13."""
    pytest.importorskip("langchain_core", reason="extra lucerag[langchain] not installed")
    from lucerag.adapters.langchain import LuceragRetriever

    expected = meta_rag.retrieve("office keys rotate", k=10, method="bm25", filter=False)
    docs = LuceragRetriever(rag=meta_rag, k=10, method="bm25", filter=False).invoke("office keys rotate")
    assert [d.id for d in docs] == [p.id for p in expected] and len(docs) >= 3
    by_id = {d.id: d.metadata for d in docs}
    assert "kb-1" in by_id, [(d.id, d.page_content[:30]) for d in docs]
    own = by_id["kb-1"]
    assert (own["score"], own["rank"], own["id"], own["title"], own["source"]) == (
        4.7, "gold", "SRC-1", "Owner's title", "wiki/keys")
    for rank, (d, p) in enumerate(zip(docs, expected), 1):
        assert d.metadata["lucerag_score"] == p.score and d.metadata["lucerag_rank"] == rank
        assert d.metadata["lucerag_bm25_score"] == p.bm25_score
    chunk = next(d for d in docs if d.id.startswith("kb-long#"))
    assert chunk.metadata["source"] == chunk.metadata["lucerag_doc_id"] == "kb-long"
    assert chunk.metadata["title"] == "Key handbook"


def test_llamaindex_keeps_the_sources_metadata_and_sets_the_parent_document(meta_rag):
    pytest.importorskip("llama_index.core", reason="extra lucerag[llamaindex] not installed")
    from lucerag.adapters.llamaindex import LuceragRetriever

    expected = meta_rag.retrieve("office keys rotate", k=10, method="bm25", filter=False)
    nodes = LuceragRetriever(meta_rag, k=10, method="bm25", filter=False).retrieve("office keys rotate")
    assert [n.node.node_id for n in nodes] == [p.id for p in expected]
    assert [n.score for n in nodes] == [p.score for p in expected]
    own = next(n.node for n in nodes if n.node.node_id == "kb-1")
    assert (own.metadata["score"], own.metadata["rank"], own.metadata["id"], own.metadata["title"]) == (
        4.7, "gold", "SRC-1", "Owner's title")
    assert own.ref_doc_id == "kb-1" and own.metadata["lucerag_rank"] >= 1
    chunk = next(n.node for n in nodes if n.node.node_id.startswith("kb-long#"))
    assert chunk.ref_doc_id == "kb-long" and chunk.metadata["title"] == "Key handbook"
    assert "lucerag_score" not in chunk.get_content(metadata_mode="llm")
    assert "Key handbook" in chunk.get_content(metadata_mode="llm")
