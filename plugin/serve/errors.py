"""Errors as HTTP answers: only lucerag's own errors become 4xx; anything else is a 500 with a
request id and no internals (the traceback goes to the server log).

Every error body is ``{"error": {"type", "message", "details"?, "request_id"?}}``:

| status | type | raised as |
| --- | --- | --- |
| 401 | ``unauthorized`` | :class:`~lucerag.errors.Unauthorized` |
| 404 / 405 | ``not_found`` / ``method_not_allowed`` | routing |
| 413 | ``request_too_large`` | the body limit (``limits.max_body_bytes``) |
| 422 | ``invalid_request`` | :class:`~lucerag.errors.InputError` (``QueryError`` names its field), a body that is not JSON |
| 502 | ``llm_error`` | :class:`~lucerag.errors.LLMError` |
| 503 | ``overloaded`` / ``unavailable`` | :class:`~lucerag.errors.Overloaded` / :class:`~lucerag.errors.ClosedError` |
| 504 | ``timeout`` | :class:`~lucerag.errors.SearchTimeoutError` |
| 500 | ``internal_error`` | anything else, ``LuceragError`` or not: a ``request_id`` to find in the log |
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from lucerag.errors import (ClosedError, InputError, LLMError, LuceragError, Overloaded, QueryError,
                            SearchTimeoutError, Unauthorized)

log = logging.getLogger("lucerag.serve")


def error_response(status: int, kind: str, message: str, details: list | None = None,
                   headers: dict | None = None, request_id: str | None = None):
    from fastapi.responses import JSONResponse

    error: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        error["details"] = details
    if request_id is not None:
        error["request_id"] = request_id
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def internal_error(exc: BaseException):
    """500 with a fresh request id; the traceback is logged under that id, never sent."""
    request_id = uuid.uuid4().hex[:12]
    log.error("request %s failed", request_id, exc_info=exc)
    return error_response(500, "internal_error", "the server failed to answer this request; see its log "
                          f"(request id {request_id})", request_id=request_id)


def lucerag_error(exc: LuceragError):
    """The answer for one of lucerag's own errors (see the table in the module docstring)."""
    if isinstance(exc, QueryError):
        return error_response(422, "invalid_request", str(exc), [{"field": exc.field, "message": str(exc)}])
    if isinstance(exc, InputError):
        log.info("request refused: %s", exc)
        return error_response(422, "invalid_request", str(exc))
    if isinstance(exc, Unauthorized):
        return error_response(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Overloaded):
        return error_response(503, "overloaded", str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, ClosedError):
        return error_response(503, "unavailable", "the server is shutting down", headers={"Retry-After": "1"})
    if isinstance(exc, SearchTimeoutError):
        return error_response(504, "timeout", str(exc))
    if isinstance(exc, LLMError):
        log.warning("LLM endpoint failed: %s", exc)
        return error_response(502, "llm_error", "the LLM endpoint failed; see the server log")
    return internal_error(exc)


def validation_error(errors: list[dict[str, Any]]):
    """422 for a body that fails the request model (types, unknown or missing fields)."""
    details = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "json_invalid":
            loc, msg = "body", f"not valid JSON ({msg}, at position {loc})"
        details.append({"field": loc, "message": msg, "type": err.get("type")})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return error_response(422, "invalid_request", summary or "invalid request", details)


def install(app) -> None:
    """Register the handlers on a FastAPI ``app``."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(LuceragError)
    async def _lucerag(request: Request, exc: LuceragError):
        return lucerag_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return validation_error(list(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        kind = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code,
                                                                                            "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return internal_error(exc)
