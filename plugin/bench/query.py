"""Query benchmark: lucerag and the stack it replaces, side by side, on one index and query set.

``lucerag bench query --index DIR --queries FILE --json`` measures, in one run:

* latency with 1 thread (p50/p95/p99, ms) of each stage on lucerag's query path: ``encode``
  (ONNX, 1 onnxruntime thread), ``bm25`` and ``hnsw`` (top ``depth`` = fusion depth, through
  the Java bridge), ``hybrid`` end to end (``Retriever.search(q, k, filter=False)``: encode, both
  searches, exact scores for one-view candidates, fusion, the top ``k`` passages with their text)
  and ``hybrid_filter`` (the same plus the calibrated relevance filter);
* throughput (queries/s) of end-to-end hybrid search with ``threads`` concurrent threads;
* recall of HNSW against exact search: R@``depth`` of the HNSW top ``depth`` against the
  brute-force top ``depth`` over every stored vector, for the index's ``ef_search``;
* ingest passages/s on a sample (ONNX encoding on all cores + Lucene, into a temporary index),
  the index's size on disk, and the process's peak RSS (JVM included) after lucerag's
  measurements;
* the baseline (:mod:`lucerag.bench.baseline`) on the same passages, vectors and queries, in its
  own process (so its RSS is its own), measured the same way.

The machine's load average is recorded before and after: numbers taken on a busy machine are
not comparable with quiet ones.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from lucerag.bench.baseline import percentiles, throughput
from lucerag.errors import InputError
from lucerag.lucene.jvm import detach_thread
from lucerag.bench.timing import latencies as _latencies


def load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def all_vectors(index, chunk: int = 8192) -> np.ndarray:
    """Every stored vector of an index (doc number order), read in chunks, not cached."""
    from lucerag.lucene.classes import java

    n, dim = int(index.reader.maxDoc()), index.dim
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        docnums = np.arange(s, min(n, s + chunk), dtype="<i4")
        blob = java.Bridge.vectors(index.reader, index.vector_field, docnums.tobytes(), dim).tostring()
        out[s:s + len(docnums)] = np.frombuffer(blob, "<f4").reshape(len(docnums), dim)
    return out


def all_records(index) -> tuple[list[str], list[str]]:
    """Ids and texts of every passage (doc number order)."""
    n = int(index.reader.maxDoc())
    ids = index.ids(range(n))
    texts = [index.record(d).get("contents", "") for d in range(n)]
    return ids, texts


def hnsw_recall(retriever, vectors: np.ndarray, queries: list[str], depth: int) -> dict[str, Any]:
    """Mean R@depth of HNSW's top ``depth`` against the exact top ``depth`` (brute force)."""
    encoder = retriever.encoder
    recalls = []
    for q in queries:
        v = encoder.encode_query(q)
        exact = vectors @ v
        k = min(depth, len(exact))
        top = set(np.argpartition(-exact, k - 1)[:k].tolist())
        got = set(retriever.dense.search(v, k).docnums)
        recalls.append(len(top & got) / k)
    return {"depth": depth, "ef_search": retriever.dense.ef_search, "exact_scan": retriever.dense.exact, "queries": len(queries),
            "recall": round(float(np.mean(recalls)), 4), "min": round(float(np.min(recalls)), 4)}


def ingest_rate(texts: list[str], ids: list[str], encoder_threads: int | None = None) -> dict[str, Any]:
    """Full ingest (token chunking, ONNX encoding on all cores, Lucene) of a sample, temp index."""
    from lucerag.connectors import Document
    from lucerag.ingest.pipeline import build_index
    from lucerag.models import load_encoder
    from lucerag.models.store import DEFAULT_PASSAGE_PRECISION

    encoder = load_encoder(None, threads=encoder_threads, precision=DEFAULT_PASSAGE_PRECISION)
    docs = [Document(id=i, title="", text=t) for i, t in zip(ids, texts)]
    encoder.encode_passages(texts[:32])
    tmp = Path(tempfile.mkdtemp(prefix="lucerag-bench-ingest-"))
    try:
        report = build_index(docs, tmp / "idx", encoder=encoder, progress=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"sample": len(docs), "seconds": round(report.seconds, 2),
            "passages_per_s": round(report.passages_per_s, 1),
            "encode_seconds": round(report.encode_seconds, 2)}


def run_query_bench(index_dir: Path, queries: list[str], *, k: int = 10, n_latency: int = 200,
                    threads: int = 2, n_throughput: int = 200, baseline: bool = True,
                    recall_queries: int = 100, ingest_sample: int = 500, ef_search: int | None = None,
                    corpus: tuple[list[str], list[str], np.ndarray] | None = None,
                    latencies_out: Path | None = None, import_rate: float | None = None,
                    label: str | None = None, ef_sweep: list[int] | None = None,
                    precision: Literal["fp32", "int8"] | None = None) -> dict[str, Any]:
    """Measure lucerag (and the baseline) on ``index_dir``; returns one JSON-able dict.

    ``precision``: the query encoder's (default: the configuration's, ``[encoder] precision``).

    ``corpus``: the index's (ids, texts, vectors) in doc number order when the caller has them
    (saves reading them back from the index).  ``latencies_out``: write every measured latency
    (ms) as JSON there (for CDF plots).
    """
    from lucerag.config import Config
    from lucerag.search.retriever import Retriever

    index_dir = Path(index_dir)
    result: dict[str, Any] = {
        "label": label, "index": str(index_dir), "k": k, "queries": len(queries), "n_latency": n_latency,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_before": load_avg()},
    }
    cfg = Config.for_index(index_dir)
    if ef_search is not None:
        cfg.dense.ef_search = ef_search
    if precision is not None:
        cfg.encoder.precision = precision
    cfg.encoder.threads = 1  # latency is measured with one encoder thread
    cfg.encoder.cache = 0    # every timed search encodes its query (the stages repeat the same texts)
    result["query_encoder"] = cfg.encoder.precision
    retriever = Retriever(cfg)
    try:
        encoder = retriever.encoder  # the configured model and precision, checked against the index
        depth = cfg.fusion.depth
        bm25, dense, index = retriever.bm25, retriever.dense, retriever.dense_index
        if bm25 is None or dense is None or index is None:
            raise InputError(f"{index_dir}: bench query needs an index with both views (BM25 and vectors)")
        result.update(passages=index.size, depth=depth, ef_search=dense.ef_search,
                      index_bytes=dir_size(index_dir), fusion=cfg.fusion.model_dump())
        has_filter = retriever.calibrator is not None
        qs = [queries[i % len(queries)] for i in range(n_latency)]
        vecs = {q: encoder.encode_query(q) for q in dict.fromkeys(qs)}
        # Warm-up: the JVM compiles Lucene's search code after a few hundred calls; time it compiled.
        for q in qs[:max(50, min(len(qs), 100))]:
            retriever.search(q, k=k, filter=has_filter)
            bm25.search(q, depth)
            dense.search(vecs[q], depth)
        lat = {
            "encode": _latencies(encoder.encode_query, qs),
            "bm25": _latencies(lambda q: bm25.search(q, depth), qs),
            "hnsw": _latencies(lambda q: dense.search(vecs[q], depth), qs),
            "hybrid": _latencies(lambda q: retriever.search(q, k=k, filter=False), qs),
        }
        if has_filter:
            lat["hybrid_filter"] = _latencies(lambda q: retriever.search(q, k=k, filter=True), qs)
        result["latency_1_thread"] = {name: percentiles(v) for name, v in lat.items()}
        result["hybrid_p50_ms"] = result["latency_1_thread"]["hybrid"]["p50_ms"]
        tq = [queries[i % len(queries)] for i in range(n_throughput)]
        result["throughput_1_thread_qps"] = round(1000.0 / float(np.mean(lat["hybrid"])), 2)
        result["throughput"] = throughput(lambda q: retriever.search(q, k=k, filter=False), tq, threads,
                                          on_exit=detach_thread)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

        if corpus is not None:
            ids, texts, vectors = corpus
        else:
            ids, texts = all_records(index)
            vectors = all_vectors(index)
        rq = list(dict.fromkeys(queries))[:recall_queries]
        result["hnsw_recall"] = hnsw_recall(retriever, vectors, rq, depth)
        if ef_sweep:
            chosen_ef = dense.ef_search
            sweep = []
            for ef in sorted(set(ef_sweep)):
                dense.ef_search = ef
                ms = _latencies(lambda q: dense.search(vecs[q] if q in vecs else encoder.encode_query(q),
                                                                 depth), rq, warmup=5)
                sweep.append({**hnsw_recall(retriever, vectors, rq, depth), "hnsw_p50_ms": percentiles(ms)["p50_ms"]})
            dense.ef_search = chosen_ef
            result["hnsw_recall_sweep"] = sweep
    finally:
        retriever.close()
    sample = min(ingest_sample, len(texts))
    result["ingest"] = ingest_rate(texts[:sample], ids[:sample]) if sample else {}
    if import_rate is not None:
        result["ingest"]["import_passages_per_s"] = import_rate
    if latencies_out is not None:
        latencies_out.parent.mkdir(parents=True, exist_ok=True)
        blob = {"lucerag": lat}
    if baseline:
        from lucerag.bench.baseline import run_in_subprocess, write_data

        tmp = Path(tempfile.mkdtemp(prefix="lucerag-bench-baseline-"))
        try:
            write_data(tmp, ids, texts, vectors, queries)
            lat_file = tmp / "latencies.json"
            f = cfg.fusion
            result["baseline"] = run_in_subprocess(
                tmp, k=k, depth=depth, n_latency=n_latency, threads=threads, n_throughput=n_throughput,
                ingest_sample=sample, k1=cfg.bm25.k1, b=cfg.bm25.b, latencies_out=lat_file,
                fusion={"method": f.method, "dense_weight": f.dense_weight, "norm": f.norm, "rrf_k": f.rrf_k})
            if latencies_out is not None:
                blob["baseline"] = json.loads(lat_file.read_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        b = result["baseline"]
        result["baseline_p50_ms"] = b["latency_1_thread"]["hybrid"]["p50_ms"]
        result["speedup_p50"] = round(result["baseline_p50_ms"] / result["hybrid_p50_ms"], 2)
        result["speedup_throughput"] = round(result["throughput"]["qps"] / b["throughput"]["qps"], 2)
    if latencies_out is not None:
        latencies_out.write_text(json.dumps(blob))
    result["machine"]["load_after"] = load_avg()
    return result
