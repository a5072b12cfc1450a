"""The HTTP service (FastAPI + uvicorn): ``lucerag serve``.

Endpoints: ``POST /v1/retrieve``, ``POST /v1/context``, ``GET /healthz``, ``GET /metrics``
(Prometheus text), ``GET /openapi.json`` and ``/docs``. Requests are validated by pydantic models
that reject unknown fields; every error is a JSON body ``{"error": {"type", "message", ...}}`` with
a 4xx status (or 503 when overloaded, 504 on a search timeout), never a stack trace.

Searches run on the :class:`~lucerag.rag.api.SearchPool` worker threads (attached to the JVM once),
never on the event loop; the pool's queue is bounded so overload answers 503 quickly.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lucerag.serve import metrics as m
from lucerag.rag.api import RAG, ClosedError, Overloaded
from lucerag.rag.context import Citation, ChatMessage
from lucerag.passage import Passage
from lucerag.search.retriever import QueryError

log = logging.getLogger("lucerag.serve.http")

MAX_QUERY_CHARS = 2000
MAX_K = 1000


class ServerSettings(BaseModel):
    """Limits and security of the HTTP service (``lucerag serve`` options)."""

    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None            # required in Authorization: Bearer <key> or X-API-Key when set
    max_k: int = Field(100, ge=1, le=MAX_K)
    max_body_bytes: int = Field(16_384, ge=256, le=10_000_000)
    max_query_chars: int = Field(1000, ge=1, le=MAX_QUERY_CHARS)
    max_context_tokens: int = Field(16_000, ge=64, le=1_000_000)
    search_timeout: float = Field(30.0, gt=0, le=600)   # seconds a request waits for its search

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServerSettings":
        values: dict[str, Any] = {}
        if os.environ.get("LUCERAG_API_KEY"):
            values["api_key"] = os.environ["LUCERAG_API_KEY"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


# -- request and response models --------------------------------------------------------------------

class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="The question or keywords.")
    k: int | None = Field(None, ge=1, le=MAX_K, description="Passages wanted (default: the index's search.k).")
    method: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filter: bool | None = Field(None, description="Drop passages the relevance filter finds probably irrelevant "
                                                "(default: on for hybrid when a calibrator fits the index).")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("query is empty")
        return v


class RetrieveRequest(_Request):
    pass


class RetrieveResponse(BaseModel):
    query: str
    method: str
    k: int
    filtered: bool = Field(description="Whether the relevance filter was applied.")
    passages: list[Passage]
    took_ms: float


class ContextRequest(_Request):
    max_tokens: int | None = Field(None, ge=64, le=1_000_000, description="Prompt token budget.")
    system_prompt: str | None = Field(None, max_length=8000)


class ContextResponse(BaseModel):
    query: str
    messages: list[ChatMessage]
    citations: list[Citation]
    prompt_tokens: int
    max_tokens: int
    empty: bool
    duplicates: list[str]
    dropped: list[str]
    passages: list[Passage]
    took_ms: float


class ErrorBody(BaseModel):
    type: str
    message: str
    details: list[dict[str, Any]] | None = None
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]
    index: str | None
    passages: int
    views: list[str]
    filter: bool
    default_k: int
    version: str


ERRORS = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
          422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}, 504: {"model": ErrorResponse}}


def _error(status: int, type_: str, message: str, details: list | None = None, headers: dict | None = None,
           request_id: str | None = None):
    from fastapi.responses import JSONResponse

    body = {"error": {"type": type_, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    if request_id is not None:
        body["error"]["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


# -- middleware (plain ASGI: cheap) -----------------------------------------------------------------

class BodyLimit:
    """Rejects request bodies over ``limit`` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)

    async def _reject(self, scope, receive, send):
        response = _error(413, "request_too_large", f"request body over {self.limit} bytes")
        await response(scope, receive, send)


class Metrics:
    """Counts requests by route, method and status, and times them."""

    ROUTES = ("/v1/retrieve", "/v1/context", "/healthz", "/metrics", "/openapi.json", "/docs")

    def __init__(self, app, registry: m.Registry):
        self.app = app
        self.requests = registry.counter("lucerag_http_requests_total", "HTTP requests by route, method and status.",
                                         ["route", "method", "status"])
        self.latency = registry.histogram("lucerag_http_request_duration_seconds",
                                          "HTTP request latency by route (seconds).", ["route"])
        self.inflight = registry.gauge("lucerag_http_requests_in_flight", "HTTP requests being served.")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        route = path if path in self.ROUTES else "other"
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.inflight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.inflight.dec()
            self.requests.inc(route, scope.get("method", ""), str(status[0]))
            self.latency.observe(time.perf_counter() - start, route)


# -- the application -----------------------------------------------------------------------------

def create_app(rag: RAG, settings: ServerSettings | None = None, *, close_rag: bool = False):
    """The FastAPI application serving ``rag``. ``close_rag``: close it when the server stops."""
    from contextlib import asynccontextmanager

    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import PlainTextResponse
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException

    settings = settings or ServerSettings.from_env()
    registry = m.Registry()
    search_latency = registry.histogram("lucerag_search_duration_seconds",
                                        "Search time on the worker pool (seconds), by method.", ["method"])
    passages_returned = registry.counter("lucerag_passages_returned_total", "Passages returned, by endpoint.",
                                         ["route"])
    empty_results = registry.counter("lucerag_empty_results_total",
                                     "Searches that returned no passage (nothing relevant), by endpoint.", ["route"])
    pending = registry.gauge("lucerag_search_pending", "Searches running or waiting on the worker pool.")
    rejected = registry.counter("lucerag_search_rejected_total", "Searches refused: overload or timeout.",
                                ["reason"])
    info = rag.info()

    @asynccontextmanager
    async def lifespan(app):
        yield
        if close_rag:
            await asyncio.get_running_loop().run_in_executor(None, rag.close)

    app = FastAPI(title="lucerag", version=_version(), lifespan=lifespan,
                  description="Hybrid BM25 + HNSW retrieval over Lucene, and LLM prompts with citations.")
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")

    async def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                        key: str | None = Depends(header_key)) -> None:
        if settings.api_key is None:
            return
        given = credentials.credentials if credentials is not None else key
        if given is None:
            raise _AuthError("missing API key: send Authorization: Bearer <key> or X-API-Key")
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise _AuthError("invalid API key")

    @app.exception_handler(_AuthError)
    async def _auth(request: Request, exc: _AuthError):
        return _error(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        details = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = "unknown field"
            elif err.get("type") == "json_invalid":
                loc, msg = "body", f"not valid JSON ({msg}, at position {loc})"
            details.append({"field": loc, "message": msg, "type": err.get("type")})
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _error(422, "invalid_request", summary or "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        request_id = uuid.uuid4().hex[:12]
        log.exception("request %s failed", request_id)
        return _error(500, "internal_error", "the server failed to answer this request; see its log",
                      request_id=request_id)

    async def search(req: _Request, route: str) -> tuple[list[Passage], float]:
        if len(req.query) > settings.max_query_chars:
            raise _Invalid(f"query: at most {settings.max_query_chars} characters", "query")
        if req.k is not None and req.k > settings.max_k:
            raise _Invalid(f"k: at most {settings.max_k} on this server", "k")

        def run() -> tuple[list[Passage], float]:
            t = time.perf_counter()
            passages = rag.retrieve(req.query, req.k, filter=req.filter, method=req.method)
            took = time.perf_counter() - t
            search_latency.observe(took, req.method)
            return passages, took

        start = time.perf_counter()
        try:
            future = rag.pool.submit(run)
        except Overloaded as exc:
            rejected.inc("overload")
            raise _Unavailable(str(exc)) from None
        pending.set(rag.pool.pending)
        try:
            passages, _ = await asyncio.wait_for(asyncio.wrap_future(future), settings.search_timeout)
        except asyncio.TimeoutError:
            future.cancel()
            rejected.inc("timeout")
            raise _Timeout(f"search took over {settings.search_timeout:g}s") from None
        passages_returned.inc(route, amount=len(passages))
        if not passages:
            empty_results.inc(route)
        return passages, (time.perf_counter() - start) * 1000

    @app.exception_handler(_Invalid)
    async def _invalid_limit(request: Request, exc: _Invalid):
        return _error(422, "invalid_request", str(exc), [{"field": exc.field, "message": str(exc)}])

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError):
        return _error(422, "invalid_request", str(exc), [{"field": "query", "message": str(exc)}])

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError):
        # what the retriever refuses for this index (no dense view, no calibrator for filter=true, ...)
        log.info("request refused: %s", exc)
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(_Unavailable)
    async def _overload(request: Request, exc: _Unavailable):
        return _error(503, "overloaded", str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(ClosedError)
    async def _closed(request: Request, exc: ClosedError):
        return _error(503, "unavailable", "the server is shutting down", headers={"Retry-After": "1"})

    @app.exception_handler(_Timeout)
    async def _timeout(request: Request, exc: _Timeout):
        return _error(504, "timeout", str(exc))

    @app.post("/v1/retrieve", response_model=RetrieveResponse, responses=ERRORS, dependencies=[Depends(authorize)],
              summary="Ranked passages for a query")
    async def retrieve(req: RetrieveRequest) -> RetrieveResponse:
        passages, took = await search(req, "/v1/retrieve")
        return RetrieveResponse(query=req.query, method=req.method, k=req.k or info["default_k"],
                                filtered=req.filter is not False and req.method == "hybrid" and info["filter"],
                                passages=passages, took_ms=round(took, 3))

    @app.post("/v1/context", response_model=ContextResponse, responses=ERRORS, dependencies=[Depends(authorize)],
              summary="A cited LLM prompt (chat messages) for a query")
    async def context(req: ContextRequest) -> ContextResponse:
        if req.max_tokens is not None and req.max_tokens > settings.max_context_tokens:
            raise _Invalid(f"max_tokens: at most {settings.max_context_tokens} on this server", "max_tokens")
        passages, took = await search(req, "/v1/context")
        ctx = rag.build_context(req.query, passages, max_tokens=req.max_tokens, system_prompt=req.system_prompt)
        return ContextResponse(**ctx.model_dump(), passages=passages, took_ms=round(took, 3))

    @app.get("/healthz", response_model=Health, summary="Liveness and index facts")
    async def healthz() -> Health:
        if rag.closed:
            raise ClosedError("closed")
        return Health(status="ok", version=_version(), **info)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics_():
        pending.set(rag.pool.pending if not rag.closed else 0)
        return PlainTextResponse(registry.render(), media_type=m.CONTENT_TYPE)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Metrics, registry=registry)   # added last = outermost: counts the 413s too
    app.state.rag, app.state.settings, app.state.registry = rag, settings, registry
    return app


class _AuthError(Exception):
    pass


class _Invalid(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class _Unavailable(Exception):
    pass


class _Timeout(Exception):
    pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("lucerag")
    except Exception:  # noqa: BLE001
        return "0"


# -- running it ----------------------------------------------------------------------------------

def make_server(app, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning",
                limit_concurrency: int | None = 1000, access_log: bool = False):
    """A ``uvicorn.Server`` for ``app`` (call ``.run()``, or ``.run(sockets=[sock])``)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            limit_concurrency=limit_concurrency, timeout_keep_alive=30,
                            server_header=False, lifespan="on")
    return uvicorn.Server(config)


def serve(rag: RAG, settings: ServerSettings | None = None, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning") -> None:
    """Serve ``rag`` until interrupted (uvicorn's event loop on this thread; searches on the pool)."""
    app = create_app(rag, settings, close_rag=True)
    make_server(app, host, port, log_level=log_level).run()


class BackgroundServer:
    """Runs an app with uvicorn on a background thread, on 127.0.0.1 and a free port (tests, notebooks).

    ``with BackgroundServer(app) as server: httpx.get(server.url + "/healthz")``
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, **options: Any):
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = make_server(app, self.host, self.port, **options)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="lucerag-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
