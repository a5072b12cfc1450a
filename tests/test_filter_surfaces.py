"""Metadata filters through every way in: Python API, LangChain, LlamaIndex, MCP (HTTP: test_server).

Each surface must return what the Python API returns for the same filter, and only passages whose
metadata matches (checked against the reference semantics in test_metadata_filters).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from lucerag.rag.api import RAG
from lucerag.search.filters import FilterError
from test_metadata_filters import META, matches, meta_index, meta_retriever  # noqa: F401 - fixtures

QUERY = "how do plants and animals get energy"
WHERE = {"and": [{"terms": {"lang": ["en", "fr"]}}, {"range": {"year": {"gte": 2004}}}]}
FEW = {"range": {"year": {"gte": 2022}}}       # 3 passages: fewer than k
NONE = {"term": {"lang": "xx"}}                # no passage


@pytest.fixture(scope="module")
def rag(meta_retriever):  # noqa: F811
    with RAG(meta_retriever, workers=2) as r:
        yield r


def _ok(ids, where):
    return all(matches(where, META[i]) for i in ids)


def test_python_api(rag):
    for method in ("hybrid", "bm25", "dense"):
        got = rag.retrieve(QUERY, 5, where=WHERE, method=method, relevance_filter=False)
        assert _ok([p.id for p in got], WHERE)
        everything = [p.id for p in rag.retrieve(QUERY, 25, method=method, relevance_filter=False)]
        if method != "hybrid":  # (hybrid fuses over the filtered candidates: test_metadata_filters)
            assert [p.id for p in got] == [i for i in everything if matches(WHERE, META[i])][:5]
        assert got or method == "bm25"  # BM25 finds only passages holding a query term
    few = rag.retrieve(QUERY, 10, where=FEW, relevance_filter=False)
    assert len(few) == 3 and _ok([p.id for p in few], FEW)
    assert rag.retrieve(QUERY, 10, where=NONE, relevance_filter=False) == []
    batch = rag.retrieve_batch([QUERY, "volcano"], 4, where=WHERE, relevance_filter=False)
    assert [p.id for p in batch[0]] == [p.id for p in rag.retrieve(QUERY, 4, where=WHERE, relevance_filter=False)]
    ctx = rag.context(QUERY, 4, where=FEW, relevance_filter=False)
    assert {c.passage_id for c in ctx.citations} <= {p.id for p in few}
    with pytest.raises(ValueError, match="metadata filters go in `where`"):
        rag.retrieve(QUERY, 4, filter={"lang": "en"})
    with pytest.warns(DeprecationWarning, match="relevance_filter"):
        old = rag.retrieve(QUERY, 4, filter=False)
    assert [p.id for p in old] == [p.id for p in rag.retrieve(QUERY, 4, relevance_filter=False)]


def test_pages_under_a_filter_concatenate(rag):
    whole = rag.retrieve(QUERY, 25, where=WHERE, relevance_filter=False)
    joined, cursor = [], None
    while True:
        page = rag.page(QUERY, 3, cursor=cursor, where=WHERE, relevance_filter=False)
        joined += page.passages
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [p.id for p in joined] == [p.id for p in whole] and len(whole) == sum(
        matches(WHERE, m) for m in META.values())


def test_langchain(rag):
    pytest.importorskip("langchain_core", reason="extra lucerag[langchain] not installed")
    from lucerag.adapters.langchain import LuceragRetriever

    lc = LuceragRetriever(rag=rag, k=5, where=WHERE, relevance_filter=False)
    expected = [p.id for p in rag.retrieve(QUERY, 5, where=WHERE, relevance_filter=False)]
    assert [d.id for d in lc.invoke(QUERY)] == expected
    assert [d.id for d in asyncio.run(lc.ainvoke(QUERY))] == expected
    few = lc.invoke(QUERY, where=FEW, k=10)                    # per call: replaces the retriever's own
    assert len(few) == 3 and _ok([d.id for d in few], FEW) and all(d.metadata["year"] >= 2022 for d in few)
    assert lc.invoke(QUERY, where=NONE) == []
    with pytest.warns(DeprecationWarning):
        old = LuceragRetriever(rag=rag, k=5, filter=False)
    assert old.relevance_filter is False


def test_llamaindex(rag):
    pytest.importorskip("llama_index.core", reason="extra lucerag[llamaindex] not installed")
    from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter,
                                                      MetadataFilters)

    from lucerag.adapters.llamaindex import LuceragRetriever, where_from_llamaindex

    li_filters = MetadataFilters(filters=[
        MetadataFilter(key="lang", value=["en", "fr"], operator=FilterOperator.IN),
        MetadataFilter(key="year", value=2004, operator=FilterOperator.GTE)], condition=FilterCondition.AND)
    assert where_from_llamaindex(li_filters) == {"and": [{"terms": {"lang": ["en", "fr"]}},
                                                         {"range": {"year": {"gte": 2004}}}]}
    expected = [p.id for p in rag.retrieve(QUERY, 5, where=WHERE, relevance_filter=False)]
    li = LuceragRetriever(rag, k=5, relevance_filter=False, filters=li_filters)
    assert [n.node.node_id for n in li.retrieve(QUERY)] == expected
    li_where = LuceragRetriever(rag, k=10, relevance_filter=False, where=FEW)
    assert len(li_where.retrieve(QUERY)) == 3
    assert LuceragRetriever(rag, k=10, relevance_filter=False, where=NONE).retrieve(QUERY) == []
    ne = MetadataFilters(filters=[MetadataFilter(key="lang", value="en", operator=FilterOperator.NE)])
    got = LuceragRetriever(rag, k=25, relevance_filter=False, filters=ne).retrieve(QUERY)
    assert got and all(META[n.node.node_id]["lang"] != "en" for n in got)
    with pytest.raises(ValueError, match="text_match"):
        where_from_llamaindex(MetadataFilters(filters=[
            MetadataFilter(key="lang", value="e", operator=FilterOperator.TEXT_MATCH)]))


def test_llamaindex_filters_mean_what_llamaindex_means(rag):
    """NOT over several filters is "none of them matches" in LlamaIndex (its own vector store's
    filter function); it was translated to not(and), i.e. "not all of them". ALL (every value in a
    list field) had no translation."""
    pytest.importorskip("llama_index.core", reason="extra lucerag[llamaindex] not installed")
    from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter,
                                                      MetadataFilters)
    from llama_index.core.vector_stores.utils import build_metadata_filter_fn

    from lucerag.adapters.llamaindex import LuceragRetriever

    cases = [
        MetadataFilters(filters=[MetadataFilter(key="lang", value="en", operator=FilterOperator.EQ),
                                 MetadataFilter(key="year", value=2010, operator=FilterOperator.GTE)],
                        condition=FilterCondition.NOT),
        MetadataFilters(filters=[MetadataFilter(key="tags", value=["even"], operator=FilterOperator.ALL),
                                 MetadataFilter(key="lang", value="de", operator=FilterOperator.NE)]),
        # IN / NIN with one string: that value, not its characters ("en" -> "e", "n")
        MetadataFilters(filters=[MetadataFilter(key="lang", value="en", operator=FilterOperator.IN)]),
        MetadataFilters(filters=[MetadataFilter(key="lang", value="en", operator=FilterOperator.NIN)]),
    ]
    for filters in cases:
        reference = build_metadata_filter_fn(lambda i: META[i], filters)
        expected = {i for i in META if reference(i)}
        # the dense view returns every matching passage (k above the corpus size)
        got = {n.node.node_id for n in LuceragRetriever(rag, k=100, method="dense", filters=filters).retrieve(QUERY)}
        assert got == expected and expected


def test_mcp(rag):
    pytest.importorskip("fastmcp", reason="fastmcp not installed")
    from fastmcp import Client
    from fastmcp.exceptions import ToolError

    from lucerag.adapters.mcp import create_mcp

    def data(result):
        if getattr(result, "structured_content", None):
            sc = result.structured_content
            return sc.get("result", sc)
        return json.loads(result.content[0].text)

    async def go():
        async with Client(create_mcp(rag)) as client:
            found = data(await client.call_tool("search", {"query": QUERY, "k": 5, "where": WHERE,
                                                               "relevance_filter": False}))
            few = data(await client.call_tool("search", {"query": QUERY, "k": 10, "where": FEW,
                                                             "relevance_filter": False}))
            none = data(await client.call_tool("search", {"query": QUERY, "k": 10, "where": NONE,
                                                              "relevance_filter": False}))
            ctx = data(await client.call_tool("context", {"query": QUERY, "k": 10, "where": FEW,
                                                              "relevance_filter": False}))
            with pytest.raises(ToolError, match="unknown bound 'gtee'"):
                await client.call_tool("search", {"query": QUERY, "where": {"range": {"year": {"gtee": 1}}}})
            return found, few, none, ctx

    found, few, none, ctx = asyncio.run(go())
    assert [p["id"] for p in found] == [p.id for p in rag.retrieve(QUERY, 5, where=WHERE, relevance_filter=False)]
    assert len(few) == 3 and _ok([p["id"] for p in few], FEW)
    assert none == [] or none is None or none == {"result": []}
    assert {c["passage_id"] for c in ctx["citations"]} <= {p["id"] for p in few}


def test_bad_filters_name_the_node_on_every_surface(rag):
    with pytest.raises(FilterError, match=r"where.and\[0\]: expected an object"):
        rag.retrieve(QUERY, where={"and": ["lang"]})
