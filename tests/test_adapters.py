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
        assert [d.metadata["score"] for d in docs] == [p.score for p in expected]
        assert docs[0].metadata["rank"] == 1 and docs[0].metadata["title"] == expected[0].title
    adocs = asyncio.run(lc.ainvoke(QUERIES[0]))
    assert [d.id for d in adocs] == [p.id for p in rag.retrieve(QUERIES[0], k=4, filter=False)]
    bm25 = LuceragRetriever(rag=rag, k=2, method="bm25").invoke("volcano magma")
    assert [d.id for d in bm25] == [p.id for p in rag.retrieve("volcano magma", k=2, method="bm25")]


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
