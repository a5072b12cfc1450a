"""An opened Lucene index: one reader and searcher, with per-reader caches.

The Python/Java boundary is the cost at query time, not Lucene.  Ids, stored text and stored
vectors are fetched once per Lucene doc number and cached for the life of the reader.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from lucerag.index_manifest import IndexManifest
from lucerag.jvm import java_error_message
from lucerag.lucene import ID, RAW, VECTOR, java



class IndexNotFoundError(FileNotFoundError):
    """The configured path holds no Lucene index."""


class LuceneIndex:
    """Read access to a Lucene index directory (ours or an existing Anserini one)."""

    def __init__(self, path: str | Path, vector_field: str = VECTOR):
        self.path = Path(path)
        if not self.path.is_dir() or not any(p.name.startswith("segments_") for p in self.path.iterdir()):
            raise IndexNotFoundError(
                f"no Lucene index at {self.path} (build one with `lucerag index --input ... --index {self.path}`)")
        self.manifest = IndexManifest.read(self.path)
        try:
            self._dir = java.FSDirectory.open(java.File(str(self.path)).toPath())
            self.reader = java.DirectoryReader.open(self._dir)
        except Exception as exc:  # pyjnius raises JavaException
            message = java_error_message(exc)
            if "IndexFormatTooNewException" in message:
                raise IndexNotFoundError(
                    f"{self.path} was written by a newer Lucene (Anserini >= 2.0 writes Lucene 10 indexes); "
                    "this lucerag runs on Lucene 9.9 (pyserini 1.6 on Python 3.11). Rebuild the index with "
                    "lucerag or Anserini 1.x, or run lucerag with pyserini >= 2 on Python >= 3.12.") from None
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

    @property
    def _stored(self):
        ident = threading.get_ident()
        stored = self._stored_by_thread.get(ident)
        if stored is None:
            stored = self._stored_by_thread[ident] = self.reader.storedFields()
        return stored

    @property
    def size(self) -> int:
        return int(self.reader.numDocs())

    def has_vectors(self) -> bool:
        return self.dim > 0

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
        raw = doc.get(RAW)
        pid = doc.get(ID)
        if raw is None:
            return {"id": pid, "contents": doc.get("contents") or ""}
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

    def close(self) -> None:
        self.reader.close()
        self._dir.close()


def top_docs(searcher, query, k: int) -> tuple[list[int], np.ndarray]:
    """Run a query; doc numbers and scores come back packed in one byte array."""
    blob = java.Bridge.search(searcher, query, k).tostring()
    n = len(blob) // 8
    return np.frombuffer(blob, "<i4", n).tolist(), np.frombuffer(blob, "<f4", n, offset=4 * n)
