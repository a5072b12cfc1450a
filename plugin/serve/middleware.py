"""Plain ASGI middleware of the HTTP service (cheap: no per-request objects beyond what they need).

- :class:`JsonBody`: request bodies are read once, at most ``limit`` bytes (413), and must be JSON
  sent as ``Content-Type: application/json``, in UTF-8, nested at most :data:`MAX_JSON_DEPTH`
  deep (422 ``invalid_request`` naming what is wrong); the checked body is then replayed to the app.
- :class:`Metrics`: counts requests by route, method and status and times them; label values come
  from fixed sets (unknown routes are ``other``, unknown HTTP methods ``OTHER``), so clients cannot
  add series.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lucerag.serve import metrics as m
from lucerag.serve.errors import error_response

MAX_JSON_DEPTH = 32       # a query request is 1 level deep; deeper bodies are refused before parsing
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def body_problem(content_type: str | None, body: bytes) -> str | None:
    """Why ``body`` is not an acceptable JSON request body (a message naming the fault), or None."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        got = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        return f"body: send JSON with Content-Type: application/json ({got})"
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in params.split(";")
                    if p.strip().lower().startswith("charset=")), "utf-8")
    if charset not in ("utf-8", "utf8"):
        return f"body: JSON must be UTF-8, not charset={charset}"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"body: not valid UTF-8 (byte {exc.start})"
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text) > MAX_JSON_DEPTH:
        return f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    return None


class JsonBody:
    """Reads each request body once, bounded and checked (see the module docstring), then replays it."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._reject(scope, receive, send, 413, "request_too_large")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._reject(scope, receive, send, 413, "request_too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type")
        problem = body_problem(content_type.decode("latin-1") if content_type is not None else None, body)
        if problem is not None:
            return await self._reject(scope, receive, send, 422, "invalid_request", problem)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send, status: int, kind: str, message: str | None = None):
        message = message or f"request body over {self.limit} bytes"
        field = message.split(":", 1)[0] if status == 422 else None
        details = [{"field": field, "message": message.split(": ", 1)[1]}] if field else None
        await error_response(status, kind, message, details)(scope, receive, send)


class Metrics:
    """Counts requests by route, method and status, and times them."""

    ROUTES = ("/v1/retrieve", "/v1/context", "/v1/generate", "/healthz", "/metrics", "/openapi.json", "/docs",
              "/redoc")

    def __init__(self, app: Any, registry: m.Registry):
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
        method = scope.get("method", "")
        method = method if method in KNOWN_METHODS else "OTHER"
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
            self.requests.inc(route, method, str(status[0]))
            self.latency.observe(time.perf_counter() - start, route)
