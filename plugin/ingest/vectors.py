"""Import pre-encoded passage vectors instead of encoding the corpus on a CPU.

Reads Pyserini/Anserini's dense vector collections (``JsonDenseVectorCollection``)::

    {"docid": "7187158", "vector": [0.0132, -0.0561, ...], "contents": "The Manhattan Project ..."}

(``id`` or ``_id`` instead of ``docid``; ``text`` instead of ``contents``), as JSONL, gzipped
JSONL, Parquet (columns ``docid``/``id``, ``vector``, optional ``contents``/``text``), or a
folder of such files (read in name order).  When the vectors carry no text (Anserini's Parquet
files hold only ``docid`` and ``vector``), the text comes from a separate corpus
(``--corpus``: ``collection.tsv``, JSONL, BEIR ...) joined by id.  The join streams: when both
files are in the same order (as Pyserini writes them) it holds a handful of passages; out of
order it buffers the corpus passages not yet needed (at worst the whole corpus).

Vectors are written through :class:`lucerag.index.writer.IndexWriter` into the usual one-index
layout (BM25 over the text, HNSW over the vectors).  Lucene's DOT_PRODUCT similarity needs unit
vectors: every vector whose norm is not 1 (|norm - 1| > 1e-3) is normalised, and the report
says how many were.  Normalising does not change cosine rankings; it does change raw inner
products, so vectors from a model trained for unnormalised inner product (e.g. some MS MARCO
models) rank slightly differently after import.

The query encoder must be the one that produced the vectors: pass ``--model`` (an exported
lucerag model folder) to record it in the index manifest, so that a search with another encoder
fails instead of returning nonsense.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lucerag.connectors.document import ID_KEYS, TEXT_KEYS
from lucerag.errors import VectorFormatError
from lucerag.index.hnsw import HNSW_BEAM, HNSW_M
from lucerag.ingest.pipeline import PassageRate
NORM_TOLERANCE = 1e-3


@dataclass
class VectorRecord:
    id: str
    vector: np.ndarray
    text: str | None = None
    title: str = ""
    where: str = ""   # file and line (or Parquet row) it was read from


@dataclass
class ImportReport(PassageRate):
    passages: int = 0
    dim: int = 0
    normalised: int = 0            # vectors whose norm was not 1 and were scaled to unit length
    max_norm_deviation: float = 0.0
    missing_text: int = 0          # vectors with no text anywhere (skipped with on_missing="skip")
    text_from_corpus: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------------

def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) is not None)
        if not found:
            raise VectorFormatError(f"{path}: no .jsonl, .jsonl.gz, .json(.gz) or .parquet files in the folder")
        return found
    if not path.exists():
        raise FileNotFoundError(f"no vector file at {path}")
    if _kind(path) is None:
        raise VectorFormatError(f"{path}: unknown vector file type (use .jsonl, .jsonl.gz or .parquet)")
    return [path]


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        return "jsonl"
    return None


def _first(record: dict, keys: tuple[str, ...]):
    for k in keys:
        if k in record and record[k] is not None:
            return record[k]
    return None


def _read_jsonl(path: Path) -> Iterator[VectorRecord]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as raw:
        for lineno, line in enumerate(raw, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VectorFormatError(f"{path}: line {lineno}: not JSON ({exc.msg})") from None
            yield _record(record, f"{path}: line {lineno}")


def _record(record: Any, where: str) -> VectorRecord:
    if not isinstance(record, dict):
        raise VectorFormatError(f"{where}: expected a JSON object")
    pid = _first(record, ID_KEYS)
    vector = record.get("vector")
    if pid is None or vector is None:
        raise VectorFormatError(f"{where}: needs an id ({' or '.join(map(repr, ID_KEYS))}) and a 'vector'")
    try:
        vec = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise VectorFormatError(f"{where}: 'vector' is not a list of numbers") from None
    if vec.ndim != 1 or vec.size == 0 or not np.isfinite(vec).all():
        raise VectorFormatError(f"{where}: 'vector' of {str(pid)!r} must be a non-empty list of finite numbers")
    _check_nonzero(vec, where, str(pid))
    text = _first(record, TEXT_KEYS)
    return VectorRecord(str(pid), vec, None if text is None else str(text), str(record.get("title") or ""), where)


def _check_nonzero(vec: np.ndarray, where: str, pid: str) -> None:
    if not vec.any():
        raise VectorFormatError(f"{where}: the vector of {pid!r} is all zeros: it has no direction, so it "
                                "cannot be normalised for DOT_PRODUCT (cosine) search")


def _read_parquet(path: Path, batch_rows: int = 8192) -> Iterator[VectorRecord]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency of the eval extras
        raise VectorFormatError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    id_col = next((k for k in ID_KEYS if k in names), None)
    if id_col is None or "vector" not in names:
        raise VectorFormatError(f"{path}: needs an id column ({' or '.join(map(repr, ID_KEYS))}) and 'vector'; it has {names}")
    text_col = next((k for k in TEXT_KEYS if k in names), None)
    cols = [id_col, "vector"] + ([text_col] if text_col else []) + (["title"] if "title" in names else [])
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        ids = batch.column(id_col).to_pylist()
        vcol = batch.column("vector")
        try:
            flat = vcol.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            vectors = flat.reshape(len(ids), -1)
        except Exception:  # ragged or nested oddly: go row by row
            vectors = [np.asarray(v, np.float32) for v in vcol.to_pylist()]
        texts = batch.column(text_col).to_pylist() if text_col else [None] * len(ids)
        titles = batch.column("title").to_pylist() if "title" in names else [""] * len(ids)
        for i, pid in enumerate(ids):
            row += 1
            vec = np.asarray(vectors[i], np.float32)
            if pid is None or vec.ndim != 1 or vec.size == 0 or not np.isfinite(vec).all():
                raise VectorFormatError(f"{path}: row {row}: needs an id and a non-empty finite vector")
            _check_nonzero(vec, f"{path}: row {row}", str(pid))
            yield VectorRecord(str(pid), vec, texts[i], str(titles[i] or ""), f"{path}: row {row}")


def read_vectors(path: str | Path) -> Iterator[VectorRecord]:
    """Stream vector records from a file or a folder of files (JSONL, JSONL.gz, Parquet)."""
    for f in _files(Path(path)):
        yield from (_read_parquet(f) if _kind(f) == "parquet" else _read_jsonl(f))


class CorpusLookup:
    """Text and title of passages by id, read from a corpus as the ids are asked for.

    In-order access (the usual case: vectors written in corpus order) keeps memory flat;
    out-of-order access buffers the corpus passages read past."""

    def __init__(self, path: str | Path, fmt: str | None = None):
        from lucerag.connectors import read_documents

        self._docs = iter(read_documents(path, fmt))
        self._buffer: dict[str, tuple[str, str]] = {}
        self._done = False
        self.path = Path(path)

    def get(self, pid: str) -> tuple[str, str] | None:
        found = self._buffer.pop(pid, None)
        if found is not None:
            return found
        while not self._done:
            doc = next(self._docs, None)
            if doc is None:
                self._done = True
                break
            if doc.id == pid:
                return doc.title, doc.text
            self._buffer[doc.id] = (doc.title, doc.text)
        return None

    @property
    def buffered(self) -> int:
        return len(self._buffer)


# -- writing ---------------------------------------------------------------------------------

def normalise(vectors: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Unit-length rows; returns (vectors, how many were rescaled, largest |norm - 1|)."""
    norms = np.linalg.norm(vectors, axis=1)
    if np.any(norms == 0):
        raise VectorFormatError("a vector is all zeros: it cannot be normalised for DOT_PRODUCT search")
    deviation = np.abs(norms - 1.0)
    off = deviation > NORM_TOLERANCE
    if off.any():
        vectors = vectors.copy()
        vectors[off] /= norms[off, None]
    return vectors, int(off.sum()), float(deviation.max()) if len(deviation) else 0.0


class _EncoderInfo:
    """What IndexManifest.for_encoder reads from an encoder: its manifest (no onnxruntime session)."""

    def __init__(self, model: str | Path | None):
        from lucerag.models import ModelManifest, default_model_dir

        self.model_dir = Path(model).expanduser() if model not in (None, "default") else default_model_dir()
        self.manifest = ModelManifest.load(self.model_dir)
        self.dim = self.manifest.dim


def import_vectors(input: str | Path, index_dir: str | Path, *, corpus: str | Path | None = None,
                   corpus_format: str | None = None, model: str | Path | None = None,
                   append: bool = False, batch_size: int = 1024, on_missing: str = "fail",
                   limit: int | None = None, ram_buffer_mb: float = 512, index_threads: int = 1,
                   progress: bool = False, hnsw_m: int = HNSW_M, hnsw_beam: int = HNSW_BEAM,
                   vector_format: str | None = None) -> ImportReport:
    """Write pre-encoded passages into a lucerag index (see the module docstring).

    ``model``: the exported query-encoder folder matching the vectors ("default" for lucerag's
    default model), recorded in the manifest; None records no encoder (only the dimension is
    checked at search time).  ``on_missing``: ``fail`` or ``skip`` vectors whose text is
    nowhere to be found.  ``limit``: import only the first N vectors.
    """
    from lucerag.index.manifest import IndexManifest
    from lucerag.connectors.dedupe import SeenIds
    from lucerag.index.writer import DuplicateIdError, IndexWriter
    from tqdm import tqdm

    if on_missing not in ("fail", "skip"):
        raise ValueError("on_missing must be 'fail' or 'skip'")
    report = ImportReport(files=[str(f) for f in _files(Path(input))])
    encoder = _EncoderInfo(model) if model is not None else None
    settings = {"imported_from": str(input), "corpus": str(corpus) if corpus else None,
                "vectors_normalised_on_import": True}
    manifest = IndexManifest.for_encoder(encoder, **settings)
    lookup = CorpusLookup(corpus, corpus_format) if corpus is not None else None
    start = time.perf_counter()
    bar = tqdm(unit="passage", disable=not progress, dynamic_ncols=True, desc="import")
    ids: list[str] = []
    texts: list[str] = []
    titles: list[str] = []
    vecs: list[np.ndarray] = []
    wheres: list[str] = []
    seen = SeenIds()

    with IndexWriter(index_dir, mode="append" if append else "create", manifest=manifest if not append else None,
                     dim=encoder.dim if encoder is not None else None, ram_buffer_mb=ram_buffer_mb,
                     threads=index_threads, hnsw_m=hnsw_m, hnsw_beam=hnsw_beam,
                     vector_format=vector_format) as writer:
        def flush() -> None:
            if not ids:
                return
            block = np.stack(vecs)
            if report.dim == 0:
                report.dim = block.shape[1]
                if writer.dim is not None and writer.dim != report.dim:
                    raise VectorFormatError(f"the vectors have {report.dim} dimensions but the index "
                                            f"{'holds' if append else 'encoder makes'} {writer.dim}")
            block, rescaled, deviation = normalise(block)
            report.normalised += rescaled
            report.max_norm_deviation = max(report.max_norm_deviation, round(deviation, 6))
            repeated = np.flatnonzero(seen.add_batch(ids))  # appending, the writer would take a repeated
            if len(repeated):                                # id for an update: refuse it here
                i = int(repeated[0])
                raise DuplicateIdError([(i, ids[i], "appears twice in the vectors")]).located(wheres[i])
            try:
                writer.add_batch(ids, texts, block, titles)
            except DuplicateIdError as exc:
                raise exc.located(wheres[exc.clashes[0][0]]) from None
            report.passages += len(ids)
            bar.update(len(ids))
            for column in (ids, texts, titles, vecs, wheres):
                column.clear()

        for n, rec in enumerate(read_vectors(input)):
            if limit is not None and n >= limit:
                break
            if vecs and rec.vector.shape != vecs[0].shape:
                raise VectorFormatError(f"{rec.where}: vector of {rec.id} has {rec.vector.size} dimensions, "
                                        f"the ones before {vecs[0].size}")
            text, title = rec.text, rec.title
            if lookup is not None and (text is None or not title):
                found = lookup.get(rec.id)
                if found is not None:
                    title = title or found[0]
                    if text is None:
                        text = found[1]
                        report.text_from_corpus += 1
            if text is None:
                report.missing_text += 1
                if on_missing == "fail":
                    where = f"in {corpus}" if corpus is not None else "(the vectors carry no 'contents': pass --corpus)"
                    raise VectorFormatError(f"no text for passage {rec.id!r} {where}")
                continue
            ids.append(rec.id)
            texts.append(text)
            titles.append(title)
            vecs.append(rec.vector)
            wheres.append(rec.where)
            if len(ids) >= batch_size:
                flush()
        flush()
        if report.passages == 0:
            raise VectorFormatError(f"{input}: no vectors imported")
    bar.close()
    report.seconds = time.perf_counter() - start
    if report.normalised:
        report.warnings.append(
            f"{report.normalised} of {report.passages} vectors were not unit length (largest |norm - 1| "
            f"{report.max_norm_deviation:.4g}) and were normalised for Lucene's DOT_PRODUCT similarity")
    if report.missing_text:
        report.warnings.append(f"{report.missing_text} vectors had no text and were skipped")
    if encoder is None:
        report.warnings.append("no --model given: the index records no query encoder; search it with the "
                               "encoder that produced the vectors")
    return report


# -- writing vector files (for tests, and to move vectors between machines) --------------------

def export_vectors(records: Iterable[tuple[str, np.ndarray, str]], path: str | Path,
                   with_contents: bool = True, id_key: str = "id") -> int:
    """Write ``(id, vector, text)`` records as JsonDenseVectorCollection JSONL(.gz) or Parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = list(records)
        columns = {id_key: [r[0] for r in rows],
                   "vector": [np.asarray(r[1], np.float32).tolist() for r in rows]}
        if with_contents:
            columns["contents"] = [r[2] for r in rows]
        pq.write_table(pa.table(columns), path)
        return len(rows)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    n = 0
    with opener(path, "wt", encoding="utf-8") as out:
        for pid, vector, text in records:
            record = {id_key: pid, "vector": [round(float(x), 7) for x in np.asarray(vector).ravel()]}
            if with_contents:
                record["contents"] = text
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n
