"""Request and response bodies of the HTTP service (pydantic models; they make the OpenAPI schema).

Request models check types only (strictly: ``"filter": 0`` is not a boolean, ``"k": "5"`` not an
integer) and reject unknown fields; the values are checked by the one request validator,
:func:`lucerag.search.request.check_request`, with the server's limits. :func:`request_models`
writes those same limits into the schema, so the published bounds are the enforced ones.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from lucerag.config import LimitsConfig
from lucerag.passage import Passage
from lucerag.rag.context import ChatMessage, Citation
from lucerag.search.request import MIN_CONTEXT_TOKENS

MAX_SYSTEM_PROMPT_CHARS = 8000


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: StrictStr = Field(..., description="The question or keywords.")
    k: StrictInt | None = Field(None, description="Passages wanted (default: the index's search.k).")
    method: Literal["hybrid", "bm25", "dense"] = "hybrid"
    where: dict[str, Any] | None = Field(
        None, description="Metadata filter applied inside both views before their top-k: term, terms, range "
                          "(numbers, ISO dates), exists, and/or/not; a plain object means the AND of equalities.",
        examples=[{"and": [{"term": {"lang": "en"}}, {"range": {"year": {"gte": 2020}}}]}])
    relevance_filter: StrictBool | None = Field(
        None, description="Drop passages the relevance filter finds probably irrelevant (hybrid only; default: "
                          "[filter] enabled when a calibrator fits the index).")
    filter: StrictBool | None = Field(None, deprecated=True,
                                      description="Old name of relevance_filter (one more release).")


class RetrieveRequest(QueryBody):
    offset: StrictInt | None = Field(None, ge=0, description="Ranks to skip (pagination); or use cursor.")
    cursor: StrictStr | None = Field(None, max_length=512,
                                     description="next_cursor of the previous page (same query and filters).")


class ContextRequest(QueryBody):
    max_tokens: StrictInt | None = Field(None, description="Prompt token budget.")
    system_prompt: StrictStr | None = Field(None, max_length=MAX_SYSTEM_PROMPT_CHARS)


class GenerateRequest(ContextRequest):
    stream: StrictBool = Field(False, description="Answer as server-sent events: `context` (the sources), "
                                                  "`delta` (text as generated), then `answer` (the whole text "
                                                  "with the citations it uses) or `error`.")


def request_models(limits: LimitsConfig) -> tuple[type[RetrieveRequest], type[ContextRequest],
                                                  type[GenerateRequest]]:
    """The request models with ``limits`` written into their JSON schema (same names in OpenAPI)."""

    def bounds(low: int, high: int) -> dict[str, Any]:
        return {"anyOf": [{"type": "integer", "minimum": low, "maximum": high}, {"type": "null"}]}

    query_schema = {"type": "string", "minLength": 1, "maxLength": limits.max_query_chars}

    def with_limits(schema: dict[str, Any]) -> None:
        props = schema["properties"]
        props["query"].update(query_schema)
        props["k"].update(bounds(1, limits.max_k))
        if "max_tokens" in props:
            props["max_tokens"].update(bounds(MIN_CONTEXT_TOKENS, limits.max_context_tokens))

    def subclass(base: type[BaseModel]) -> Any:   # same name: the OpenAPI schema keeps it
        return type(base.__name__, (base,), {"__module__": __name__, "__qualname__": base.__name__,
                                             "model_config": ConfigDict(json_schema_extra=with_limits)})

    return subclass(RetrieveRequest), subclass(ContextRequest), subclass(GenerateRequest)


class RetrieveResponse(BaseModel):
    query: str
    method: str
    k: int
    filtered: bool = Field(description="Whether the relevance filter was applied.")
    passages: list[Passage]
    offset: int = Field(0, description="Ranks skipped before this page.")
    next_cursor: str | None = Field(None, description="Send as `cursor` (same query and filters) for the next "
                                                      "page; null after the last one.")
    took_ms: float


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


class GenerateResponse(BaseModel):
    query: str
    text: str
    model: str
    citations: list[Citation] = Field(description="The sources the answer cites ([n] in text), in first-use order.")
    finish_reason: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
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


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 413, 415, 422, 500, 502, 503, 504)}
