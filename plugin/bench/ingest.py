"""Ingest benchmark: how fast documents get into the index, and what bounds it.

``lucerag bench ingest [--input PATH] [--bm25-only] [--limit N] [--repeat R] --json`` measures,
in one process (the JVM started and the encoder loaded before any timing):

* ``read``: the connector alone (read + parse + validate) and with chunking (the producer stage);
* ``bm25``: BM25-only ingest into a temporary index, ``repeat`` times (the first run includes the
  JIT warm-up of Lucene's code; ``best`` and ``median`` are over all runs);
* unless ``--bm25-only``, ``full``: the pure encoder (``encode_passages`` over the same passage
  texts, same batch size, nothing else running) and the full ingest pipeline, and their ratio:
  ``pipeline_vs_encoder`` close to 1.0 means the pipeline is bounded by the encoder, and
  ``pipeline_encoder_share`` (time inside the encoder / pipeline wall time) says how much of the
  rest (reading, chunking, Lucene) is hidden behind it; the share does not depend on the machine's
  load the way the two separately timed rates do.

Everything is real: real files, real JVM and Lucene, real ONNX model.  The machine's load average
is recorded before and after: numbers taken on a busy machine are not comparable.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from lucerag.bench.data import DL19_SLICE, data_path



def _documents(path: Path, fmt: str | None, limit: int | None):
    from lucerag.connectors import read_documents

    stream = read_documents(path, fmt)
    return stream if limit is None else islice(stream, limit)


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def run_ingest_bench(input: Path | None = None, fmt: str | None = None, *, bm25_only: bool = False,
                     limit: int | None = None, repeat: int = 3, model: str | None = None,
                     encoder_threads: int | None = None, index_threads: int | None = None,
                     batch_size: int = 256, progress: bool = False) -> dict[str, Any]:
    """Run the benchmark and return one JSON-able dict (see the module docstring)."""
    from lucerag.lucene import jvm
    from lucerag.ingest.chunking import token_chunker, word_chunker
    from lucerag.ingest.pipeline import build_index

    path = Path(input) if input is not None else data_path(f"{DL19_SLICE}/corpus.jsonl", option="--input")
    if not path.exists():
        raise FileNotFoundError(f"no benchmark input at {path} (pass --input)")
    result: dict[str, Any] = {
        "input": str(path), "limit": limit, "repeat": repeat, "batch_size": batch_size,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_before": _load()},
    }
    jvm.start()
    from lucerag.lucene.classes import java

    _ = java.analyzer  # resolve the classes before timing
    encoder = None
    if not bm25_only:
        from lucerag.models import load_encoder
        from lucerag.models.store import DEFAULT_PASSAGE_PRECISION

        encoder = load_encoder(model, threads=encoder_threads, precision=DEFAULT_PASSAGE_PRECISION)
        result["encoder"] = {"name": encoder.manifest.name, "dir": str(encoder.model_dir),
                             "precision": encoder.manifest.precision,
                             "threads": encoder_threads or "onnxruntime default"}

    t = time.perf_counter()
    docs = sum(1 for _ in _documents(path, fmt, limit))
    read_s = time.perf_counter() - t
    chunk_words, words_settings = word_chunker(192, 24)
    t = time.perf_counter()
    word_passages = sum(1 for _ in chunk_words(_documents(path, fmt, limit)))
    words_s = time.perf_counter() - t
    result["read"] = {"documents": docs, "seconds": round(read_s, 3), "documents_per_s": _rate(docs, read_s),
                      "word_chunked_passages": word_passages,
                      "read_and_word_chunk_passages_per_s": _rate(word_passages, words_s)}

    tmp = Path(tempfile.mkdtemp(prefix="lucerag-bench-"))
    try:
        runs = []
        for i in range(max(1, repeat)):
            report = build_index(_documents(path, fmt, limit), tmp / f"bm25-{i}", dense=False,
                                 batch_size=batch_size, progress=progress, index_threads=index_threads)
            runs.append(report)
            shutil.rmtree(tmp / f"bm25-{i}", ignore_errors=True)
        rates = [r.passages_per_s for r in runs]
        result["bm25"] = {"passages": runs[0].passages, "documents": runs[0].indexed,
                          "passages_per_s": [round(x, 1) for x in rates], "first_run_passages_per_s": round(rates[0], 1),
                          "best_passages_per_s": round(max(rates), 1),
                          "median_passages_per_s": round(statistics.median(rates), 1),
                          "seconds": [round(r.seconds, 3) for r in runs], "settings": words_settings}

        if encoder is not None:
            chunk_tokens, token_settings = token_chunker(encoder, None, 32)
            t = time.perf_counter()
            texts = [p[3] for p in chunk_tokens(_documents(path, fmt, limit))]
            chunk_s = time.perf_counter() - t
            encoder.encode_passages(texts[:64])  # warm-up (onnxruntime allocations)
            t = time.perf_counter()
            for s in range(0, len(texts), batch_size):
                encoder.encode_passages(texts[s:s + batch_size], batch_size=32)
            enc_s = time.perf_counter() - t
            report = build_index(_documents(path, fmt, limit), tmp / "full", encoder=encoder,
                                 batch_size=batch_size, progress=progress, index_threads=index_threads)
            enc_rate, pipe_rate = _rate(len(texts), enc_s), round(report.passages_per_s, 1)
            result["full"] = {
                "passages": report.passages, "settings": token_settings,
                "read_and_token_chunk_passages_per_s": _rate(len(texts), chunk_s),
                "encoder_only_passages_per_s": enc_rate, "encoder_only_seconds": round(enc_s, 2),
                "pipeline_passages_per_s": pipe_rate, "pipeline_seconds": round(report.seconds, 2),
                "pipeline_encode_seconds": round(report.encode_seconds, 2),
                "pipeline_wait_for_producer_seconds": round(report.wait_seconds, 2),
                "pipeline_vs_encoder": round(pipe_rate / enc_rate, 3) if enc_rate else None,
                # share of the pipeline's wall time the main thread spent inside the encoder:
                # 1.0 = reading, chunking and indexing are entirely hidden behind encoding
                "pipeline_encoder_share": round(report.encode_seconds / report.seconds, 3) if report.seconds else None,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"]["load_after"] = _load()
    return result
