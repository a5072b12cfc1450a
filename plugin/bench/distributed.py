"""Distributed ingest throughput: the single-process pipeline vs Ray with 1 and 2 encoder workers.

``lucerag bench distributed [--input PATH] [--limit N] [--repeat R] [--workers 1,2] --json``
builds the same documents into a temporary index with each configuration, ``repeat`` times,
interleaved (single, ray x1, ray x2, single, ...) so that a change in the machine's load hits every
configuration alike; it reports each run's passages/s and the median per configuration.

* ``single``: :func:`lucerag.ingest.pipeline.build_index` in this process (onnxruntime's default
  threads: every core);
* ``ray_<n>``: the same call with ``ray=RayOptions(encoders=n)`` on one local Ray cluster started
  once (``ray.init(num_cpus=--cpus)``; its start-up is reported apart, not in the runs), one
  onnxruntime thread per encoder actor.  A run includes starting the actors (model load) and the
  shard writers' JVMs, and the final ``addIndexes`` merge (``merge_seconds``).

Besides wall-clock passages/s, each run reports CPU time (user + system, all threads): of this
process for ``single``; of the driver, the encoder actors and the shard tasks for Ray.  Passages per
CPU-second, and ``encoder_passages_per_cpu_s`` (one actor, one onnxruntime thread: what one dedicated
core encodes), hold up on a machine shared with other work, where wall-clock rates only measure the
share of the CPUs the scheduler gave each configuration.  (onnxruntime's intra-op threads spin while
waiting, which inflates ``single``'s CPU time when it runs more than one thread.)

Everything is real (files, JVMs, Lucene, the ONNX model).  The load average is recorded before
and after.
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


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def run_distributed_bench(input: Path | None = None, fmt: str | None = None, *, limit: int | None = 2000,
                          repeat: int = 3, workers: tuple[int, ...] = (1, 2), cpus: int | None = None,
                          object_store_mb: int = 400, shard_passages: int | None = None,
                          batch_size: int = 256, model: str | None = None,
                          precision: str | None = None) -> dict[str, Any]:
    """Run the benchmark; one JSON-able dict (see the module docstring)."""
    from lucerag.connectors import read_documents
    from lucerag.ingest.distributed import RayIngestReport, RayOptions, jvm_safe_ray
    from lucerag.ingest.pipeline import build_index
    from lucerag.lucene import jvm
    from lucerag.models import load_encoder
    from lucerag.models.store import DEFAULT_PASSAGE_PRECISION

    ray = jvm_safe_ray()  # before the JVM and the cluster start
    path = Path(input) if input is not None else data_path(f"{DL19_SLICE}/corpus.jsonl", option="--input")
    if not path.exists():
        raise FileNotFoundError(f"no benchmark input at {path} (pass --input)")
    docs = list(islice(read_documents(path, fmt), limit))
    cpus = cpus or os.cpu_count() or 1
    encoder = load_encoder(model, precision=precision or DEFAULT_PASSAGE_PRECISION)
    jvm.start()
    result: dict[str, Any] = {
        "input": str(path), "documents": len(docs), "repeat": repeat, "batch_size": batch_size,
        "encoder": {"name": encoder.manifest.name, "precision": encoder.manifest.precision},
        "machine": {"cpus": os.cpu_count(), "ray_num_cpus": cpus, "python": platform.python_version(),
                    "platform": platform.platform(), "ray": ray.__version__, "load_before": _load()},
    }
    t = time.perf_counter()
    ray.init(num_cpus=cpus, object_store_memory=object_store_mb << 20, include_dashboard=False,
             logging_level="WARNING")
    result["ray_start_seconds"] = round(time.perf_counter() - t, 2)
    configs = ["single"] + [f"ray_{n}" for n in workers]
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    tmp = Path(tempfile.mkdtemp(prefix="lucerag-bench-ray-"))
    try:
        for r in range(max(1, repeat)):
            for config in configs:
                options = None
                if config != "single":
                    n = int(config.split("_")[1])
                    per_shard = shard_passages or max(batch_size, -(-len(docs) // (2 * n)))
                    options = RayOptions(encoders=n, shard_passages=per_shard, progress_every_s=1e9)
                target = tmp / f"{config}-{r}"
                c0 = time.process_time()
                report = build_index(docs, target, encoder=encoder, batch_size=batch_size, progress=False,
                                     ray=options)
                cpu = time.process_time() - c0  # this process: the whole single build, the Ray driver
                row: dict[str, Any] = {"passages": report.passages, "seconds": round(report.seconds, 2),
                                       "passages_per_s": round(report.passages_per_s, 1)}
                if options is None:
                    row.update(cpu_seconds=round(cpu, 2), passages_per_cpu_s=round(report.passages / cpu, 1))
                if options is not None:
                    assert isinstance(report, RayIngestReport)
                    row.update(shards=report.shards, merge_seconds=round(report.merge_seconds, 2),
                               # one shard writer's Lucene rate (its JVM start-up included)
                               writer_passages_per_s=round(report.passages / report.write_seconds, 1)
                               if report.write_seconds else None,
                               driver_cpu_seconds=report.driver_cpu_seconds,
                               encoder_cpu_seconds=report.encoder_cpu_seconds,
                               writer_cpu_seconds=report.writer_cpu_seconds)
                    total = report.driver_cpu_seconds + report.encoder_cpu_seconds + report.writer_cpu_seconds
                    row.update(cpu_seconds=round(total, 2), passages_per_cpu_s=round(report.passages / total, 1),
                               # one encoder actor (one onnxruntime thread) per CPU-second: a dedicated core's rate
                               encoder_passages_per_cpu_s=round(report.passages / report.encoder_cpu_seconds, 1))
                runs[config].append(row)
                if r < repeat - 1 or config not in ("single", configs[-1]):
                    shutil.rmtree(target, ignore_errors=True)
        ray.shutdown()
        result["search"] = compare_search(tmp / f"single-{repeat - 1}", tmp / f"{configs[-1]}-{repeat - 1}",
                                          encoder, path.parent / "queries.jsonl")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    single = statistics.median(x["passages_per_s"] for x in runs["single"])
    result["runs"] = runs
    result["median_passages_per_s"] = {c: round(statistics.median(x["passages_per_s"] for x in runs[c]), 1)
                                       for c in configs}
    result["speedup_vs_single"] = {c: round(v / single, 2) if single else None
                                   for c, v in result["median_passages_per_s"].items()}
    result["median_passages_per_cpu_s"] = {
        c: round(statistics.median(x["passages_per_cpu_s"] for x in runs[c]), 1) for c in configs}
    result["median_encoder_passages_per_cpu_s"] = {
        c: round(statistics.median(x["encoder_passages_per_cpu_s"] for x in runs[c]), 1) for c in configs[1:]}
    result["machine"]["load_after"] = _load()
    return result


def compare_search(one: Path, sharded: Path, encoder, queries_path: Path, methods=("bm25", "dense", "hybrid"),
                   k: int = 10, repeats: int = 3) -> dict[str, Any]:
    """The single-process index (one segment) vs the Ray-built one (a segment per shard): segments, size,
    p50 latency of ``Retriever.rank`` per method (median over queries of the best of ``repeats``), and
    the share of queries whose top-k ids are identical."""
    import json

    from lucerag.bench.query import dir_size
    from lucerag.search.retriever import Retriever

    if not queries_path.is_file():
        return {"skipped": f"no queries at {queries_path}"}
    queries = [json.loads(line)["text"] for line in queries_path.read_text().splitlines() if line.strip()]
    out: dict[str, Any] = {"queries": len(queries), "k": k}
    rankings: dict[str, dict] = {}
    for name, path in (("single", one), ("ray", sharded)):
        with Retriever.from_index(path, encoder=encoder) as r:
            assert r.bm25_index is not None
            row: dict[str, Any] = {"segments": int(r.bm25_index.reader.leaves().size()),
                                   "mb": round(dir_size(path) / 2**20, 2)}
            rankings[name] = {}
            for m in methods:
                for q in queries[:5]:
                    r.rank(q, m, k)  # warm-up
                best = []
                for q in queries:
                    times = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        ranking = r.rank(q, m, k)
                        times.append(time.perf_counter() - t)
                    best.append(min(times))
                    rankings[name][(q, m)] = ranking.ids
                row[f"{m}_p50_ms"] = round(1000 * statistics.median(best), 3)
            out[name] = row
    out["same_top_k"] = {m: round(sum(rankings["single"][(q, m)] == rankings["ray"][(q, m)] for q in queries)
                                  / len(queries), 3) for m in methods}
    return out


def table(result: dict) -> str:
    """A Markdown table of the medians."""
    lines = ["| configuration | median passages/s | vs single | runs (passages/s) | passages per CPU-second |",
             "|---|---:|---:|---|---:|"]
    for c, v in result["median_passages_per_s"].items():
        each = ", ".join(str(x["passages_per_s"]) for x in result["runs"][c])
        lines.append(f"| {c} | {v} | {result['speedup_vs_single'][c]} | {each} | "
                     f"{result['median_passages_per_cpu_s'][c]} |")
    return "\n".join(lines)
