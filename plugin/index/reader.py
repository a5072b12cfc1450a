"""An opened Lucene index: one reader and searcher, with per-reader caches.

The Python/Java boundary is the cost at query time, not Lucene.  Ids and stored vectors are
fetched once per Lucene doc number and cached for the life of the reader. Stored records of an
index below :data:`RECORDS_IN_MEMORY_BELOW` passages (and :data:`RECORDS_IN_MEMORY_MAX_BYTES`) are
read once, in doc order, and then served from memory: Lucene decompresses a block of documents for
every stored document read at random (~30 us per passage on an AVX2 EPYC, ~0.3 ms for a page of 10),
which was the largest single cost of a small index's query after the encoder.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from lucerag.errors import IndexNotFoundError, IndexTooNewError, NoStoredTextWarning
from lucerag.index.manifest import IndexManifest
from lucerag.lucene.classes import ID, RAW, VECTOR, java
from lucerag.lucene.errors import INDEX_FORMAT_TOO_NEW, is_instance, java_error_message

# Indexes with fewer passages than this keep their stored records (id, source JSON) in memory once
# a search has asked for one: about the size of the stored text (~400 bytes per MS MARCO passage,
# ~40 MB at 100K), the same regime in which dense search holds the vectors in memory
# (lucerag.search.scan, lucerag.index.hnsw.GRAPH_FROM).
RECORDS_IN_MEMORY_BELOW = 100_000
# ... and whose stored records come to at most this many bytes (UTF-8): an index of long documents
# (Anserini's MS MARCO document collection stores ~5-10 KB of raw JSON per document) stops reading
# at this size, drops what it read and serves every page from Lucene instead.
RECORDS_IN_MEMORY_MAX_BYTES = 128 * 2**20

__all__ = ["RECORDS_IN_MEMORY_BELOW", "RECORDS_IN_MEMORY_MAX_BYTES", "IndexNotFoundError", "IndexTooNewError", "LuceneIndex",
           "latest_commit", "segments_versions", "top_docs"]


def _jar_name() -> str:
    try:
        from lucerag.lucene.jvm import anserini_jar

        return anserini_jar().name
    except Exception:  # noqa: BLE001 - only for the message
        return "in use"


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def latest_commit(path: str | Path) -> str | None:
    """The name of the newest ``segments_N`` file in ``path`` (N is base 36), None when there is none."""
    names = [p.name for p in Path(path).glob("segments_*")]
    return max(names, key=lambda n: int(n.split("_", 1)[1] or "0", 36)) if names else None


def _segments_header(file: Path) -> tuple[str, tuple[int, int, int], int] | None:
    """(commit id as hex, Lucene version that wrote the commit, Lucene major version that created the
    index) from a ``segments_N`` file's header; None when it cannot be read.

    Layout since Lucene 7: codec header (magic int, "segments" string, format int, 16-byte id Lucene
    draws at random for every commit, suffix), then the writer's version as three vInts and the
    creation major version as a vInt.
    """
    try:
        data = file.read_bytes()[:256]
        if int.from_bytes(data[:4], "big") != 0x3FD76C17:  # CodecUtil.CODEC_MAGIC
            return None
        pos = 4 + 1 + data[4] + 4       # magic, codec name, format version
        commit = data[pos:pos + 16].hex()
        pos += 16
        pos += 1 + data[pos]            # suffix
        major, pos = _vint(data, pos)
        minor, pos = _vint(data, pos)
        bugfix, pos = _vint(data, pos)
        created, _ = _vint(data, pos)
        return commit, (major, minor, bugfix), created
    except (OSError, IndexError, ValueError):
        return None


def segments_versions(path: str | Path) -> tuple[tuple[int, int, int], int] | None:
    """(Lucene version that wrote the latest commit, Lucene major version that created the index),
    read from the header of the newest ``segments_N`` file; None when it cannot be read."""
    name = latest_commit(path)
    header = _segments_header(Path(path) / name) if name else None
    return header[1:] if header else None


def _too_new(path: Path, exc: BaseException) -> IndexTooNewError | None:
    """An IndexTooNewError when opening ``path`` failed because a newer Lucene wrote it.

    Lucene reports this two ways: IndexFormatTooNewException (a file format beyond the running
    codecs) and, for an index created by a later major version, an IllegalArgumentException. The
    first is recognised by its class; the second by comparing the version numbers in the commit's
    header with the running Lucene's."""
    running = str(java.Bridge.luceneVersion())
    running_major = int(running.split(".")[0])
    versions = segments_versions(path)
    if versions is not None:
        written, created = versions
        index_version = ".".join(map(str, written))
        if created > running_major or written[0] > running_major:
            return IndexTooNewError(path, index_version if written[0] >= created else f"{created}.x", running,
                                    _jar_name())
    if is_instance(exc, INDEX_FORMAT_TOO_NEW):
        format_version = ".".join(map(str, versions[0])) if versions is not None else "an unknown version"
        return IndexTooNewError(path, f"{format_version} with a file format newer than this Lucene reads", running,
                                _jar_name())
    return None


class LuceneIndex:
    """Read access to a Lucene index directory (ours or an existing Anserini one)."""

    def __init__(self, path: str | Path, vector_field: str = VECTOR):
        self.path = Path(path)
        if not self.path.is_dir() or not any(p.name.startswith("segments_") for p in self.path.iterdir()):
            if (self.path / "write.lock").exists():  # e.g. Anserini's IndexCollection before its first commit
                raise IndexNotFoundError(
                    f"no committed Lucene index at {self.path} yet: it holds a write.lock and no segments_ file, "
                    "so another process is probably still writing it; open it once that has committed")
            raise IndexNotFoundError(
                f"no Lucene index at {self.path} (build one with `lucerag index --input ... --index {self.path}`)")
        self.manifest = IndexManifest.read(self.path)
        try:
            self._dir = java.FSDirectory.open(java.File(str(self.path)).toPath())
            self.reader = java.DirectoryReader.open(self._dir)
        except Exception as exc:  # pyjnius raises JavaException
            too_new = _too_new(self.path, exc)
            if too_new is not None:
                raise too_new from None
            message = java_error_message(exc)
            raise IndexNotFoundError(f"cannot open Lucene index at {self.path}: {message}") from None
        self.searcher = java.IndexSearcher(self.reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self.vector_field = vector_field
        # Lucene's StoredFields is single-threaded and pyjnius releases the GIL in Java calls:
        # one per thread. Keyed by thread id rather than threading.local, so no Java reference
        # is released by a thread that has already detached from the JVM.
        self._stored_by_thread: dict[int, object] = {}
        self._dim: int | None = None
        self._ids: dict[int, str] = {}
        self._vectors: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._records: list[tuple[str | None, str | None, str | None]] | None = None
        self._records_too_large = False
        self._no_text_warned = False  # NoStoredTextWarning given?
        self._postings: dict[str, bool] = {}  # has_postings, by field
        self._commit_id: str | None = None

    @property
    def _stored(self):
        ident = threading.get_ident()
        stored = self._stored_by_thread.get(ident)
        if stored is None:
            stored = self._stored_by_thread[ident] = self.reader.storedFields()
        return stored

    @property
    def commit_id(self) -> str:
        """What identifies the commit this reader opened, across folders and rebuilds: its
        ``segments_N`` name and the 16-byte id Lucene writes at random into every commit's header
        (two fresh builds have the same ``segments_N`` and reader version, not the same id)."""
        if self._commit_id is None:
            name = str(self.reader.getIndexCommit().getSegmentsFileName())
            header = _segments_header(self.path / name)
            # no header: the commit file is gone (a rebuild replaced the folder)
            self._commit_id = f"{name}:{header[0] if header else self.path.resolve()}"
        return self._commit_id

    @property
    def size(self) -> int:
        return int(self.reader.numDocs())

    def has_vectors(self) -> bool:
        return self.dim > 0

    def has_postings(self, field: str) -> bool:
        """Whether ``field`` is indexed for search (has postings) in any segment: an Anserini HNSW
        index has no ``contents`` field to search by BM25. Cached per reader."""
        known = self._postings.get(field)
        if known is None:
            from lucerag.lucene.jvm import jclass

            info = jclass("org.apache.lucene.index.FieldInfos").getMergedFieldInfos(self.reader).fieldInfo(field)
            known = self._postings[field] = info is not None and info.getIndexOptions().name() != "NONE"
        return known

    def ids(self, docnums: Iterable[int]) -> list[str]:
        """External ids of Lucene doc numbers (cached per reader)."""
        cache = self._ids
        docnums = list(docnums)
        missing = [d for d in docnums if d not in cache]
        if missing:
            found = java.Bridge.ids(self.reader, np.asarray(missing, "<i4").tobytes())
            cache.update(zip(missing, found))
        return [cache[d] for d in docnums]

    def docnums(self, ids: list[str]) -> dict[str, int]:
        """Doc numbers of passages given by id (absent ids are left out)."""
        if not ids:
            return {}
        found, _ = top_docs(self.searcher, java.Bridge.idsQuery(list(ids)), len(ids))
        return dict(zip(self.ids(found), found))

    def record(self, docnum: int) -> dict:
        """The stored record of a passage: ``{"id", "contents", "title"?, "metadata"?}``.

        Anserini indexes store the source JSON (or plain text) in ``raw``; both are accepted.
        """
        doc = self._stored.document(docnum)
        return _record(doc.get(ID), doc.get(RAW), doc.get("contents"))

    def records(self, docnums: list[int]) -> list[dict]:
        """:meth:`record` of several passages: from memory for an index below
        :data:`RECORDS_IN_MEMORY_BELOW` passages (:meth:`held_records`), else in one call across the
        Java bridge."""
        if not docnums:
            return []
        held = self.held_records()
        if held is not None:
            stored = [held[d] for d in docnums]
        else:
            fields = java.Bridge.records(self.reader, np.asarray(docnums, "<i4").tobytes())
            stored = [(fields[i], fields[i + 1], fields[i + 2]) for i in range(0, 3 * len(docnums), 3)]
        if not self._no_text_warned and all(raw is None and contents is None for _, raw, contents in stored):
            self._no_text_warned = True
            warnings.warn(f"index {self.path} stores no passage text (no stored '{RAW}' or 'contents' field; "
                          "Anserini's IndexCollection stores them with -storeRaw or -storeContents): "
                          "passages come back with empty text", NoStoredTextWarning, stacklevel=2)
        return [_record(*fields) for fields in stored]

    def held_records(self, below: int | None = None,
                     max_bytes: int | None = None) -> list[tuple[str | None, str | None, str | None]] | None:
        """Every document's stored (id, raw, contents), indexed by doc number, read on first use for
        an index with fewer than ``below`` (default :data:`RECORDS_IN_MEMORY_BELOW`) live passages
        whose records come to at most ``max_bytes`` (default :data:`RECORDS_IN_MEMORY_MAX_BYTES`),
        and kept for the life of the reader; None otherwise (the index is then never read whole
        again). Fills the id cache as well.

        Read in doc order, 4,096 documents per bridge call, through each segment's sequential
        stored-fields reader (``Bridge.storedRange``): ~0.1 s for 5K MS MARCO passages."""
        if self._records is not None or self._records_too_large:
            return self._records
        limit = RECORDS_IN_MEMORY_BELOW if below is None else below
        budget = RECORDS_IN_MEMORY_MAX_BYTES if max_bytes is None else max_bytes
        if self.size >= limit:
            return None
        with self._lock:
            if self._records is None and not self._records_too_large:
                held: list[tuple[str | None, str | None, str | None]] = []
                total, size = int(self.reader.maxDoc()), 0
                for start in range(0, total, 4096):
                    blob = java.Bridge.storedRange(self.reader, start, min(total, start + 4096)).tostring()
                    size += len(blob)
                    if size > budget:
                        self._records_too_large = True
                        return None
                    held.extend(_unpack_fields(blob))
                self._ids.update((d, pid) for d, (pid, _, _) in enumerate(held) if pid is not None)
                self._records = held
        return self._records

    @property
    def vectors_format(self) -> str | None:
        """The Lucene vectors format recorded for the vector field (None: no vectors), e.g.
        ``Lucene99HnswVectorsFormat`` (float HNSW) or ``Lucene104HnswBinaryQuantizedVectorsFormat``
        (Lucene 10.4+'s quantised HNSW, int8 and 1-bit alike: the encoding is in its own metadata)."""
        name = java.Bridge.vectorsFormatName(self.reader, self.vector_field)
        return str(name) if name is not None else None

    def graph_nodes(self) -> int:
        """How many vectors sit in an HNSW graph, over all segments: segments smaller than the
        writer's ``graph_from`` have none (Lucene searches them exhaustively). -1: unknown format."""
        return int(java.Bridge.graphNodes(self.reader, self.vector_field))

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors (0 when the index has none)."""
        if self._dim is None:
            self._dim = int(java.Bridge.dimension(self.reader, self.vector_field))
        return self._dim

    def vectors(self, docnums: list[int]) -> np.ndarray:
        """Stored dense vectors of Lucene doc numbers, shape (n, dim) (cached per reader)."""
        missing = list({d for d in docnums if d not in self._vectors})
        if missing:
            blob = java.Bridge.vectors(self.reader, self.vector_field,
                                       np.asarray(missing, "<i4").tobytes(), self.dim).tostring()
            rows = np.frombuffer(blob, "<f4").reshape(len(missing), self.dim)
            with self._lock:
                self._vectors.update(zip(missing, rows))
        if not docnums:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._vectors[d] for d in docnums])

    def all_vectors(self, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Every live passage's stored vector: doc numbers (n,) int64 ascending and vectors (n, dim)
        float32, read in chunks of ``chunk`` passages (not cached here)."""
        live = np.frombuffer(java.Bridge.viewDocs(self.reader, self.vector_field, True).tostring(), "<i4")
        docnums = live.astype(np.int64)
        out = np.empty((len(docnums), self.dim), np.float32)
        for s in range(0, len(docnums), chunk):
            part = live[s:s + chunk]
            blob = java.Bridge.vectors(self.reader, self.vector_field, part.tobytes(), self.dim).tostring()
            out[s:s + len(part)] = np.frombuffer(blob, "<f4").reshape(len(part), self.dim)
        return docnums, out

    def close(self) -> None:
        self.reader.close()
        self._dir.close()


def _unpack_fields(blob: bytes) -> list[tuple[str | None, str | None, str | None]]:
    """Decode ``Bridge.storedRange``'s bytes: per document three (little-endian int32 length, -1 for
    absent; UTF-8 bytes) fields."""
    out: list[tuple[str | None, str | None, str | None]] = []
    fields: list[str | None] = []
    pos, end = 0, len(blob)
    view = memoryview(blob)
    while pos < end:
        n = int.from_bytes(view[pos:pos + 4], "little", signed=True)
        pos += 4
        if n < 0:
            fields.append(None)
        else:
            fields.append(str(view[pos:pos + n], "utf-8"))
            pos += n
        if len(fields) == 3:
            out.append((fields[0], fields[1], fields[2]))
            fields = []
    return out


def _record(pid: str | None, raw: str | None, contents: str | None) -> dict:
    if raw is None:
        return {"id": pid, "contents": contents or ""}
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return {"id": pid, "contents": raw}
    if not isinstance(record, dict):
        return {"id": pid, "contents": raw}
    if "contents" not in record:
        record["contents"] = record.get("text") or ""
    record.setdefault("id", pid)
    return record


def top_docs(searcher, query, k: int) -> tuple[list[int], np.ndarray]:
    """Run a query; doc numbers and scores come back packed in one byte array."""
    blob = java.Bridge.search(searcher, query, k).tostring()
    n = len(blob) // 8
    return np.frombuffer(blob, "<i4", n).tolist(), np.frombuffer(blob, "<f4", n, offset=4 * n)
