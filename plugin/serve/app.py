"""The FastAPI application of ``lucerag serve``: settings, the search on the worker pool, the routes.

``create_app(rag, settings)`` assembles small parts: :class:`ServerSettings` (key, limits,
timeout), :class:`Searches` (runs one checked request on the RAG worker pool and records its
metrics), the routes (:func:`add_routes`), the error handlers (:mod:`lucerag.serve.errors`) and the
middleware (:mod:`lucerag.serve.middleware`).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lucerag.config import MAX_K, LimitsConfig
from lucerag.errors import ClosedError, ConfigError, Overloaded, SearchTimeoutError, Unauthorized
from lucerag.passage import Passage
from lucerag.rag.api import RAG
from lucerag.search.filters import parse as parse_where
from lucerag.search.request import QueryRequest, check_offset, check_request, relevance_option
from lucerag.serve import errors, metrics as m
from lucerag.serve.docs import offline_docs
from lucerag.serve.middleware import JsonBody, Metrics
from lucerag.serve.tenants import Tenants
from lucerag.serve.schemas import (ERRORS, ContextResponse, GenerateResponse, Health, QueryBody, RetrieveResponse,
                                   request_models)


class ServerSettings(BaseModel):
    """Security and limits of the HTTP service (``lucerag serve`` options).

    The limits default to the configuration's ``[limits]`` (:class:`~lucerag.config.LimitsConfig`);
    a value set here replaces it for this server and may only be lower."""

    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None            # required in Authorization: Bearer <key> or X-API-Key when set
    # One key per tenant instead of one key for all: each request searches only its tenant's passages
    # (lucerag.serve.tenants). Exclusive with api_key.
    tenants: Tenants | None = None
    max_k: int | None = Field(None, ge=1, le=MAX_K)
    max_body_bytes: int | None = Field(None, ge=256, le=10_000_000)
    max_query_chars: int | None = Field(None, ge=1)
    max_context_tokens: int | None = Field(None, ge=64)
    search_timeout: float = Field(30.0, gt=0, le=600)   # seconds a request waits for its search

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServerSettings":
        values: dict[str, Any] = {}
        if os.environ.get("LUCERAG_API_KEY"):
            values["api_key"] = os.environ["LUCERAG_API_KEY"]
        if os.environ.get("LUCERAG_TENANTS"):
            values["tenants"] = Tenants.load(os.environ["LUCERAG_TENANTS"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @model_validator(mode="after")
    def _one_kind_of_key(self) -> "ServerSettings":
        if self.api_key is not None and self.tenants is not None:
            raise ValueError("give either an API key or a tenants file, not both (with tenants, every key "
                             "belongs to one tenant)")
        return self

    @property
    def secured(self) -> bool:
        """True when every search request must carry a key."""
        return self.api_key is not None or self.tenants is not None

    def limits(self, configured: LimitsConfig) -> LimitsConfig:
        """The configuration's limits with this server's overrides; raises ConfigError for a raise."""
        updates = {name: getattr(self, name) for name in LimitsConfig.model_fields
                   if getattr(self, name, None) is not None}
        for name, value in updates.items():
            if value > getattr(configured, name):
                raise ConfigError(f"{name} {value} is above the configuration's limits.{name} "
                                  f"({getattr(configured, name)}): raise it in the configuration")
        return configured.model_copy(update=updates)


class Searches:
    """Runs checked requests on the RAG worker pool (never on the event loop) and counts them."""

    def __init__(self, rag: RAG, limits: LimitsConfig, timeout: float, registry: m.Registry):
        self.rag, self.limits, self.timeout = rag, limits, timeout
        self.latency = registry.histogram("lucerag_search_duration_seconds",
                                          "Search time on the worker pool (seconds), by method.", ["method"])
        self.returned = registry.counter("lucerag_passages_returned_total", "Passages returned, by endpoint.",
                                         ["route"])
        self.empty = registry.counter("lucerag_empty_results_total",
                                      "Searches that returned no passage (nothing relevant), by endpoint.",
                                      ["route"])
        self.pending = registry.gauge("lucerag_search_pending", "Searches running or waiting on the worker pool.")
        self.rejected = registry.counter("lucerag_search_rejected_total", "Searches refused: overload or timeout.",
                                         ["reason"])

    def check(self, body: QueryBody) -> QueryRequest:
        """The one request validator, with this server's limits (raises QueryError -> 422); the
        metadata filter's syntax is checked here too (FilterError -> 422 naming the node)."""
        if body.where is not None:
            parse_where(body.where)
        # the deprecated field is read from the model's data: reading the attribute would warn on every request
        relevance = relevance_option(body.relevance_filter, body.__dict__.get("filter"))
        return check_request(body.query, body.k, body.method, relevance, getattr(body, "max_tokens", None),
                             limits=self.limits)

    async def run(self, req: QueryRequest, route: str, body: QueryBody | None = None, *,
                  tenants: Tenants | None = None, tenant: str | None = None):
        """(page, milliseconds) for a checked request: a :class:`~lucerag.rag.api.Page`. With
        ``tenants``, only ``tenant``'s passages are searched (its filter ANDed into ``where``)."""
        rag = self.rag
        where = body.where if body is not None else None
        if tenants is not None:
            if tenant is None:  # the authorizer never lets this happen; never search every tenant
                raise Unauthorized("missing API key")
            where = tenants.scope(tenant, where)
        cursor, offset = getattr(body, "cursor", None), getattr(body, "offset", None)
        if cursor is not None and offset is not None:
            from lucerag.errors import QueryError

            raise QueryError("send either offset or cursor, not both", "cursor")

        def search():
            t = time.perf_counter()
            page = rag.page(req.query, req.k, cursor=cursor, offset=check_offset(offset or 0), where=where,
                            relevance_filter=req.filter, method=req.method)
            self.latency.observe(time.perf_counter() - t, req.method)
            return page

        start = time.perf_counter()
        try:
            future = rag.pool.submit(search)
        except Overloaded:
            self.rejected.inc("overload")
            raise
        self.pending.set(rag.pool.pending)
        try:
            page = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except asyncio.TimeoutError:
            future.cancel()
            self.rejected.inc("timeout")
            raise SearchTimeoutError(f"search took over {self.timeout:g}s") from None
        self.returned.inc(route, amount=len(page.passages))
        if not page.passages:
            self.empty.inc(route)
        return page, (time.perf_counter() - start) * 1000


def authorizer(api_key: str | None, tenants: Tenants | None = None):
    """A FastAPI dependency that raises Unauthorized unless the request carries ``api_key`` (or,
    with ``tenants``, one tenant's key); it returns the request's tenant (None without tenants)."""
    from fastapi import Depends
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")

    async def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                        key: str | None = Depends(header_key)) -> str | None:
        if api_key is None and tenants is None:
            return None
        given = credentials.credentials if credentials is not None else key
        if given is None:
            raise Unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key")
        if tenants is not None:
            tenant = tenants.tenant_for(given)
            if tenant is None:
                raise Unauthorized("invalid API key")
            return tenant
        assert api_key is not None
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise Unauthorized("invalid API key")
        return None

    return authorize


def add_routes(app, searches: Searches, api_key: str | None, registry: m.Registry,
               tenants: Tenants | None = None) -> None:
    from fastapi import Depends, Request
    from fastapi.responses import Response, StreamingResponse

    rag = searches.rag
    info = rag.info()
    RetrieveRequest, ContextRequest, GenerateRequest = request_models(searches.limits)
    auth = Depends(authorizer(api_key, tenants))
    secured = {"responses": ERRORS}

    async def run(req: QueryRequest, route: str, body, tenant: str | None):
        return await searches.run(req, route, body, tenants=tenants, tenant=tenant)

    # The request models are made here, for these limits: their annotations are set as objects
    # (this module's annotations are strings, which FastAPI would resolve in the module's globals).
    async def retrieve(body, tenant=auth) -> RetrieveResponse:
        req = searches.check(body)
        page, took = await run(req, "/v1/retrieve", body, tenant)
        return RetrieveResponse(query=req.query, method=req.method, k=req.k or info["default_k"],
                                filtered=rag.filter_applies(req.method, req.filter), passages=page.passages,
                                offset=page.offset, next_cursor=page.next_cursor, took_ms=round(took, 3))

    async def context(body, tenant=auth) -> ContextResponse:
        req = searches.check(body)
        page, took = await run(req, "/v1/context", body, tenant)
        ctx = rag.build_context(req.query, page.passages, max_tokens=req.max_tokens, system_prompt=body.system_prompt)
        return ContextResponse(**ctx.model_dump(), passages=page.passages, took_ms=round(took, 3))

    async def generate(body, tenant=auth):
        from lucerag.rag.llm import AnswerStream, answer_from

        req = searches.check(body)
        page, took = await run(req, "/v1/generate", body, tenant)
        ctx = rag.build_context(req.query, page.passages, max_tokens=req.max_tokens, system_prompt=body.system_prompt)
        if not body.stream:
            answer = answer_from(ctx, await rag.llm.acomplete(ctx.messages))
            return GenerateResponse(query=answer.query, text=answer.text, model=answer.model,
                                    citations=answer.citations, finish_reason=answer.finish_reason,
                                    usage=answer.usage, passages=page.passages, took_ms=round(took, 3))
        stream = AnswerStream(ctx, rag.llm)
        deltas = stream.__aiter__()
        try:  # the first chunk before the response starts: an unreachable LLM is still an HTTP error
            first = await anext(deltas, None)
        except BaseException:
            await deltas.aclose()
            raise
        return StreamingResponse(sse_answer(stream, deltas, first, page.passages), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    retrieve.__annotations__ = {"body": RetrieveRequest, "tenant": str | None, "return": RetrieveResponse}
    context.__annotations__ = {"body": ContextRequest, "tenant": str | None, "return": ContextResponse}
    generate.__annotations__ = {"body": GenerateRequest, "tenant": str | None}
    app.post("/v1/retrieve", response_model=RetrieveResponse, summary="Ranked passages for a query",
             **secured)(retrieve)
    app.post("/v1/context", response_model=ContextResponse,
             summary="A cited LLM prompt (chat messages) for a query", **secured)(context)
    app.post("/v1/generate", response_model=GenerateResponse, summary="An answer from the LLM with its citations "
             "(JSON, or server-sent events with stream=true)",
             responses={**ERRORS, 200: {"content": {"application/json": {}, "text/event-stream": {}}}})(generate)


    @app.get("/healthz", response_model=Health, summary="Liveness and index facts")
    async def healthz() -> Health:
        if rag.closed:
            raise ClosedError("closed")
        return Health(status="ok", version=version(), **rag.info())   # the index now open (it may be reopened)

    async def metrics_(request):
        searches.pending.set(rag.pool.pending if not rag.closed else 0)
        body, content_type = registry.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    metrics_.__annotations__ = {"request": Request}
    app.get("/metrics", summary="Prometheus metrics (text format; OpenMetrics when the scraper asks for it)",
            responses={200: {"content": {m.CONTENT_TYPE: {}}}})(metrics_)


def _sse(event: str, data: Any) -> bytes:
    import json

    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def sse_answer(stream, deltas, first: str | None, passages: list[Passage]):
    """The server-sent events of a streamed answer: ``context``, ``delta``..., then ``answer`` (the
    citations are resolved once the whole text is known) or ``error``."""
    from lucerag.errors import LLMError

    yield _sse("context", {"citations": [c.model_dump() for c in stream.context.citations],
                           "passages": [p.id for p in passages]})
    try:
        if first is not None:
            yield _sse("delta", {"text": first})
        async for delta in deltas:
            yield _sse("delta", {"text": delta})
    except LLMError as exc:
        yield _sse("error", {"type": "llm_error", "message": str(exc)})
        return
    answer = stream.answer
    yield _sse("answer", {"text": answer.text, "model": answer.model, "finish_reason": answer.finish_reason,
                          "usage": answer.usage, "citations": [c.model_dump() for c in answer.citations]})


def create_app(rag: RAG, settings: ServerSettings | None = None, *, close_rag: bool = False):
    """The FastAPI application serving ``rag``. ``close_rag``: close it when the server stops.

    Raises :class:`~lucerag.errors.ConfigError` when ``settings`` raise a limit above the configuration's."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    settings = settings or ServerSettings.from_env()
    limits = settings.limits(rag.retriever.config.limits)
    if settings.tenants is not None:  # refuse to start rather than serve a filter that matches nothing
        table = settings.tenants

        def check_tenants(retriever) -> None:
            for index in {id(i): i for i in (retriever.bm25_index, retriever.dense_index) if i}.values():
                table.check_index(index.manifest.metadata_fields if index.manifest else None, str(index.path))

        check_tenants(rag.retriever)
        rag.reload_checks.append(check_tenants)   # a reopened index must pass too (lucerag.rag.api.IndexWatch)
    registry = m.Registry()

    @asynccontextmanager
    async def lifespan(app):
        yield
        if close_rag:
            await asyncio.get_running_loop().run_in_executor(None, rag.close)

    app = FastAPI(title="lucerag", version=version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Hybrid BM25 + HNSW retrieval over Lucene, and LLM prompts with citations.")
    offline_docs(app)
    add_routes(app, Searches(rag, limits, settings.search_timeout, registry), settings.api_key, registry,
               settings.tenants)
    errors.install(app)
    app.add_middleware(JsonBody, limit=limits.max_body_bytes)
    app.add_middleware(Metrics, registry=registry)   # added last = outermost: counts the 413s too
    app.state.rag, app.state.settings, app.state.registry, app.state.limits = rag, settings, registry, limits
    return app


def version() -> str:
    try:
        from importlib.metadata import version as _version

        return _version("lucerag")
    except Exception:  # noqa: BLE001 - no metadata in a source checkout
        return "0"
