"""Vectors formats side by side: float HNSW, int8 HNSW, 1-bit (BBQ) HNSW with exact rescoring.

For each corpus size and format the same passages and vectors are written with
:class:`lucerag.index.writer.IndexWriter` and searched with :class:`lucerag.search.searchers.DenseSearcher`
(Lucene's KnnFloatVectorQuery through the bridge). Measured against exact search (numpy, all
vectors): recall@10 and R@100 (share of the exact top 10 / top 100 found in the returned top 10 /
top 100), p50 search latency at k=100, index size on disk and build rate.

Corpus: :func:`lucerag.bench.scale.build_corpus` (the MS MARCO DL19 slice with real vectors, plus
synthetic passages with vectors synthesised near real ones) when the shared slice and an encoder
are available; otherwise seeded random unit vectors (``corpus: "random"`` in the result; uniform
random vectors are a harder and less realistic case for HNSW than text embeddings).
Queries: the slice's queries encoded by the default encoder, else seeded random unit vectors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lucerag.bench.query import dir_size
from lucerag.index.hnsw import HNSW_BEAM, HNSW_M, VECTOR_FORMATS

DEFAULT_SIZES = (5_000, 50_000, 200_000)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def corpus_and_queries(size: int, work: Path, seed: int, n_queries: int, use_random: bool,
                       dim: int = 384) -> tuple[str, list[str], list[str], np.ndarray, np.ndarray]:
    """(kind, ids, texts, vectors, query vectors) for one size."""
    if not use_random:
        from lucerag.bench.data import DL19_SLICE, data_path
        from lucerag.bench.scale import build_corpus
        from lucerag.models import load_encoder

        encoder = load_encoder(None)
        ids, texts, vectors = build_corpus(size, work, seed=seed)
        queries = [json.loads(line)["text"] for line in (data_path(DL19_SLICE) / "queries.jsonl").read_text().splitlines()]
        qvecs = np.stack([encoder.encode_query(q) for q in queries[:n_queries]])
        return "dl19-slice+synthetic", ids, texts, np.asarray(vectors, np.float32), qvecs
    rng = np.random.default_rng(seed)
    vectors = _unit(rng.standard_normal((size, dim)))
    qvecs = _unit(rng.standard_normal((n_queries, dim)))
    return "random", [f"r{i}" for i in range(size)], ["passage"] * size, vectors, qvecs


def _exact(vectors: np.ndarray, qvecs: np.ndarray, k: int) -> np.ndarray:
    scores = qvecs @ vectors.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)


def measure(index_path: Path, ids: list[str], vectors: np.ndarray, qvecs: np.ndarray, exact: np.ndarray,
            ef_search: int | None, rescore: bool | None, repeats: int = 3) -> dict:
    from lucerag.index.reader import LuceneIndex
    from lucerag.search.searchers import DenseSearcher

    index = LuceneIndex(index_path)
    searcher = DenseSearcher(index, ef_search=ef_search, rescore=rescore, exact=False)  # the graph of each format
    for _ in range(2):  # warm the JIT (the first index of a run would pay for it) and the id cache
        for q in qvecs:
            searcher.search(q, 100)
    r10: list[float] = []
    r100: list[float] = []
    times: list[float] = []
    for i, q in enumerate(qvecs):
        best = float("inf")
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            hits = searcher.search(q, 100)
            best = min(best, time.perf_counter() - t)
        times.append(best)
        got = hits.ids
        truth = [ids[j] for j in exact[i]]
        r10.append(len(set(got[:10]) & set(truth[:10])) / 10)
        r100.append(len(set(got) & set(truth)) / 100)
    out = {"ef_search": searcher.ef_search, "rescore": searcher.rescore,
           "recall@10": round(float(np.mean(r10)), 4), "R@100": round(float(np.mean(r100)), 4),
           "p50_ms": round(float(np.median(times)) * 1000, 3), "p90_ms": round(float(np.quantile(times, 0.9)) * 1000, 3)}
    index.close()
    return out


def run_formats_bench(sizes=DEFAULT_SIZES, *, work: Path, formats=VECTOR_FORMATS, seed: int = 7,
                      n_queries: int = 200, use_random: bool = False, ef_search: int | None = None,
                      hnsw_m: int = HNSW_M, hnsw_beam: int = HNSW_BEAM, rebuild: bool = False,
                      progress: Callable[[str], None] = lambda m: None) -> dict:
    from lucerag.index.manifest import IndexManifest
    from lucerag.index.writer import IndexWriter

    work = Path(work)
    result: dict = {"hnsw_m": hnsw_m, "hnsw_beam": hnsw_beam, "k": 100, "by_size": {}}
    for size in sizes:
        kind, ids, texts, vectors, qvecs = corpus_and_queries(size, work, seed, n_queries, use_random)
        exact = _exact(vectors, qvecs, 100)
        entry: dict[str, Any] = {"corpus": kind, "queries": len(qvecs), "dim": int(vectors.shape[1]), "formats": {}}
        for fmt in formats:
            path = work / f"formats-{kind}-{size}-s{seed}-m{hnsw_m}-b{hnsw_beam}-{fmt}"
            facts_file = path.with_name(path.name + ".json")
            if rebuild or not (path.is_dir() and facts_file.is_file()):
                progress(f"{size} {fmt}: building")
                t = time.perf_counter()
                manifest = IndexManifest(dim=int(vectors.shape[1]), settings={"bench": "formats", "seed": seed})
                with IndexWriter(path, manifest=manifest, dim=int(vectors.shape[1]), vector_format=fmt,
                                 hnsw_m=hnsw_m, hnsw_beam=hnsw_beam, graph_from=0) as writer:
                    for s in range(0, size, 2048):
                        writer.add_batch(ids[s:s + 2048], texts[s:s + 2048], vectors[s:s + 2048])
                seconds = time.perf_counter() - t
                facts_file.write_text(json.dumps({"build_seconds": round(seconds, 2),
                                                  "passages_per_s": round(size / seconds, 1)}))
            facts = json.loads(facts_file.read_text())
            row = {**facts, "index_mb": round(dir_size(path) / 2**20, 2)}
            row.update(measure(path, ids, vectors, qvecs, exact, ef_search, None))
            if fmt == "bbq":  # the same graph search without rescoring, for comparison
                raw = measure(path, ids, vectors, qvecs, exact, ef_search, False)
                row["without_rescore"] = {k: raw[k] for k in ("recall@10", "R@100", "p50_ms")}
            progress(f"{size} {fmt}: {row}")
            entry["formats"][fmt] = row
        result["by_size"][str(size)] = entry
    return result


def table(result: dict) -> str:
    """The result as a Markdown table."""
    lines = ["| passages | format | recall@10 | R@100 | p50 ms (k=100) | index MB | build passages/s |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for size, entry in result["by_size"].items():
        for fmt, row in entry["formats"].items():
            label = {"float": "float HNSW", "int8": "int8 HNSW", "bbq": "BBQ HNSW + exact rescore"}[fmt]
            lines.append(f"| {int(size):,} | {label} | {row['recall@10']:.3f} | {row['R@100']:.3f} | "
                         f"{row['p50_ms']:.2f} | {row['index_mb']:.1f} | {row['passages_per_s']:.0f} |")
            if "without_rescore" in row:
                raw = row["without_rescore"]
                lines.append(f"| {int(size):,} | BBQ HNSW, no rescore | {raw['recall@10']:.3f} | {raw['R@100']:.3f} | "
                             f"{raw['p50_ms']:.2f} | (same) | (same) |")
    return "\n".join(lines)
