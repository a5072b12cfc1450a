"""Ingestion: documents -> passages (chunks) -> vectors (batched) -> one Lucene index.

Three stages overlap::

    producer thread : read documents (connector) -> check -> chunk -> serialise metadata -> batches
    main thread     : encode a batch (onnxruntime, releases the GIL) -> hand it to Java
    Java threads    : build Lucene documents, analyse, index (lucerag.PassageWriter)

so a full ingest runs at the encoder's speed and a BM25-only ingest at Lucene's.  Every batch
holds whole documents: in append mode a document's passages replace all of its old passages
(deleted by ``parent_id``) in one Lucene ``updateDocuments`` call.  Nothing is committed before
the end (see :mod:`lucerag.index.writer` for atomicity).

Chunking: with an encoder, token-aware chunks cut with the encoder's own tokenizer
(:func:`lucerag.ingest.chunking.token_chunker`); without one (BM25 only), the same windows counted
in words (:func:`lucerag.ingest.chunking.chunk_words`, ``max_words`` words, default 192 ~ the default encoder's 254-token
window), which costs microseconds instead of a tokenizer pass.  Documents that fit stay one passage
with the document's id in both cases.  ``chunk=False`` keeps every document one passage (the
published BEIR protocol: BM25 over the whole title + text, the encoder truncating at its own
``max_length``).

Dense text: passages are encoded as ``title + " " + text`` (``dense_text="title+text"``, as BEIR and
MTEB encode corpora) or from the text alone (``"text"``, lucerag before this option); the index
manifest records the choice (``dense_text``).  BM25 always indexes title + text.

Progress: a tqdm bar on a terminal; elsewhere (a log file, CI) a ``logging`` line every
``progress_every`` seconds with documents, passages, passages/s and, when the total is known, an ETA.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from lucerag.errors import InputError
from lucerag.index.manifest import FORMAT, IndexManifest
from lucerag.index.writer import MAX_ID_BYTES, DuplicateIdError, IndexWriter
from lucerag.ingest.chunking import Chunk, chunk_words, token_chunker, whole_documents, word_chunker
from lucerag.ingest.options import DEFAULT_DENSE_TEXT, DENSE_TEXTS, ChunkingOptions, HnswOptions, IngestOptions, resolve
from lucerag.progress import duration, emit

PROGRESS_EVERY_S = 10.0

__all__ = ["ChunkingOptions", "HnswOptions", "IngestOptions", "IngestReport", "PassageRate", "build_index",
           "chunk_words", "dense_passage_text", "estimate_total", "ProgressLog", "rate_text", "view_ids",
           "DENSE_TEXTS", "DEFAULT_DENSE_TEXT"]


def dense_passage_text(title: str, text: str, dense_text: str = DEFAULT_DENSE_TEXT) -> str:
    """The text the encoder sees for a passage: ``title + " " + text`` (``"title+text"``, as BEIR's
    and MTEB's corpus encoding; the text alone when there is no title) or ``text`` (``"text"``)."""
    if dense_text == "title+text" and title and title.strip():
        return f"{title.strip()} {text}"
    return text


def dense_texts(titles: list[str], texts: list[str], dense_text: str) -> list[str]:
    """The texts the encoder sees for a batch of passages (:func:`dense_passage_text`)."""
    return texts if dense_text == "text" else [dense_passage_text(t, x, dense_text) for t, x in zip(titles, texts)]


def located(exc: DuplicateIdError, parents: list[str], where: dict[str, str], source: str) -> DuplicateIdError:
    """``exc`` naming where its first clashing passage was read (``where``: document id -> "file:line")."""
    pos, pid, _ = exc.clashes[0]
    parent = parents[pos]
    what = f"(document {parent!r})" if parent == pid else f"(a chunk of document {parent!r})"
    return exc.located(f"{source}: {where.get(parent) or 'a document'}", what)


def _prepare(index_dir: Path, mode: str, encoder, chunking: ChunkingOptions,
             settings: dict[str, Any]) -> tuple[Callable, IndexManifest, str]:
    """The chunker, the manifest to write and the dense text of a build (single-process or Ray):
    an append keeps the index's ``dense_text`` and refuses another (InputError)."""
    existing = IndexManifest.read(index_dir) if mode == "append" and index_dir.is_dir() else None
    dense_text = chunking.dense_text
    if existing is not None and encoder is not None:
        if dense_text is not None and dense_text != existing.dense_text:
            raise InputError(f"cannot append to {index_dir}: its passages were encoded from {existing.dense_text!r}, "
                             f"not {dense_text!r} (queries would meet two kinds of passage vectors)")
        dense_text = existing.dense_text
    dense_text = dense_text or DEFAULT_DENSE_TEXT
    if not chunking.chunk:
        chunk, chunk_settings = whole_documents()
    elif encoder is not None:
        chunk, chunk_settings = token_chunker(encoder, chunking.max_tokens, chunking.overlap,
                                              with_title=dense_text == "title+text")
    else:
        chunk, chunk_settings = word_chunker(chunking.max_words, chunking.overlap_words)
    settings = {**chunk_settings, **settings}
    if mode == "append":
        manifest = _append_manifest(index_dir, encoder, settings)
    else:
        manifest = IndexManifest.for_encoder(encoder, **settings)
    if encoder is not None:
        manifest.dense_text = dense_text
    return chunk, manifest, dense_text



class PassageRate:
    """``passages_per_s`` and ``as_dict`` for a report dataclass with ``passages`` and ``seconds``."""

    passages: int
    seconds: float

    @property
    def passages_per_s(self) -> float:
        return self.passages / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "passages_per_s": round(self.passages_per_s, 1)}


@dataclass
class IngestReport(PassageRate):
    """What an ingest did; ``read == indexed + skipped + rejected`` (documents)."""

    read: int = 0
    indexed: int = 0      # documents written
    passages: int = 0     # passages (chunks) written
    skipped: int = 0      # documents skipped on purpose (empty text from a non-connector source)
    rejected: int = 0     # bad records (by the connector, or by the pipeline: e.g. an over-long id)
    deleted: int = 0      # documents deleted because they vanished from the source (delete_missing)
    seconds: float = 0.0
    encode_seconds: float = 0.0   # time the main thread spent encoding
    wait_seconds: float = 0.0     # time the main thread waited for the producer (read + chunk)
    index_passages: int = 0       # passages in the index after the ingest
    warnings: list[str] = field(default_factory=list)


# -- the pipeline ------------------------------------------------------------------------------

class _Counts:
    def __init__(self) -> None:
        self.pulled = 0     # documents taken from the source
        self.skipped = 0
        self.rejected = 0   # by the pipeline
        self.where: dict[str, str] = {}  # document id -> where it was read, for documents not yet batched


def _checked(documents: Iterable, counts: _Counts, on_error: str, on_reject, source: str) -> Iterator:
    """Count documents; skip empty ones; reject ids Lucene cannot index."""
    from lucerag.connectors import Rejected
    from lucerag.errors import RecordError

    for doc in documents:
        counts.pulled += 1
        if not doc.text or not doc.text.strip():
            counts.skipped += 1
            continue
        if len(doc.id) > MAX_ID_BYTES // 8 and len(doc.id.encode("utf-8")) > MAX_ID_BYTES - 16:
            reason = f"id of {len(doc.id.encode('utf-8'))} bytes is longer than Lucene's limit ({MAX_ID_BYTES - 16})"
            if on_error == "fail":
                raise RecordError(source, f"document {counts.pulled}", reason)
            counts.rejected += 1
            rejected = Rejected(source=source, location=f"document {counts.pulled}", reason=reason,
                                record=json.dumps({"id": doc.id[:200] + "...", "title": doc.title}))
            if isinstance(on_reject, list):
                on_reject.append(rejected)
            elif on_reject is not None:
                on_reject(rejected)
            else:
                logging.getLogger("lucerag.ingest.pipeline").warning("rejected %s: %s: %s", source, rejected.location, reason)
            continue
        counts.where[doc.id] = getattr(documents, "location", "") or f"document {counts.pulled}"
        yield doc


def _batches(passages: Iterator[Chunk], size: int,
             counts: _Counts) -> Iterator[tuple[list[Chunk], int, dict[str, str]]]:
    """Batches of about ``size`` passages that hold whole documents, with the documents pulled so
    far and where each document of the batch was read."""
    batch: list[Chunk] = []

    def where() -> dict[str, str]:
        return {parent: counts.where.pop(parent, "") for parent in dict.fromkeys(p[1] for p in batch)}

    for p in passages:
        if len(batch) >= size and p[1] != batch[-1][1]:
            yield batch, counts.pulled, where()
            batch = []
        batch.append(p)
    if batch:
        yield batch, counts.pulled, where()


_END = object()


def _in_thread(items: Iterator, depth: int = 4) -> Iterator:
    """Run a generator on a producer thread; exceptions re-raise in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry) -> bool:
        # A put that gives up once the consumer has stopped (it may never read again).
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            hand_over((_END, exc))

    thread = threading.Thread(target=produce, name="lucerag-ingest-producer", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _inputs(documents, mode: str, dense: bool, encoder, stats, source: str | None) -> tuple[Any, Any, str]:
    """The arguments both builds (one process and Ray) normalise the same way: the mode checked,
    the default encoder loaded (None for BM25 only), the connector's stats and source name.
    Returns ``(encoder, stats, source)``; raises InputError for an unknown mode."""
    if mode not in ("create", "append"):
        raise InputError(f"mode must be 'create' or 'append', not {mode!r}")
    if dense and encoder is None:
        from lucerag.models import load_encoder
        from lucerag.models.store import DEFAULT_PASSAGE_PRECISION

        encoder = load_encoder(None, precision=DEFAULT_PASSAGE_PRECISION)
    if not dense:
        encoder = None
    stats = stats if stats is not None else getattr(documents, "stats", None)
    source = source or str(getattr(documents, "source", "documents"))
    return encoder, stats, source


def build_index(documents: Iterable, index_dir: str | Path, *, encoder=None, dense: bool = True,
                mode: str = "create", chunking: ChunkingOptions | None = None, hnsw: HnswOptions | None = None,
                options: IngestOptions | None = None, progress: bool = True, total: int | None = None,
                stats=None, on_reject: Callable | None = None, source: str | None = None, ray=None,
                **keywords: Any) -> IngestReport:
    """Chunk, encode and index ``documents`` (objects with id, title, text, metadata); returns
    the :class:`IngestReport`.

    ``encoder`` defaults to the default ONNX model (int8); ``dense=False`` builds a BM25-only index.
    ``mode="append"`` upserts by document id into an existing index built with the same encoder.
    The options come in three groups with working defaults (:mod:`lucerag.ingest.options`):
    ``chunking`` (:class:`ChunkingOptions`: ``max_tokens``, ``overlap``, ``max_words``,
    ``overlap_words``; ``chunk=False``: one passage per document; ``dense_text``: "title+text"
    (default for a new index) or "text", an append keeps the index's own and refuses another),
    ``hnsw`` (:class:`HnswOptions`: ``m``, ``beam``, ``vector_format`` "float", "int8" or "bbq";
    appends keep the index's own) and ``options`` (:class:`IngestOptions`: batch
    sizes, threads, RAM buffer, ``on_error``, ``delete_missing``: in append mode also delete the
    documents of the index that ``documents`` lacks; ``progress_every``). Any of their fields may be given as a keyword
    instead (``max_tokens=128``, ``hnsw_m=16``, ``batch_size=64``, ...).
    ``stats`` is the connector's ReadStats (taken from ``documents.stats`` when it has one), so
    that ``read`` counts rejected records too.  ``on_error``/``on_reject`` treat records the
    pipeline itself refuses (ids longer than Lucene allows) like the connector's rejections.
    ``total``: documents expected, for the ETA.  ``progress``: a tqdm bar when stderr is a terminal,
    else a log line every ``progress_every`` seconds (:class:`ProgressLog`).

    ``ray``: build on a Ray cluster instead (:mod:`lucerag.ingest.distributed`; needs
    ``lucerag[ray]``): True or "local" starts a local cluster, an address ("auto",
    "ray://host:10001") joins one, a :class:`~lucerag.ingest.distributed.RayOptions` says more;
    the result is the same index, and a :class:`~lucerag.ingest.distributed.RayIngestReport`.

    Raises :class:`~lucerag.errors.InputError` for bad options, ``TypeError`` for an unknown keyword.
    """
    from tqdm import tqdm

    chunking, hnsw, options = resolve(chunking, hnsw, options, keywords)
    hnsw_m, hnsw_beam, vector_format = hnsw.m, hnsw.beam, hnsw.vector_format
    batch_size, encode_batch_size, ram_buffer_mb = options.batch_size, options.encode_batch_size, options.ram_buffer_mb
    index_threads, producer_thread = options.index_threads, options.producer_thread
    on_error, delete_missing = options.on_error, options.delete_missing
    progress_every = options.progress_every

    if ray is not None and ray is not False:
        from lucerag.ingest.distributed import RayOptions, build_index_ray

        cluster = ray if isinstance(ray, RayOptions) else RayOptions(address=None if ray is True else str(ray))
        return build_index_ray(documents, index_dir, options=cluster, encoder=encoder, dense=dense, mode=mode,
                               chunking=chunking, hnsw=hnsw, ingest=options, total=total, progress=progress,
                               stats=stats, on_reject=on_reject, source=source)

    encoder, stats, source = _inputs(documents, mode, dense, encoder, stats, source)
    index_dir = Path(index_dir)

    threads = 1 if index_threads is None else index_threads
    chunk, manifest, dense_text = _prepare(index_dir, mode, encoder, chunking, {
        "batch_size": batch_size, "index_threads": threads, "ram_buffer_mb": ram_buffer_mb})

    report = IngestReport()
    counts = _Counts()
    start = time.perf_counter()
    terminal = progress and sys.stderr.isatty()
    bar = tqdm(total=total, unit="doc", disable=not terminal, dynamic_ncols=True, desc="ingest")
    log = ProgressLog(total, progress_every, start=start) if progress and not terminal else None
    docs = _checked(documents, counts, on_error, on_reject, source)
    batches = _batches(chunk(docs), batch_size, counts)
    if producer_thread if producer_thread is not None else encoder is not None:
        batches = _in_thread(batches)
    track = delete_missing and mode == "append"
    with IndexWriter(index_dir, mode=mode, manifest=manifest, dim=encoder.dim if encoder is not None else None,
                     threads=threads, track_parents=track, ram_buffer_mb=ram_buffer_mb,
                     hnsw_m=hnsw_m, hnsw_beam=hnsw_beam, vector_format=vector_format,
                     graph_from=hnsw.graph_from) as writer, \
            log or contextlib.nullcontext():
        done = 0
        while True:
            t0 = time.perf_counter()
            item = next(batches, None)
            t1 = time.perf_counter()
            report.wait_seconds += t1 - t0
            if item is None:
                break
            batch, pulled, where = item
            ids, parents, titles, texts, metas = map(list, zip(*batch))
            vectors = None
            if encoder is not None:
                vectors = encoder.encode_passages(dense_texts(titles, texts, dense_text),
                                                  batch_size=encode_batch_size)
                report.encode_seconds += time.perf_counter() - t1
            try:
                writer.add_batch(ids, texts, vectors, titles, metas, parents)
            except DuplicateIdError as exc:
                raise located(exc, parents, where, source) from None
            report.passages += len(batch)
            bar.update(pulled - done)
            done = pulled
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(rate_text(report.passages, elapsed), refresh=False)
            if log is not None:
                log.tick(pulled, report.passages)
        report.indexed = counts.pulled - counts.skipped - counts.rejected
        report.skipped = counts.skipped
        report.rejected = counts.rejected + (getattr(stats, "rejected", 0) if stats is not None else 0)
        report.read = getattr(stats, "read", counts.pulled) if stats is not None else counts.pulled
        if track:
            if report.rejected:
                report.warnings.append(
                    f"--delete-missing skipped: {report.rejected} record(s) were rejected, so a document "
                    "missing from this read may only be unreadable; nothing was deleted")
            else:
                report.deleted = writer.delete_missing()
        bar.update(counts.pulled - done)
    bar.close()
    if log is not None:
        log.done(counts.pulled, report.passages)
    report.index_passages = writer.manifest.passages
    report.warnings += [f"kept {name} from the index this build replaced (fitted on its passages: refit it with "
                        "`lucerag calibrate` if they changed)" for name in writer.kept]
    report.seconds = time.perf_counter() - start
    if report.read != report.indexed + report.skipped + report.rejected:  # pragma: no cover - a bug
        raise AssertionError(f"ingest counts do not reconcile: {report}")
    return report


def rate_text(passages: int, seconds: float) -> str:
    """``"123 passages/s"`` (two decimals below 10/s); empty before anything was written."""
    if passages <= 0 or seconds <= 0:
        return ""
    r = passages / seconds
    return f"{r:.0f} passages/s" if r >= 10 else f"{r:.2f} passages/s"


class ProgressLog:
    """Progress for a process without a terminal: one ``logging`` line (logger
    ``lucerag.ingest.progress``, INFO) at most every ``every`` seconds, e.g.
    ``ingest: 1,024/5,183 documents, 2,310 passages, 65 passages/s, ETA 1m04s``.

    The ETA extrapolates the document rate (needs ``total``).  When logging is not configured
    (the root logger has no handler) the line goes to stderr, so it is never lost.  Between
:meth:`start` and :meth:`stop` (or inside ``with``) a daemon thread also logs the latest counts when a batch takes
    longer than ``every`` seconds (a slow encoder), so a build is never silent for long."""

    logger = logging.getLogger("lucerag.ingest.progress")

    def __init__(self, total: int | None = None, every: float = PROGRESS_EVERY_S, desc: str = "ingest",
                 start: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.every, self.desc, self.clock = total, max(0.0, every), desc, clock
        self.t0 = clock() if start is None else start
        self.last = self.t0
        self.lines: list[str] = []
        self.counts = (0, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ProgressLog":
        """Start the thread that logs between batches (no-op when ``every`` is 0)."""
        if self.every > 0 and self._thread is None:
            def run() -> None:
                while not self._stop.wait(self.every / 2):
                    self.tick(*self.counts)

            self._thread = threading.Thread(target=run, name="lucerag-progress", daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> "ProgressLog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def line(self, docs: int, passages: int, final: bool = False) -> str:
        elapsed = self.clock() - self.t0
        parts = [f"{docs:,}/{self.total:,} documents" if self.total else f"{docs:,} documents",
                 f"{passages:,} passages"]
        rate = rate_text(passages, elapsed)
        if rate:
            parts.append(rate)
        if final:
            parts.append(f"done in {duration(elapsed)}")
        elif self.total and docs > 0 and elapsed > 0:
            parts.append(f"ETA {duration(max(0, self.total - docs) * elapsed / docs)}")
        return f"{self.desc}: " + ", ".join(parts)

    def tick(self, docs: int, passages: int) -> None:
        """Log a line when ``every`` seconds have passed since the last one."""
        with self._lock:
            self.counts = (docs, passages)
            now = self.clock()
            if now - self.last < self.every:
                return
            self.last = now
        self._emit(self.line(docs, passages))

    def done(self, docs: int, passages: int) -> None:
        self.stop()
        self._emit(self.line(docs, passages, final=True))

    def _emit(self, text: str) -> None:
        self.lines.append(text)
        emit(self.logger, text)


def _append_manifest(index_dir: Path, encoder, settings: dict) -> IndexManifest:
    """The manifest of the index to append to, after checking that this encoder matches it."""
    from datetime import datetime, timezone

    existing = IndexManifest.read(index_dir)
    if existing is None:
        if index_dir.is_dir() and any(p.name.startswith("segments_") for p in index_dir.iterdir()):
            raise ValueError(f"cannot append to {index_dir}: it has no {IndexManifest.FILENAME}, so it was not "
                             "built by lucerag (its encoder and layout are unknown); build a lucerag index instead")
        raise FileNotFoundError(f"cannot append: no index at {index_dir} (drop --append to build one)")
    if existing.format < FORMAT:
        raise ValueError(f"cannot append to {index_dir}: it was built by an older lucerag (index format "
                         f"{existing.format}) whose passages lack parent ids; rebuild it without --append")
    existing.check_encoder(encoder, index_dir, action="append to")
    if encoder is not None:
        existing.note_passage_precision(encoder.manifest.precision)
    existing.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    existing.updates += 1
    old = {k: existing.settings.get(k) for k in settings if k.startswith(("chunker", "max_", "overlap"))}
    new = {k: settings[k] for k in old}
    existing.settings = {**existing.settings, "last_append": settings}
    if old != new and any(v is not None for v in old.values()):
        existing.settings["mixed_chunking"] = True  # documents re-ingested now are chunked differently
    return existing


def estimate_total(path: str | Path, fmt: str | None = None) -> int | None:
    """Number of records in a plain JSONL/TSV file (or BEIR folder) for the progress bar's ETA;
    None when it cannot be known cheaply (compressed files, CSV, folders, databases)."""
    from lucerag.connectors import guess_format

    path = Path(path)
    try:
        fmt = fmt or guess_format(str(path))
    except ValueError:
        return None
    if fmt == "beir":
        path = path / "corpus.jsonl"
    elif fmt not in ("jsonl", "tsv"):
        return None
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                return None
            f.seek(0)
            lines, last = 0, b"\n"
            while chunk := f.read(1 << 22):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            return lines + (last != b"\n")
    except OSError:
        return None


def view_ids(index_dir: str | Path) -> tuple[set[str], set[str]]:
    """The passage ids of an index's two views: (BM25 view: passages with indexed ``contents``,
    vector view: passages with a ``vector``), live documents only.  After any ingest both are equal
    for a dense index; the vector view is empty for a BM25-only one."""
    import numpy as np

    from lucerag.index.reader import LuceneIndex
    from lucerag.lucene.classes import CONTENTS, VECTOR, java

    index = LuceneIndex(index_dir)
    try:
        views = []
        for field, vectors in ((CONTENTS, False), (VECTOR, True)):
            docs = np.frombuffer(java.Bridge.viewDocs(index.reader, field, vectors).tostring(), "<i4").tolist()
            views.append(set(index.ids(docs)))
        return views[0], views[1]
    finally:
        index.close()
