"""The MCP tool server (fastmcp), called through fastmcp's in-memory client."""

import asyncio
import json

import pytest

from lucerag.rag.api import RAG

fastmcp = pytest.importorskip("fastmcp", reason="fastmcp not installed")


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=2) as r:
        yield r


def _data(result):
    if getattr(result, "structured_content", None):
        sc = result.structured_content
        return sc.get("result", sc)
    return json.loads(result.content[0].text)


def test_mcp_tools_search_and_context(rag):
    from fastmcp import Client

    from lucerag.adapters.mcp import create_mcp

    server = create_mcp(rag)

    async def go():
        async with Client(server) as client:
            tools = {t.name for t in await client.list_tools()}
            found = await client.call_tool("search", {"query": "why does a volcano erupt", "k": 3,
                                                          "filter": False})
            ctx = await client.call_tool("context", {"query": "why does a volcano erupt", "k": 3, "filter": False})
            return tools, _data(found), _data(ctx)

    tools, found, ctx = asyncio.run(go())
    assert {"search", "context"} <= tools
    assert [p["id"] for p in found] == [p.id for p in rag.retrieve("why does a volcano erupt", k=3, filter=False)]
    assert found[0]["id"] == "p03" and "magma" in found[0]["text"]
    assert ctx["citations"][0]["passage_id"] == "p03" and "[1] Volcanoes" in ctx["sources"]
