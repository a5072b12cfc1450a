"""The one validation of a query request, shared by every surface.

The Python API (:class:`~lucerag.rag.api.RAG`), the :class:`~lucerag.search.retriever.Retriever`,
the HTTP service, the MCP tools and the CLI all call :func:`check_request` (or :func:`check_query`
for the text alone) with the configuration's :class:`~lucerag.config.LimitsConfig`, so a request
is accepted or refused the same way, with the same message, wherever it comes from. Every refusal
is a :class:`~lucerag.errors.QueryError` whose ``field`` names the request field at fault.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, cast

from lucerag.config import LimitsConfig
from lucerag.errors import QueryError

Method = Literal["bm25", "dense", "hybrid"]
METHODS: tuple[Method, ...] = ("bm25", "dense", "hybrid")
MIN_CONTEXT_TOKENS = 64   # a smaller prompt budget cannot hold the instructions and one citation

_DEFAULT_LIMITS = LimitsConfig()


@dataclass(frozen=True)
class QueryRequest:
    """A checked query request: ``query`` stripped, the rest as given (None: the configured default)."""

    query: str
    k: int | None = None
    method: Method = "hybrid"
    filter: bool | None = None
    max_tokens: int | None = None


def check_query(query: Any, limits: LimitsConfig | None = None) -> str:
    """The query text, stripped and in Unicode NFC. Raises :class:`QueryError` when it is not a string, is empty or
    blank, holds an unpaired surrogate (it cannot be encoded as UTF-8, so neither Lucene nor the
    tokenizer can read it), or is longer than ``limits.max_query_chars`` characters."""
    limits = limits or _DEFAULT_LIMITS
    if not isinstance(query, str):
        raise QueryError(f"query must be a string, not {type(query).__name__}")
    query = query.strip()
    if not query:
        raise QueryError("query is empty")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(f"query holds an unpaired surrogate (U+{ord(query[exc.start]):04X}) at character "
                         f"{exc.start}: send text as valid Unicode") from None
    # One Unicode form: Lucene's analyzer compares code points, so "Schlu\u0308ssel" (NFD, what macOS
    # input and some PDFs give) never matched the NFC "Schlüssel" of the indexed text in BM25.
    query = unicodedata.normalize("NFC", query)
    if len(query) > limits.max_query_chars:
        raise QueryError(f"query is {len(query)} characters long; the limit is {limits.max_query_chars} "
                         "(limits.max_query_chars)")
    return query


def check_k(k: Any, limits: LimitsConfig | None = None) -> int | None:
    """``k`` when it is None or an integer in 1..``limits.max_k`` (booleans are not integers)."""
    limits = limits or _DEFAULT_LIMITS
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        raise QueryError(f"k must be an integer, not {type(k).__name__}", "k")
    if not 1 <= k <= limits.max_k:
        raise QueryError(f"k must be between 1 and {limits.max_k} (limits.max_k), got {k}", "k")
    return k


def check_method(method: Any) -> Method:
    if method not in METHODS:
        raise QueryError(f"unknown method {method!r}: use one of {', '.join(METHODS)}", "method")
    return cast(Method, method)


def check_filter(filter: Any, name: str = "filter") -> bool | None:
    """``filter`` when it is None, True or False: 0, 1, "yes" and the like are refused."""
    if filter is not None and not isinstance(filter, bool):
        raise QueryError(f"{name} must be true, false or null (unset), not {filter!r}", name)
    return filter


def relevance_option(relevance_filter: Any, filter: Any = None) -> bool | None:
    """The relevance-filter flag from its name and its old alias: the one place the alias is mapped.

    ``filter`` was the relevance filter's name until metadata filters (``where``) came; it is
    accepted for one more release with a ``DeprecationWarning``. A dict passed as ``filter`` is a
    metadata filter given the wrong name: the :class:`QueryError` says to use ``where``.
    """
    if isinstance(filter, dict) or isinstance(relevance_filter, dict):
        raise QueryError("metadata filters go in `where`; `relevance_filter` (formerly `filter`) switches "
                         "the relevance filter (true/false)", "where")
    if filter is None:
        return check_filter(relevance_filter, "relevance_filter")
    import warnings

    warnings.warn("`filter=` is now `relevance_filter=` (metadata filters are `where=`); the old name goes "
                  "in the next release", DeprecationWarning, stacklevel=3)
    filter = check_filter(filter)
    if relevance_filter is not None and check_filter(relevance_filter, "relevance_filter") != filter:
        raise QueryError("`filter` and `relevance_filter` disagree; pass only relevance_filter", "relevance_filter")
    return filter


def check_queries(queries: Any) -> list:
    """The queries of a batch as a list; a single string (or bytes) is refused: iterating it would
    search each character, and a batch of one must be a list of one."""
    if isinstance(queries, (str, bytes)):
        raise QueryError(f"queries must be a list of strings, not one {type(queries).__name__} "
                         "(retrieve() searches one query; a batch of one is [query])", "queries")
    return list(queries)


def check_offset(offset: Any) -> int:
    """``offset`` (ranks to skip, pagination) when it is an integer >= 0."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise QueryError(f"offset must be an integer >= 0, not {offset!r}", "offset")
    return offset


def check_max_tokens(max_tokens: Any, limits: LimitsConfig | None = None) -> int | None:
    limits = limits or _DEFAULT_LIMITS
    if max_tokens is None:
        return None
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise QueryError(f"max_tokens must be an integer, not {type(max_tokens).__name__}", "max_tokens")
    if not MIN_CONTEXT_TOKENS <= max_tokens <= limits.max_context_tokens:
        raise QueryError(f"max_tokens must be between {MIN_CONTEXT_TOKENS} and {limits.max_context_tokens} "
                         f"(limits.max_context_tokens), got {max_tokens}", "max_tokens")
    return max_tokens


def check_request(query: Any, k: Any = None, method: Any = "hybrid", filter: Any = None,
                  max_tokens: Any = None, *, limits: LimitsConfig | None = None) -> QueryRequest:
    """Check a whole query request; raises :class:`QueryError` naming the first field at fault."""
    return QueryRequest(check_query(query, limits), check_k(k, limits), check_method(method),
                        check_filter(filter), check_max_tokens(max_tokens, limits))
