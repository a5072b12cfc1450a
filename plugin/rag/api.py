"""The high-level RAG API: retrieve passages, build a cited prompt, generate an answer.

```python
from lucerag.rag.api import RAG

with RAG.from_index("indexes/docs") as rag:           # or RAG.from_config("lucerag.toml")
    for p in rag.retrieve("how do I rotate the keys?", k=5):
        print(p.rank, p.id, p.score, p.text[:80])
    ctx = rag.context("how do I rotate the keys?")    # chat messages + numbered citations
    answer = rag.generate("how do I rotate the keys?")  # needs an OpenAI-compatible endpoint
```

Threads. Searches run on a small pool of long-lived worker threads (``workers``, default 4). pyjnius
releases the GIL during each Java call, so Lucene work in several threads runs in parallel; each
worker attaches to the JVM on its first call and detaches when the pool shuts down (threads that
exit attached leak a Java thread object). ``retrieve`` called directly runs in the caller's thread;
``retrieve_batch``, the async methods and the HTTP service use the pool.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import queue
import threading
import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pydantic import BaseModel, Field, ValidationError

from lucerag.config import Config, format_errors
from lucerag.errors import (ClosedError, ConfigError, CursorError, InputError, Overloaded, QueryError,
                            UnsupportedError)
from lucerag.index.reader import latest_commit
from lucerag.lucene.jvm import detach_thread
from lucerag.passage import Passage
from lucerag.rag.context import Context, ContextBuilder
from lucerag.rag.llm import Answer, AnswerStream, LLMClient, LLMConfig, answer_from
from lucerag.search.filters import Where, canonical
from lucerag.search.request import (QueryRequest, check_max_tokens, check_offset, check_queries, check_request,
                                    relevance_option)
from lucerag.search.retriever import Retriever

__all__ = ["RAG", "SearchPool", "Page", "CursorError", "ClosedError", "Overloaded", "QueryError", "load_config"]

EXTRA_SECTIONS = ("llm", "context")


# -- the worker pool ----------------------------------------------------------------------------

class SearchPool(Executor):
    """A fixed pool of long-lived threads that attach to the JVM once and detach on shutdown.

    ``max_queue`` bounds the number of tasks waiting for a worker: ``submit`` raises
    :class:`Overloaded` beyond it, so a flood of requests fails fast instead of queueing forever.
    """

    def __init__(self, workers: int = 4, max_queue: int | None = None, name: str = "lucerag-search"):
        if workers < 1:
            raise InputError("workers must be >= 1")
        self.workers = workers
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._shutdown = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    @property
    def pending(self) -> int:
        """Tasks submitted and not finished (running or waiting)."""
        return self._pending

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._shutdown:
                raise ClosedError("the search pool is shut down")
            if self.max_queue is not None and self._pending >= self.workers + self.max_queue:
                raise Overloaded(f"{self._pending} searches in progress or waiting (limit "
                                 f"{self.workers + self.max_queue}); retry later")
            self._pending += 1
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                future, fn, args, kwargs = item
                try:
                    if future.set_running_or_notify_cancel():
                        try:
                            result = fn(*args, **kwargs)
                        except BaseException as exc:  # noqa: BLE001 - handed to the caller
                            future.set_exception(exc)
                        else:
                            future.set_result(result)
                finally:
                    with self._lock:
                        self._pending -= 1
                del item, future, fn, args, kwargs
        finally:
            detach_thread()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()


# -- configuration --------------------------------------------------------------------------------

def load_config(path: str | Path) -> tuple[Config, dict[str, dict]]:
    """Read a lucerag TOML file: the core :class:`Config` plus the RAG sections it carries
    (``[llm]``: :class:`~lucerag.rag.llm.LLMConfig`; ``[context]``: ContextBuilder options), checked here."""
    path = Path(path)
    config = Config.load(path)
    extra = {name: getattr(config, name) for name in EXTRA_SECTIONS if getattr(config, name)}
    try:
        if "llm" in extra:
            LLMConfig.model_validate(extra["llm"])
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_errors(exc, prefix='llm')}") from None
    unknown = set(extra.get("context", {})) - {"max_tokens", "tokenizer", "dedupe_threshold", "system_prompt",
                                               "min_passage_tokens", "max_passages"}
    if unknown:
        raise ConfigError(f"{path}: unknown key 'context.{sorted(unknown)[0]}'")
    tok = extra.get("context", {}).get("tokenizer")
    if tok and not Path(tok).is_absolute():
        extra["context"]["tokenizer"] = str((path.parent / tok).resolve())
    return config, extra


class Page(BaseModel):
    """One page of a ranked list: passages ranked ``offset + 1`` onwards, and the cursor of the next
    page (None after the last one).

    Pages are slices of one ranked list: for hybrid search the fused top ``window``
    (``max(k, fusion.depth)``), computed the same way for every page, so concatenated pages never
    repeat or skip a passage; BM25 and dense pages are prefixes of their views' top lists (dense:
    within the HNSW beam, ``dense.ef_search``). A cursor records the offset, the window and a
    fingerprint of the query, method, filters and index version; it is refused
    (:class:`CursorError`) when any of them changed."""

    passages: list[Passage]
    offset: int = Field(ge=0, description="Ranks skipped before this page.")
    next_cursor: str | None = Field(None, description="Pass back as `cursor` (with the same query, method and "
                                                      "filters) for the next page; null after the last page.")


def _write_cursor(offset: int, window: int, fingerprint: str) -> str:
    text = json.dumps({"o": offset, "w": window, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _read_cursor(cursor: str, fingerprint: str) -> tuple[int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, window, owner = int(data["o"]), int(data["w"]), str(data["f"])
    except (ValueError, TypeError, KeyError, json.JSONDecodeError):
        raise CursorError("cursor: not a cursor this service issued") from None
    if offset < 0 or window < 0:
        raise CursorError("cursor: not a cursor this service issued")
    if owner != fingerprint:
        raise CursorError("cursor: it belongs to another query, method or filter, or the index changed since "
                          "the first page; start again without a cursor")
    return offset, window


# -- the API ----------------------------------------------------------------------------------------

class RAG:
    """Retrieval, prompt building and generation over one lucerag index.

    Use as a context manager (sync or async): closing stops the worker pool, then closes the
    index readers when this object opened them (``from_index``/``from_config``).
    """

    def __init__(self, retriever: Retriever, *, owns_retriever: bool = False, workers: int | None = None,
                 max_queue: int | None = None, llm: LLMConfig | LLMClient | None = None,
                 context: ContextBuilder | dict | None = None, warmup: bool = True, reload: bool = False,
                 reload_grace: float = 120.0):
        self._retriever = retriever
        self._owns = owns_retriever
        # ``reload`` (only for a retriever this object opened): see :class:`IndexWatch`
        self._watch = IndexWatch(self, reload_grace) if reload and owns_retriever else None
        # checks a reopened index must pass before it is swapped in (e.g. the server's tenant key)
        self.reload_checks: list[Callable[[Retriever], None]] = []
        self.workers = workers or int(os.environ.get("LUCERAG_WORKERS", "4"))
        self._max_queue = max_queue
        self._pool: SearchPool | None = None
        self._pool_lock = threading.Lock()
        self._closed = False
        if isinstance(context, dict):
            context = ContextBuilder(**context)
        self._builder = context
        self._llm = llm
        if warmup:
            self.warmup()

    @property
    def retriever(self) -> Retriever:
        """The retriever searches go to. With ``reload``, a newer one once the index folder has a
        new commit (an append) or was replaced (a rebuild): see :class:`IndexWatch`."""
        if self._watch is not None:
            self._watch.check()
        return self._retriever

    @classmethod
    def from_index(cls, path: str | Path, encoder=None, **options: Any) -> "RAG":
        """Open one lucerag index with the default configuration. ``options`` go to ``RAG(...)``."""
        return cls(Retriever.from_index(path, encoder=encoder), owns_retriever=True, **options)

    @classmethod
    def from_config(cls, path: str | Path, encoder=None, **options: Any) -> "RAG":
        """Open the index of a TOML configuration (its ``[llm]`` and ``[context]`` sections too)."""
        config, extra = load_config(path)
        if "llm" in extra and "llm" not in options:
            options["llm"] = LLMConfig.from_env(**extra["llm"])
        if "context" in extra and "context" not in options:
            options["context"] = extra["context"]
        return cls(Retriever(config, encoder), owns_retriever=True, **options)

    # -- lifetime ---------------------------------------------------------------------------------

    def warmup(self, retriever: Retriever | None = None) -> None:
        """Resolve Java classes and load the encoder on this thread (the main one at start-up); and
        the relevance filter's corpus gate. ``retriever``: warm that one (default: the current one)."""
        r = retriever or self._retriever
        if r.dense is not None:
            _ = r.encoder
        for method in ("hybrid", "bm25", "dense"):
            try:
                r.search("warm up", k=1, method=method, filter=False)
            except UnsupportedError:  # a view the configuration lacks
                continue

    @property
    def pool(self) -> SearchPool:
        if self._pool is None:
            with self._pool_lock:
                if self._closed:
                    raise ClosedError("this RAG object is closed")
                if self._pool is None:
                    self._pool = SearchPool(self.workers, self._max_queue)
        return self._pool

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if isinstance(self._llm, LLMClient):
            self._llm.close()
        if self._watch is not None:
            self._watch.close()
        if self._owns:
            self._retriever.close()

    def __enter__(self) -> "RAG":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> "RAG":
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # -- retrieval --------------------------------------------------------------------------------

    @property
    def supports_filter(self) -> bool:
        """Whether a relevance calibrator fits this index and encoder."""
        return self.retriever.calibrator is not None

    def check(self, query: Any, k: Any = None, *, filter: Any = None, method: Any = "hybrid",
              max_tokens: Any = None) -> QueryRequest:
        """The request checked against this index's ``[limits]`` (:func:`~lucerag.search.request.check_request`);
        raises :class:`~lucerag.errors.QueryError` naming the field at fault."""
        return check_request(query, k, method, filter, max_tokens, limits=self.retriever.config.limits)

    def filter_applies(self, method: str = "hybrid", filter: bool | None = None) -> bool:
        """Whether ``retrieve`` with these arguments applies the relevance filter
        (:meth:`~lucerag.search.retriever.Retriever.filter_applies`)."""
        return self.retriever.filter_applies(method, filter)

    def retrieve(self, query: str, k: int | None = None, *, where: Where | None = None,
                 relevance_filter: bool | None = None, offset: int = 0, method: str = "hybrid",
                 filter: bool | None = None, _window: int | None = None) -> list[Passage]:
        """The top ``k`` passages (default ``search.k``).

        ``where``: a metadata filter such as ``{"and": [{"term": {"lang": "en"}}, {"range": {"year":
        {"gte": 2020}}}]}`` (:mod:`lucerag.search.filters`), applied inside both views before their
        top-k: fewer than ``k`` passages (or none) come back when few match. A malformed filter, or one
        the index cannot apply, raises :class:`~lucerag.search.filters.FilterError` (a ``QueryError``).

        ``relevance_filter`` (hybrid only): True drops passages the calibrated relevance filter finds
        probably irrelevant, so the list may be shorter than ``k`` or empty (each passage carries
        ``p_relevant``); False never filters; None follows the configuration (``[filter] enabled``).
        bm25 and dense results are never filtered. ``filter`` is its old name (deprecated).

        ``offset``: skip that many ranks (ranks count from the top of the whole list); see :meth:`page`.
        Raises :class:`~lucerag.errors.QueryError` for a bad request (empty query, ``k`` outside
        1..``limits.max_k``, a non-boolean relevance filter, a negative offset, ...)."""
        if self._closed:
            raise ClosedError("this RAG object is closed")
        relevance = relevance_option(relevance_filter, filter)
        req = self.check(query, k, filter=relevance, method=method)
        return self.retriever.search(req.query, k=req.k, method=req.method, filter=req.filter, where=where,
                                     offset=check_offset(offset), window=_window)

    def page(self, query: str, k: int | None = None, *, cursor: str | None = None, offset: int = 0,
             where: Where | None = None, relevance_filter: bool | None = None, method: str = "hybrid") -> Page:
        """One page of ``k`` passages; ``cursor`` (from the previous page's ``next_cursor``) asks for
        the next one (or ``offset`` for ranks ``offset + 1`` onwards). Pass the same query, method and
        filters with every page. Raises :class:`CursorError` for a cursor of another query or an
        index that changed since."""
        req = self.check(query, k, filter=relevance_filter, method=method)
        k = req.k or self.retriever.config.search.k
        window = self.retriever.window(k, req.method)
        offset = check_offset(offset)
        fingerprint = self._fingerprint(req.query, req.method, where, req.filter)
        if cursor is not None:
            if offset:  # the cursor holds its own offset; HTTP refuses both the same way
                raise QueryError("send either offset or cursor, not both", "cursor")
            offset, window = _read_cursor(cursor, fingerprint)
        # One passage beyond the page (pages are prefixes of one list, so it changes none of them)
        # tells whether another page exists: a full last page (a filter that matched 2k passages, the
        # relevance filter's last relevant one) used to get a cursor whose page was empty.
        probe = k + 1 if k < self.retriever.config.limits.max_k else k
        passages = self.retrieve(req.query, probe, where=where, relevance_filter=req.filter, method=req.method,
                                 offset=offset, _window=window or None)
        more = len(passages) > k if probe > k else len(passages) == k
        passages = passages[:k]
        end = offset + len(passages)
        more = more and (not window or end < window)
        return Page(passages=passages, offset=offset,
                    next_cursor=_write_cursor(end, window, fingerprint) if more else None)

    def _fingerprint(self, query: str, method: str, where: Where | None, relevance: bool | None) -> str:
        r = self.retriever
        versions = [(i.commit_id, int(i.reader.getVersion())) for i in (r.bm25_index, r.dense_index) if i is not None]
        text = json.dumps([query, method, None if where is None else canonical(where), relevance, versions])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def retrieve_batch(self, queries: Iterable[str], k: int | None = None, *, where: Where | None = None,
                       relevance_filter: bool | None = None, method: str = "hybrid",
                       filter: bool | None = None) -> list[list[Passage]]:
        """``retrieve`` for many queries on the worker pool; results in query order."""
        queries = check_queries(queries)
        relevance = relevance_option(relevance_filter, filter)
        for q in queries:  # fail before any search on a bad query
            self.check(q, k, filter=relevance, method=method)
        futures = [self.pool.submit(self.retrieve, q, k, where=where, relevance_filter=relevance, method=method)
                   for q in queries]
        return [f.result() for f in futures]

    async def aretrieve(self, query: str, k: int | None = None, *, where: Where | None = None,
                        relevance_filter: bool | None = None, offset: int = 0, method: str = "hybrid",
                        filter: bool | None = None) -> list[Passage]:
        """``retrieve`` on the worker pool, awaitable (the event loop never blocks on Java)."""
        relevance = relevance_option(relevance_filter, filter)
        future = self.pool.submit(self.retrieve, query, k, where=where, relevance_filter=relevance,
                                  offset=offset, method=method)
        return await asyncio.wrap_future(future)

    async def aretrieve_batch(self, queries: Iterable[str], k: int | None = None, *, where: Where | None = None,
                              relevance_filter: bool | None = None, method: str = "hybrid",
                              filter: bool | None = None) -> list[list[Passage]]:
        queries = check_queries(queries)
        relevance = relevance_option(relevance_filter, filter)
        return list(await asyncio.gather(*(self.aretrieve(q, k, where=where, relevance_filter=relevance,
                                                          method=method) for q in queries)))

    # -- prompts and answers ----------------------------------------------------------------------

    @property
    def builder(self) -> ContextBuilder:
        if self._builder is None:
            self._builder = ContextBuilder()
        return self._builder

    def build_context(self, query: str, passages: Sequence[Passage], *, max_tokens: int | None = None,
                      system_prompt: str | None = None) -> Context:
        """A cited prompt from passages you already have."""
        max_tokens = check_max_tokens(max_tokens, self.retriever.config.limits)
        return self.builder.build(query, passages, max_tokens=max_tokens, system_prompt=system_prompt)

    def context(self, query: str, k: int | None = None, *, where: Where | None = None,
                relevance_filter: bool | None = None, method: str = "hybrid", max_tokens: int | None = None,
                system_prompt: str | None = None, filter: bool | None = None) -> Context:
        """Retrieve, then pack the passages into chat messages with numbered citations."""
        relevance = relevance_option(relevance_filter, filter)
        self.check(query, k, filter=relevance, method=method, max_tokens=max_tokens)
        passages = self.retrieve(query, k, where=where, relevance_filter=relevance, method=method)
        return self.build_context(query.strip(), passages, max_tokens=max_tokens, system_prompt=system_prompt)

    async def acontext(self, query: str, k: int | None = None, *, where: Where | None = None,
                       relevance_filter: bool | None = None, method: str = "hybrid", max_tokens: int | None = None,
                       system_prompt: str | None = None, filter: bool | None = None) -> Context:
        relevance = relevance_option(relevance_filter, filter)
        self.check(query, k, filter=relevance, method=method, max_tokens=max_tokens)
        passages = await self.aretrieve(query, k, where=where, relevance_filter=relevance, method=method)
        return self.build_context(query.strip(), passages, max_tokens=max_tokens, system_prompt=system_prompt)

    @property
    def llm(self) -> LLMClient:
        if not isinstance(self._llm, LLMClient):
            self._llm = LLMClient(self._llm if isinstance(self._llm, LLMConfig) else None)
        return self._llm

    def generate(self, query: str, k: int | None = None, *, where: Where | None = None,
                 relevance_filter: bool | None = None, method: str = "hybrid", max_tokens: int | None = None,
                 system_prompt: str | None = None, filter: bool | None = None, stream: bool = False,
                 **completion: Any) -> Answer | AnswerStream:
        """Retrieve, build the prompt and ask the OpenAI-compatible endpoint; the answer keeps the
        citations it uses. Raises :class:`~lucerag.rag.llm.LLMError` (or ``LLMTimeoutError``).

        ``stream=True`` returns an :class:`~lucerag.rag.llm.AnswerStream` at once (retrieval done):
        iterate it for the text as the endpoint generates it, then read ``.answer`` for the whole
        answer with its citations."""
        ctx = self.context(query, k, where=where, relevance_filter=relevance_option(relevance_filter, filter),
                           method=method, max_tokens=max_tokens, system_prompt=system_prompt)
        if stream:
            return AnswerStream(ctx, self.llm, **completion)
        return answer_from(ctx, self.llm.complete(ctx.messages, **completion))

    async def agenerate(self, query: str, k: int | None = None, *, where: Where | None = None,
                        relevance_filter: bool | None = None, method: str = "hybrid", max_tokens: int | None = None,
                        system_prompt: str | None = None, filter: bool | None = None, stream: bool = False,
                        **completion: Any) -> Answer | AnswerStream:
        """``generate`` without blocking the event loop; ``stream=True``: ``async for`` the stream."""
        ctx = await self.acontext(query, k, where=where, relevance_filter=relevance_option(relevance_filter, filter),
                                  method=method, max_tokens=max_tokens, system_prompt=system_prompt)
        if stream:
            return AnswerStream(ctx, self.llm, **completion)
        return answer_from(ctx, await self.llm.acomplete(ctx.messages, **completion))

    # -- facts for health checks --------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        r = self.retriever
        index = r.bm25_index or r.dense_index
        return {
            "index": str(index.path) if index is not None else None,
            "passages": index.size if index is not None else 0,
            "views": [v for v, s in (("bm25", r.bm25), ("dense", r.dense)) if s is not None],
            "filter": self.supports_filter,
            "default_k": r.config.search.k,
        }


def _close_and_release(retrievers: list[Retriever]) -> None:
    """Close retired retrievers off the request path, then hand the memory they held back to the
    system: a retriever's native allocations (onnxruntime's packed scan weights, JVM buffers) are
    freed into glibc's heap, which otherwise keeps them (measured: resident memory grew ~15 MB per
    reload of a 5K-passage index, and stayed flat with ``malloc_trim``)."""
    import ctypes
    import gc

    for r in retrievers:
        r.close()
    del retrievers
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass
    detach_thread()


def _index_state(path: Path) -> tuple[int, int, str] | None:
    """What changes when an index folder gets a new commit or is replaced: (device, inode, newest
    ``segments_N``); None while the folder or its commit is missing (a rebuild between its two renames)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    newest = latest_commit(path)
    return (st.st_dev, st.st_ino, newest) if newest else None


class IndexWatch:
    """Reopens a :class:`RAG`'s index when it changes on disk (``RAG(..., reload=True)``; on in
    ``lucerag serve``), so passages added by ``lucerag index --append`` and a rebuild of the same
    folder are searched without a restart.

    At most once per ``interval`` seconds a search compares each index folder's inode and newest
    ``segments_N`` with those of the open retriever (a ``stat`` and a directory listing). On a change
    a background thread opens a new :class:`~lucerag.search.retriever.Retriever` with the same
    configuration and query encoder, runs ``RAG.reload_checks`` on it (one that raises refuses it),
    warms it (:meth:`RAG.warmup`: the relevance filter's corpus
    gate is set on the new passages) and swaps it in; searches meanwhile use the old one. The old
    retriever is closed ``grace`` seconds later (searches already running on it finish; a search
    waits at most the server's timeout), or when the RAG object closes. A reopen that fails (e.g.
    a folder caught mid-rebuild) is logged and tried again at the next change or after 5 s.
    """

    def __init__(self, rag: "RAG", grace: float = 120.0, interval: float = 1.0):
        self._rag, self.grace, self.interval = rag, float(grace), float(interval)
        self._lock = threading.Lock()
        self._next = 0.0
        self._state = self._states(rag._retriever)
        self._loading: threading.Thread | None = None
        self._retired: list[tuple[float, Retriever]] = []
        self.reloads = 0

    @staticmethod
    def _paths(r: Retriever) -> list[Path]:
        return [i.path for i in dict.fromkeys(x for x in (r.bm25_index, r.dense_index) if x is not None)]

    def _states(self, r: Retriever) -> list:
        return [_index_state(p) for p in self._paths(r)]

    def check(self) -> None:
        """Start a reload when the index changed (cheap; called on every access to the retriever)."""
        now = time.monotonic()
        if now < self._next:
            return
        with self._lock:
            if now < self._next:
                return
            self._next = now + self.interval
            self._close_retired(now)
            if self._loading is not None:
                return
            state = self._states(self._rag._retriever)
            if state == self._state or any(s is None for s in state):
                return
            self._loading = threading.Thread(target=self._reload, args=(state,), name="lucerag-reload", daemon=True)
            self._loading.start()

    def _reload(self, state: list) -> None:
        import logging

        old = self._rag._retriever
        log = logging.getLogger("lucerag")
        try:
            new = Retriever(old.config, old._encoder, old._reranker)
            try:
                for check in self._rag.reload_checks:
                    check(new)
            except Exception as exc:  # noqa: BLE001 - refused: keep the open index until the folder changes again
                new.close()
                log.warning("not serving the changed index at %s (%s); still serving the one opened before",
                            ", ".join(map(str, self._paths(old))), exc)
                with self._lock:
                    self._state, self._loading = state, None
                return
            try:
                self._rag.warmup(new)
            except Exception:
                new.close()
                raise
        except Exception as exc:  # noqa: BLE001 - keep serving the open index; try again in 5 s
            log.warning("could not reopen %s (%s: %s); still serving the open index",
                        ", ".join(map(str, self._paths(old))), type(exc).__name__, exc)
            with self._lock:
                self._loading, self._next = None, time.monotonic() + 5.0
            return
        finally:
            detach_thread()
        with self._lock:
            if self._rag.closed:
                new.close()
            else:
                self._rag._retriever, self._state = new, state
                self._retired.append((time.monotonic() + self.grace, old))
                self.reloads += 1
            self._loading = None

    def _close_retired(self, now: float) -> None:
        due = [r for when, r in self._retired if when <= now]
        if due:
            self._retired = [(when, r) for when, r in self._retired if when > now]
            threading.Thread(target=_close_and_release, args=(due,), name="lucerag-retire", daemon=True).start()

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for a reload in progress (tests, tools)."""
        thread = self._loading
        if thread is not None:
            thread.join(timeout)

    def close(self) -> None:
        """Close every retired retriever (the RAG object is closing)."""
        self.wait()
        with self._lock:
            for _, r in self._retired:
                r.close()
            self._retired = []
