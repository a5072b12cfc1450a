"""Filtered hybrid search: latency and recall at filter selectivities of 1%, 10% and 50%.

``lucerag bench filters --data ../shared/data --work DIR [--sizes 5000,50000] [--json]`` builds (once, then reuses)
``<work>/filters-<n>-s<seed>``: the scale corpus of :mod:`lucerag.bench.scale` (the DL19 slice with
its real vectors, then synthetic passages) with one metadata key per passage, ``bucket``, an
integer 0..99 from the SHA-1 of the passage id (uniform, unrelated to the text). The filter
``{"range": {"bucket": {"lt": s}}}`` then keeps about ``s``% of the passages. For each selectivity
and the unfiltered search, over the DL19 queries (repeated ``repeat`` times):

* ``hybrid`` latency (p50/p95, ms, one thread): ``Retriever.search(q, k=10, filter=False, where=...)``
  end to end (encode, filtered BM25 and filtered HNSW, fill-in, fusion, passages with text);
* ``dense_recall@10``: the filtered HNSW top 10 against the exact filtered top 10 (every matching
  passage scored from its stored vector);
* ``hybrid_recall@10``: the filtered hybrid top 10 against the same hybrid search whose dense
  view is exact (so only the HNSW approximation differs).

The machine's load average is recorded before and after (numbers from a busy machine are not
comparable with quiet ones).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from lucerag.bench.baseline import percentiles
from lucerag.bench.query import load_avg

SELECTIVITIES = (1, 10, 50)


def bucket(pid: str) -> int:
    """The passage's bucket 0..99 (SHA-1 of its id: uniform and reproducible)."""
    return int(hashlib.sha1(pid.encode("utf-8")).hexdigest()[:8], 16) % 100


def build_filter_index(size: int, work: Path, seed: int = 7, rebuild: bool = False,
                       slice_dir: Path | None = None) -> tuple[Path, dict]:
    """Write (or reuse) the ``size``-passage corpus with ``bucket`` metadata; returns path and facts."""
    from lucerag.bench.scale import build_corpus
    from lucerag.index.manifest import IndexManifest
    from lucerag.index.writer import IndexWriter
    from lucerag.ingest.vectors import _EncoderInfo

    path = Path(work) / f"filters-{size}-s{seed}"
    facts_file = path.with_name(path.name + ".json")
    if path.is_dir() and facts_file.is_file() and not rebuild:
        return path, json.loads(facts_file.read_text())
    ids, texts, vectors = build_corpus(size, Path(work), seed, slice_dir=slice_dir)
    manifest = IndexManifest.for_encoder(_EncoderInfo(None), filter_bench={"size": size, "seed": seed})
    start = time.perf_counter()
    with IndexWriter(path, manifest=manifest, dim=vectors.shape[1]) as writer:
        for s in range(0, len(ids), 2048):
            chunk = ids[s:s + 2048]
            writer.add_batch(chunk, texts[s:s + 2048], vectors[s:s + 2048],
                             metadata=[{"bucket": bucket(pid)} for pid in chunk])
    facts = {"passages": len(ids), "seconds": round(time.perf_counter() - start, 2)}
    facts_file.write_text(json.dumps(facts))
    return path, facts


class _ExactDense:
    """The dense view with exact (brute-force) search, for the hybrid reference ranking."""

    def __init__(self, dense):
        self.dense, self.index = dense, dense.index

    def search(self, vector, k=100, filter=None):
        return self.dense.exact_search(vector, k, filter)

    def score(self, vector, docnums):
        return self.dense.score(vector, docnums)


def _recall(got: list[str], truth: list[str]) -> float:
    return len(set(got) & set(truth)) / len(truth) if truth else 1.0


def measure(index: Path, queries: list[str], *, k: int = 10, repeat: int = 3,
            selectivities=SELECTIVITIES) -> dict[str, Any]:
    """Latency and recall of filtered search on one index (see the module docstring)."""
    from lucerag.search.retriever import Retriever

    out: dict[str, Any] = {"k": k, "queries": len(queries), "repeat": repeat, "load_before": load_avg()}
    # the HNSW graph, not the exact scan small indexes get by default: its recall is what is measured
    with Retriever.from_index(index, dense={"exact": False}) as r:
        dense, bm25_index = r.dense, r.bm25_index
        assert dense is not None and bm25_index is not None, f"{index} needs both views"
        encoder = r.encoder
        vectors = [encoder.encode_query(q) for q in queries]
        r.search(queries[0], k=k, filter=False)  # warm up (classes, caches)
        dense.exact_search(vectors[0], k)              # every stored vector into the cache
        out["passages"] = bm25_index.size
        rows = []
        for s in (None, *selectivities):
            where = None if s is None else {"range": {"bucket": {"lt": s}}}
            filt = r.filter_query(where, dense.index)
            matching = bm25_index.size if filt is None else len(dense.exact_search(vectors[0], 10**9, filt))
            ms = []
            for _ in range(repeat):
                for q in queries:
                    t = time.perf_counter()
                    r.search(q, k=k, filter=False, where=where)
                    ms.append((time.perf_counter() - t) * 1000)
            dense_recall = [_recall(dense.search(v, k, filt).ids, dense.exact_search(v, k, filt).ids) for v in vectors]
            approx = [r.rank(q, "hybrid", k, where=where).ids for q in queries]
            r.dense = _ExactDense(dense)  # type: ignore[assignment]  # same interface, exact search
            try:
                exact = [r.rank(q, "hybrid", k, where=where).ids for q in queries]
            finally:
                r.dense = dense
            rows.append({"selectivity_pct": s, "matching_passages": matching,
                         "hybrid": percentiles(ms),
                         "dense_recall@10": round(float(np.mean(dense_recall)), 4),
                         "hybrid_recall@10": round(float(np.mean([_recall(a, e) for a, e in zip(approx, exact)])), 4)})
        out["rows"] = rows
    out["load_after"] = load_avg()
    return out


def run_filter_bench(sizes=(5000,), *, work: Path, queries: list[str], seed: int = 7, repeat: int = 3,
                     k: int = 10, slice_dir: Path | None = None) -> dict[str, Any]:
    """:func:`measure` for each corpus size (indexes built once under ``work``)."""
    result: dict[str, Any] = {"seed": seed, "sizes": {}}
    for size in sizes:
        path, facts = build_filter_index(size, work, seed, slice_dir=slice_dir)
        result["sizes"][str(size)] = {"index": str(path), "build": facts,
                                      **measure(path, queries, k=k, repeat=repeat)}
    return result


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table."""
    lines = ["| passages | filter | matching | hybrid p50 ms | p95 ms | dense R@10 | hybrid R@10 |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size, res in result["sizes"].items():
        for row in res["rows"]:
            s = "none" if row["selectivity_pct"] is None else f"{row['selectivity_pct']}%"
            lines.append(f"| {size} | {s} | {row['matching_passages']} | {row['hybrid']['p50_ms']} | "
                         f"{row['hybrid']['p95_ms']} | {row['dense_recall@10']} | {row['hybrid_recall@10']} |")
    return "\n".join(lines)
