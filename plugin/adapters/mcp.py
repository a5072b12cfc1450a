"""An MCP tool server (fastmcp) exposing lucerag search to LLM agents: ``lucerag mcp``.

Tools:

- ``search(query, k=5, method="hybrid", where=None, relevance_filter=None, offset=0)``: ranked passages
  (id, title, text, scores); ``where`` is a metadata filter (lucerag.search.filters);
- ``context(query, k=8, max_tokens=3000, where=None)``: the numbered sources block and citations,
  ready to quote.

``filter`` is the old name of ``relevance_filter`` (deprecated).

Tools are async and run the search on the RAG worker pool (threads attached to the JVM once).
"""

from __future__ import annotations

from typing import Any, Literal

from lucerag.errors import LuceragError
from lucerag.rag.api import RAG
from lucerag.search.request import relevance_option


def create_mcp(rag: RAG, name: str = "lucerag"):
    """The fastmcp server. Requests are checked by the one request validator (``rag.check``, the
    index's ``[limits]``); lucerag's own errors come back as tool errors with their message (no
    traceback on stderr), anything else as fastmcp's generic tool error."""
    from fastmcp import FastMCP
    from fastmcp.exceptions import ToolError

    mcp = FastMCP(name, instructions="Search the lucerag index (BM25 + dense hybrid) for passages that answer a "
                                     "question; cite passages by their id.")

    @mcp.tool(annotations={"readOnlyHint": True, "idempotentHint": True})
    async def search(query: str, k: int = 5, method: Literal["hybrid", "bm25", "dense"] = "hybrid",
                     where: dict[str, Any] | None = None, relevance_filter: bool | None = None,
                     offset: int = 0, filter: bool | None = None) -> list[dict[str, Any]]:
        """Ranked passages for a question or keywords (best first). An empty list means nothing relevant.
        ``where`` keeps passages whose metadata matches, e.g. {"and": [{"term": {"lang": "en"}},
        {"range": {"year": {"gte": 2020}}}]} (also terms, exists, or, not); ``offset`` skips ranks."""
        try:
            req = rag.check(query, k, filter=relevance_option(relevance_filter, filter), method=method)
            passages = await rag.aretrieve(req.query, req.k, where=where, relevance_filter=req.filter,
                                           offset=offset, method=req.method)
        except LuceragError as exc:
            raise ToolError(str(exc)) from None
        return [p.model_dump(exclude_none=True) for p in passages]

    @mcp.tool(annotations={"readOnlyHint": True, "idempotentHint": True})
    async def context(query: str, k: int = 8, max_tokens: int = 3000, where: dict[str, Any] | None = None,
                      relevance_filter: bool | None = None, filter: bool | None = None) -> dict[str, Any]:
        """Numbered sources for a question, within a token budget, with citations mapping [n] to passage ids.
        ``where``: a metadata filter as in ``search``."""
        try:
            req = rag.check(query, k, filter=relevance_option(relevance_filter, filter), max_tokens=max_tokens)
            ctx = await rag.acontext(req.query, req.k, max_tokens=req.max_tokens, where=where,
                                     relevance_filter=req.filter)
        except LuceragError as exc:
            raise ToolError(str(exc)) from None
        return {"sources": ctx.messages[-1].content, "citations": [c.model_dump() for c in ctx.citations],
                "empty": ctx.empty}

    return mcp


def run_mcp(rag: RAG, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8001) -> None:
    mcp = create_mcp(rag)
    try:
        if transport == "stdio":
            mcp.run(transport="stdio", show_banner=False)
        else:
            mcp.run(transport="http", host=host, port=port, show_banner=False)
    finally:
        rag.close()
