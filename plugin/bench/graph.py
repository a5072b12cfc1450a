"""HNSW graph settings benchmark: build CPU and R@100 against exact search, per (M, beam, format, JVM).

``lucerag bench graph`` (or ``python -m lucerag.bench.graph``) builds the reproducible ``size``-passage
corpus of :func:`lucerag.bench.scale.build_corpus` (the DL19 slice's real vectors, then synthetic
passages) once per setting, each in a process of its own (one JVM per setting: the Java runtime is
chosen per process, and CPU seconds are those of that process alone), and reports per setting:

* build: wall and CPU seconds (every thread of the process: Python, the JVM's indexing, HNSW
  construction, merges, GC) of writing the passages with their vectors given, through
  :class:`lucerag.index.writer.IndexWriter` (the ``import-vectors`` path), and the segment count;
* recall: R@100 of the graph search against an exact float32 scan (numpy) for ``queries`` distinct
  MS MARCO dev queries encoded with lucerag's query encoder, at each ``ef`` (Lucene's beam width at
  query time, :class:`lucerag.search.searchers.DenseSearcher`), with the p50 latency of that search
  (query vector given, 1 thread), and the same for lucerag's exact scan
  (:class:`lucerag.search.scan.Int8Scan`, what indexes below ``GRAPH_FROM`` passages use);
* the Java runtime used and whether Lucene's SIMD vector distances were on.

Each setting is given as ``M:beam[:format[:graph_from]]`` (``graph_from``: segments of fewer vectors
get no graph and Lucene searches them exhaustively; 0: always a graph); ``--java`` names Java homes to repeat every setting with
(``default``: lucerag's own choice, :func:`lucerag.lucene.jvm.find_java_home`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lucerag.bench.data import DL19_SLICE, data_path
from lucerag.bench.query import load_avg


def _measure(size: int, work: Path, m: int, beam: int, fmt: str, graph_from: int, efs: list[int], n_queries: int,
             data: Path | None, seed: int, ram_buffer_mb: float, threads: int, keep: bool,
             merge_workers: int | None = None) -> dict:
    import shutil

    from lucerag.bench.baseline import percentiles
    from lucerag.bench.peers import latency_queries
    from lucerag.bench.scale import build_corpus
    from lucerag.index.manifest import IndexManifest
    from lucerag.index.reader import LuceneIndex
    from lucerag.index.writer import IndexWriter
    from lucerag.ingest.vectors import _EncoderInfo
    from lucerag.lucene import jvm
    from lucerag.models import load_encoder
    from lucerag.models.manifest import DEFAULT_PASSAGE_PRECISION, DEFAULT_QUERY_PRECISION
    from lucerag.search.searchers import DenseSearcher

    slice_dir = data_path(DL19_SLICE, data)
    ids, texts, vectors = build_corpus(size, work, seed, slice_dir=slice_dir,
                                       encoder=load_encoder(None, precision=DEFAULT_PASSAGE_PRECISION))
    encoder = load_encoder(None, threads=1, precision=DEFAULT_QUERY_PRECISION)
    queries = np.stack([encoder.encode_query(q) for q in latency_queries(n_queries, set(), data)])
    jvm.start()
    path = work / f"graph-{size}-m{m}-b{beam}-{fmt}-{os.getpid()}"
    manifest = IndexManifest.for_encoder(_EncoderInfo(None))
    load0 = load_avg()
    cpu0, t0 = time.process_time(), time.perf_counter()
    with IndexWriter(path, manifest=manifest, dim=vectors.shape[1], hnsw_m=m, hnsw_beam=beam,
                     vector_format=fmt, ram_buffer_mb=ram_buffer_mb, threads=threads, graph_from=graph_from,
                     merge_workers=merge_workers) as writer:
        for s in range(0, len(ids), 2048):
            writer.add_batch(ids[s:s + 2048], texts[s:s + 2048], vectors[s:s + 2048])
    out: dict = {"size": len(ids), "m": m, "beam": beam, "format": fmt, "graph_from": graph_from, "java": jvm.runtime_info(),
           "build_s": round(time.perf_counter() - t0, 2), "build_cpu_s": round(time.process_time() - cpu0, 2),
           "segments": sum(1 for p in path.iterdir() if p.suffix == ".si"), "load": [load0, load_avg()],
           "merge_workers": writer.merge_workers}
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :100]
    index = LuceneIndex(path)
    try:
        out["graph_nodes"] = index.graph_nodes()
        row_of = {pid: i for i, pid in enumerate(ids)}

        def measure(searcher) -> dict:
            """R@100 against the float scan and p50 latency of ``searcher`` over the queries (after 5 warm-up)."""
            for q in queries[:5]:  # warm-up (JIT, first-use loads)
                searcher.search(q, 100)
            recalls, ms = [], []
            for q, truth in zip(queries, exact):
                t = time.perf_counter()
                hits = searcher.search(q, 100)
                ms.append((time.perf_counter() - t) * 1000)
                recalls.append(len(set(truth.tolist()) & {row_of[h] for h in hits.ids}) / 100)
            return {"r@100": round(float(np.mean(recalls)), 4), "p50_ms": percentiles(ms)["p50_ms"]}

        out["by_ef"] = {str(ef): measure(DenseSearcher(index, ef_search=ef, exact=False)) for ef in efs}
        # The alternative in the same process: lucerag's exact scan (int8 scan + float rescoring of
        # the best 2k, lucerag.search.scan), with its R@100 against the float scan.
        scan = DenseSearcher(index, exact=True)
        measured = measure(scan)
        out["scan_p50_ms"], out["scan_r@100"] = measured["p50_ms"], measured["r@100"]
        # What the exact scan cost before lucerag.search.scan: one float32 matrix-vector product
        # (einsum, 1 thread) and a top-100 selection over the same vectors.
        matrix = scan._all()[1]
        ms = []
        for q in queries:
            t = time.perf_counter()
            scores = np.einsum("ij,j->i", matrix, q)
            np.argpartition(-scores, 99)[:100]
            ms.append((time.perf_counter() - t) * 1000)
        out["float_scan_p50_ms"] = percentiles(ms)["p50_ms"]
    finally:
        index.close()
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
    return out


def run_graph_bench(size: int, settings: list[tuple[int, int, str, int]], *, work: Path, efs: list[int],
                    java_homes: tuple[str, ...] | list[str] = ("default",), n_queries: int = 200, data: Path | None = None,
                    seed: int = 7, ram_buffer_mb: float = 512, threads: int = 0, progress=None,
                    merge_workers: tuple[int | None, ...] | list[int | None] = (None,), keep: bool = False) -> list[dict]:
    """Each (M, beam, format, graph_from) with each Java home and each count of graph-building threads
    (``merge_workers``; None: the writer's default), one process each (see the module docstring)."""
    say = progress or (lambda msg: None)
    results = []
    for home in java_homes:
        env = dict(os.environ)
        if home != "default":
            env["LUCERAG_JAVA_HOME"] = home
        for (m, beam, fmt, graph_from), workers in ((s, w) for s in settings for w in merge_workers):
            say(f"{size}: M {m} beam {beam} {fmt} graph from {graph_from} java {home} merge workers {workers}")
            args = [sys.executable, "-m", "lucerag.bench.graph", "--child", "--size", str(size), "--work", str(work),
                    "--settings", f"{m}:{beam}:{fmt}:{graph_from}", "--ef", ",".join(map(str, efs)), "--queries", str(n_queries),
                    "--seed", str(seed), "--ram-buffer-mb", str(ram_buffer_mb), "--threads", str(threads)]
            if workers is not None:
                args += ["--merge-workers", str(workers)]
            if keep:
                args.append("--keep")
            if data is not None:
                args += ["--data", str(data)]
            done = subprocess.run(args, stdout=subprocess.PIPE, text=True, env=env)
            if done.returncode != 0:
                results.append({"m": m, "beam": beam, "format": fmt, "graph_from": graph_from, "java_home": home,
                                "failed": f"exit {done.returncode}"})
                continue
            res = json.loads(done.stdout.strip().splitlines()[-1])
            res["java_home"] = home
            say(json.dumps(res))
            results.append(res)
    return results


def table(results: list[dict]) -> str:
    """Markdown table: one row per setting and Java runtime."""
    efs = sorted({int(e) for r in results for e in r.get("by_ef", {})})
    head = ["passages", "M / beam / format / graph from", "Java (SIMD)", "merge workers", "build CPU", "build wall",
            "segments",
            "vectors in a graph"]
    head += [f"R@100 / p50 at ef {e}" for e in efs] + ["exact scan R@100 / p50", "float32 scan p50"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    for r in results:
        if "failed" in r:
            lines.append(f"| | {r['m']} / {r['beam']} / {r['format']} / {r['graph_from']:,} | {r['java_home']} | "
                         f"failed: {r['failed']} |")
            continue
        j = r["java"]
        cells = [f"{r['size']:,}", f"{r['m']} / {r['beam']} / {r['format']} / {r.get('graph_from', 0):,}",
                 f"{j['version']} {j['source']} ({'on' if j['simd'] else 'off'})", str(r.get("merge_workers", "-")),
                 f"{r['build_cpu_s']:.1f} s", f"{r['build_s']:.1f} s", str(r["segments"]),
                 f"{r['graph_nodes']:,}" if "graph_nodes" in r else "-"]
        cells += [(f"{r['by_ef'][str(e)]['r@100']:.3f} / {r['by_ef'][str(e)]['p50_ms']:.2f} ms"
                   if str(e) in r["by_ef"] else "-") for e in efs]
        cells.append(f"{r['scan_r@100']:.3f} / {r['scan_p50_ms']:.2f} ms" if "scan_p50_ms" in r else "-")
        cells.append(f"{r['float_scan_p50_ms']:.2f} ms" if "float_scan_p50_ms" in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _settings(text: str) -> list[tuple[int, int, str, int]]:
    from lucerag.index.hnsw import GRAPH_FROM

    out = []
    for item in text.split(","):
        parts = item.split(":")
        if not 2 <= len(parts) <= 4:
            raise SystemExit(f"--settings: {item!r} is not M:beam[:format[:graph_from]]")
        out.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else "float",
                    int(parts[3]) if len(parts) > 3 else GRAPH_FROM))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=50_000)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--settings", default="48:400:float:0,16:100:float:0",
                    help="M:beam[:format[:graph_from]],... (format float, int8, bbq; graph_from: segments of fewer "
                         "vectors get no graph and are searched exhaustively, 0 = always a graph)")
    ap.add_argument("--ef", default="100,200,400", help="query-time beam widths to measure R@100 at")
    ap.add_argument("--java", default="default", help="Java homes, comma-separated ('default': lucerag's choice)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ram-buffer-mb", type=float, default=512)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--merge-workers", default="",
                    help="graph-building threads per merge, comma-separated, each a run of every setting "
                         "(default: the writer's, every CPU)")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args(argv)
    efs = [int(e) for e in a.ef.split(",") if e]
    a.work.mkdir(parents=True, exist_ok=True)
    if a.child:
        (m, beam, fmt, graph_from), = _settings(a.settings)
        print(json.dumps(_measure(a.size, a.work, m, beam, fmt, graph_from, efs, a.queries, a.data, a.seed,
                                  a.ram_buffer_mb, a.threads, a.keep,
                                  int(a.merge_workers) if a.merge_workers else None)))
        return
    results = run_graph_bench(a.size, _settings(a.settings), work=a.work, efs=efs,
                              java_homes=[h for h in a.java.split(",") if h], n_queries=a.queries, data=a.data,
                              seed=a.seed, ram_buffer_mb=a.ram_buffer_mb, threads=a.threads,
                              merge_workers=[int(w) for w in a.merge_workers.split(",") if w] or [None], keep=a.keep,
                              progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
