"""An MCP tool server (fastmcp) exposing lucerag search to LLM agents: ``lucerag mcp``.

Tools:

- ``search(query, k=5, method="hybrid", filter=None)``: ranked passages (id, title, text, scores);
- ``context(query, k=8, max_tokens=3000)``: the numbered sources block and citations, ready to quote.

Tools are async and run the search on the RAG worker pool (threads attached to the JVM once).
"""

from __future__ import annotations

from typing import Any, Literal

from lucerag.errors import LuceragError
from lucerag.rag.api import RAG


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
                     filter: bool | None = None) -> list[dict[str, Any]]:
        """Ranked passages for a question or keywords (best first). An empty list means nothing relevant."""
        try:
            req = rag.check(query, k, filter=filter, method=method)
            passages = await rag.aretrieve(req.query, req.k, filter=req.filter, method=req.method)
        except LuceragError as exc:
            raise ToolError(str(exc)) from None
        return [p.model_dump(exclude_none=True) for p in passages]

    @mcp.tool(annotations={"readOnlyHint": True, "idempotentHint": True})
    async def context(query: str, k: int = 8, max_tokens: int = 3000, filter: bool | None = None) -> dict[str, Any]:
        """Numbered sources for a question, within a token budget, with citations mapping [n] to passage ids."""
        try:
            req = rag.check(query, k, filter=filter, max_tokens=max_tokens)
            ctx = await rag.acontext(req.query, req.k, max_tokens=req.max_tokens, filter=req.filter)
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
