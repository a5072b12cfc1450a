"""Write passages into one Lucene index holding both views: BM25 text and HNSW vectors.

Per passage (the layout Anserini's own searchers read):
``id`` (StringField, stored, plus binary doc values), ``contents`` (TextField analysed with
Anserini's DefaultEnglishAnalyzer), ``raw`` (stored JSON: id, contents, title, metadata) and
``vector`` (KnnFloatVectorField, DOT_PRODUCT on unit vectors).  Both views are written by one
IndexWriter and become visible in one commit, so they always hold the same ids.

A new index is built in a temporary sibling directory and moved into place only when it is
complete: a crash mid-build leaves the previous index untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lucerag.index_manifest import IndexManifest
from lucerag.lucene import VECTOR, java


class IndexWriter:
    """Add, replace and delete passages; ``close()`` commits and publishes the index.

    ``mode="create"`` builds a fresh index (atomically replacing any existing one);
    ``mode="append"`` upserts into an existing index by id.
    """

    def __init__(self, path: str | Path, *, mode: str = "create", dim: int | None = None,
                 manifest: IndexManifest | None = None, ram_buffer_mb: int = 512):
        if mode not in ("create", "append"):
            raise ValueError(f"mode must be 'create' or 'append', not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.dim = dim
        self.manifest = manifest or IndexManifest()
        if mode == "append":
            if not (self.path / IndexManifest.FILENAME).exists() and not self.path.is_dir():
                raise FileNotFoundError(f"cannot append: no index at {self.path}")
            self._work = self.path
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._work = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.building-",
                                               dir=self.path.parent))
        config = java.IndexWriterConfig(java.analyzer)
        config.setOpenMode(java.OpenMode.CREATE if mode == "create" else java.OpenMode.APPEND)
        config.setRAMBufferSizeMB(float(ram_buffer_mb))
        self._dir = java.FSDirectory.open(java.File(str(self._work)).toPath())
        self._writer = java.IndexWriter(self._dir, config)
        self._closed = False
        self.added = 0

    def add(self, id: str, text: str, vector: Sequence[float] | np.ndarray | None = None,
            title: str = "", metadata: dict[str, Any] | None = None) -> None:
        """Add (or, when appending, replace) one passage."""
        self.add_batch([id], [text], None if vector is None else np.asarray(vector)[None, :],
                       [title], [metadata])

    def add_batch(self, ids: Sequence[str], texts: Sequence[str], vectors: np.ndarray | None = None,
                  titles: Sequence[str] | None = None,
                  metadata: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Add a batch of passages in one call into Java; ``vectors`` has shape (n, dim)."""
        n = len(ids)
        titles = titles or [""] * n
        metadata = metadata or [None] * n
        if len(texts) != n or len(titles) != n or len(metadata) != n:
            raise ValueError("ids, texts, titles and metadata must have the same length")
        for pid in ids:
            if not isinstance(pid, str) or not pid:
                raise ValueError(f"passage id must be a non-empty string, not {pid!r}")
        blob = b""
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype="<f4")
            if self.dim is None:
                self.dim = int(vectors.shape[1])
            if vectors.shape != (n, self.dim):
                raise ValueError(f"vectors have shape {vectors.shape}, expected ({n}, {self.dim}) "
                                 f"(the index holds {self.dim}-dimensional vectors)")
            blob = vectors.tobytes()
        contents = [f"{t}\n{x}" if t else x for t, x in zip(titles, texts)]
        raws = [_raw(pid, x, t, m) for pid, x, t, m in zip(ids, texts, titles, metadata)]
        java.Bridge.addPassages(self._writer, list(ids), contents, raws, blob, self.dim or 0, VECTOR,
                                self.mode == "append")
        self.added += n

    def delete(self, ids: Sequence[str]) -> None:
        """Delete passages by id (both views at once)."""
        if ids:
            java.Bridge.deleteIds(self._writer, list(ids))

    def close(self) -> None:
        """Commit, write the manifest and publish the index directory."""
        if self._closed:
            return
        self._writer.commit()
        count = self._writer.getDocStats().numDocs
        self._writer.close()
        self._dir.close()
        self._closed = True
        self.manifest.passages = int(count)
        if self.dim is not None:
            self.manifest.dim = self.dim
        self.manifest.write(self._work)
        if self.mode == "create":
            _publish(self._work, self.path)

    def abort(self) -> None:
        """Drop an unfinished build; an existing index stays as it was."""
        if self._closed:
            return
        self._writer.rollback()
        self._dir.close()
        self._closed = True
        if self.mode == "create":
            shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _raw(pid: str, text: str, title: str, metadata: dict[str, Any] | None) -> str:
    """The stored record, JSON in the shape of Anserini's JsonCollection (plus title/metadata)."""
    record: dict[str, Any] = {"id": pid, "contents": text}
    if title:
        record["title"] = title
    if metadata:
        record["metadata"] = metadata
    return json.dumps(record, ensure_ascii=False, default=str)


def _publish(built: Path, target: Path) -> None:
    """Move a finished build into place, replacing an older index only at the last step."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(built, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(built, target)
