"""Benchmarks are commands, not timed tests: a smoke test of `lucerag bench query --json` on the mini
index (both stacks, real processes; the PyTorch baseline only where torch is installed), and the
reproducibility of the scale corpora."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
from conftest import MINI_BEIR, needs_torch

# the baseline stack encodes with PyTorch (lucerag.bench.baseline.TorchEncoder)
HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


@needs_torch  # the baseline stack encodes with PyTorch
def test_bench_query_json_smoke(mini_index, tmp_path):
    """Both stacks where torch is installed; lucerag's alone (--no-baseline) where it is not."""
    out = subprocess.run([sys.executable, "-m", "lucerag", "bench", "query", "--index", str(mini_index),
                          "--queries", str(MINI_BEIR / "queries.jsonl"), "--n-latency", "10", "--n-throughput", "10",
                          "--ingest-sample", "10", "--plot", str(tmp_path / "cdf.png"), "--json"]
                         + ([] if HAS_TORCH else ["--no-baseline"]),
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["hybrid_p50_ms"] > 0 and r["passages"] == 25
    assert set(r["latency_1_thread"]) >= {"encode", "bm25", "hnsw", "hybrid", "hybrid_filter"}
    for p in r["latency_1_thread"].values():
        assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"]
    assert r["throughput"]["qps"] > 0 and r["throughput"]["errors"] == 0
    assert r["hnsw_recall"]["recall"] == 1.0  # 25 vectors: HNSW is exact
    assert r["ingest"]["passages_per_s"] > 0
    assert r["index_bytes"] > 0 and r["peak_rss_mb"] > 0
    assert "25" in r["sizes"]
    if HAS_TORCH:
        assert r["baseline_p50_ms"] > 0 and r["speedup_p50"] > 0
        assert set(r["baseline"]["latency_1_thread"]) == {"encode", "bm25", "dense", "hybrid"}
        assert r["baseline"]["throughput"]["errors"] == 0 and r["baseline"]["ingest"]["passages_per_s"] > 0
        assert r["baseline"]["peak_rss_mb"] > 0
    else:
        assert "baseline" not in r and r["sizes"]["25"]["baseline_p50_ms"] is None
    assert (tmp_path / "cdf.png").stat().st_size > 1000


def test_baseline_stack_ranks_like_lucerag_fusion(encoder):
    """The baseline's hybrid uses lucerag's fusion over exact scores: on the mini corpus its top
    passage for an easy query is the right one."""
    from conftest import mini_documents
    from lucerag.bench.baseline import BaselineStack

    docs = mini_documents()

    class Enc:  # the ONNX encoder stands in for PyTorch here (same model; parity is tested elsewhere)
        def encode_query(self, q):
            return encoder.encode_query(q)

    stack = BaselineStack([d.id for d in docs], [d.text for d in docs],
                          encoder.encode_passages([d.text for d in docs]), Enc())
    top = stack.hybrid("why does a volcano erupt", k=3)
    assert top[0][0] == "p03" and len(top) == 3 and "magma" in top[0][2]


def test_bench_formats_json_smoke(tmp_path):
    """`lucerag bench formats` on a small random corpus: every format reported, recall against exact
    search in range, BBQ rescored and compared with its raw graph search."""
    out = subprocess.run([sys.executable, "-m", "lucerag", "bench", "formats", "--sizes", "300", "--random",
                          "--queries", "10", "--hnsw-m", "8", "--hnsw-beam", "32", "--work", str(tmp_path),
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    entry = r["by_size"]["300"]
    assert entry["corpus"] == "random" and set(entry["formats"]) == {"float", "int8", "bbq"}
    for fmt, row in entry["formats"].items():
        assert 0 < row["recall@10"] <= 1 and 0 < row["R@100"] <= 1 and row["p50_ms"] > 0 and row["index_mb"] > 0
        assert row["rescore"] == (fmt != "float")
    assert entry["formats"]["bbq"]["recall@10"] >= entry["formats"]["bbq"]["without_rescore"]["recall@10"]


def test_synthetic_corpus_is_deterministic_and_unit_length():
    from lucerag.bench.scale import synthesise

    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    texts = [f"Sentence {i} one. Sentence {i} two! Sentence {i} three?" for i in range(50)]
    ids = [str(i) for i in range(50)]
    a = synthesise(ids, texts, base, 30, seed=7)
    b = synthesise(ids, texts, base, 30, seed=7)
    c = synthesise(ids, texts, base, 30, seed=8)
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2]) and a[1] != c[1]
    np.testing.assert_allclose(np.linalg.norm(a[2], axis=1), 1.0, rtol=1e-5)
    # each synthetic passage is made of its sources' sentences; its vector stays near its main source
    for text, vec, src in zip(a[1], a[2], a[3]):
        assert all(f"Sentence {s} " in text for s in src)
        assert float(vec @ base[src[0]]) > 0.5 > float(np.median(base @ vec))


def test_bench_graph_settings_parse_and_refuse_bad_ones():
    """`lucerag bench graph --settings M:beam[:format[:graph_from]]`: defaults fill the missing parts."""
    import pytest

    from lucerag.bench.graph import _settings
    from lucerag.index.hnsw import GRAPH_FROM

    assert _settings("48:400,16:100:int8,32:200:float:0") == [
        (48, 400, "float", GRAPH_FROM), (16, 100, "int8", GRAPH_FROM), (32, 200, "float", 0)]
    with pytest.raises(SystemExit, match="M:beam"):
        _settings("48")
