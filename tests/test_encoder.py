"""OnnxEncoder with the real all-MiniLM-L6-v2: export, parity with PyTorch, shapes, bad input.

The PyTorch side is tests/data/minilm_reference.npz (made once by tests/data/make_minilm_reference.py),
so these tests need no torch; only the bench's PyTorch timing runs when torch is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lucerag.models import ExportDependencyError, ModelManifest, OnnxEncoder, export_model, load_encoder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msmarco-dl19-5k"
REFERENCE = Path(__file__).parent / "data" / "minilm_reference.npz"
HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def _texts(n: int = 220) -> list[str]:
    """MS MARCO queries and passages when ../shared/data is present, else the team's mini corpus
    (tests/data/mini_beir) and generated sentences: fixed texts, unlike docs/ which keeps changing."""
    out: list[str] = []
    if (DATA / "queries.jsonl").is_file():
        with open(DATA / "queries.jsonl", encoding="utf-8") as f:
            out += [json.loads(line)["text"] for line in f][: n // 4]
        with open(DATA / "corpus.jsonl", encoding="utf-8") as f:
            out += [json.loads(line)["text"] for line, _ in zip(f, range(n - len(out)))]
    else:
        mini = Path(__file__).parent / "data" / "mini_beir"
        for name, key in (("queries.jsonl", "text"), ("corpus.jsonl", "text")):
            with open(mini / name, encoding="utf-8") as f:
                out += [json.loads(line)[key] for line in f]
        out += [f"sentence number {i} about hybrid retrieval " * (1 + i % 9) for i in range(n)]
    return out[:n]


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory) -> Path:
    return export_model(None, tmp_path_factory.mktemp("models") / "minilm")


@pytest.fixture(scope="session")
def encoder(minilm_dir) -> OnnxEncoder:
    return OnnxEncoder(minilm_dir, threads=2)


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    """PyTorch BertModel + sentence-transformers pooling (mask mean, then L2) of fixed ``texts``, each
    alone and unpadded, truncated to 256 tokens: from the empty text to one far over 256 tokens."""
    with np.load(REFERENCE) as z:
        return {k: z[k] for k in z.files}


def _ref_texts(reference) -> list[str]:
    return [str(t) for t in reference["texts"]]


@pytest.fixture(scope="session")
def parity_texts() -> list[str]:
    return _texts(220)


def test_manifest_and_tokenizer_file(minilm_dir):
    m = ModelManifest.load(minilm_dir)
    assert (m.dim, m.pooling, m.normalize, m.max_length, m.precision) == (384, "mean", True, 256, "fp32")
    assert len(m.weights_sha256) == 64 and m.opset >= 14
    tok = json.loads((minilm_dir / "tokenizer.json").read_text())
    assert tok["padding"] is None and tok["truncation"] is None
    assert not list(minilm_dir.parent.glob(".minilm.tmp-*"))  # atomic export left no temp folder


def test_shapes_and_unit_norm(encoder):
    q = encoder.encode_query("what is the boiling point of water")
    assert q.shape == (384,) and q.dtype == np.float32
    assert abs(float(np.linalg.norm(q)) - 1) < 1e-5
    p = encoder.encode_passages(["short", "a much longer passage " * 20, "mid length text here"], batch_size=2)
    assert p.shape == (3, 384) and p.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1, atol=1e-5)
    assert encoder.encode_passages([]).shape == (0, 384)
    assert encoder.encode_queries(["a", "b"]).shape == (2, 384)


def test_reference_is_for_this_model(minilm_dir, encoder, reference):
    """The committed PyTorch vectors are of the weights that were exported, tokenised the same way."""
    m = ModelManifest.load(minilm_dir)
    assert str(reference["weights_sha256"]) == m.weights_sha256 and int(reference["max_length"]) == m.max_length
    assert m.query_prefix == m.passage_prefix == ""  # so encode_query(t) is comparable with the reference
    texts = _ref_texts(reference)
    assert reference["embeddings"].shape == (len(texts), 384) and len(texts) >= 20
    assert encoder.token_lengths(texts) == reference["token_lengths"].tolist()


def test_single_unpadded_parity(encoder, reference):
    onnx = np.stack([encoder.encode_query(t) for t in _ref_texts(reference)])
    assert (onnx * reference["embeddings"]).sum(1).min() >= 0.9999


def test_padded_mixed_length_batch_parity(encoder, reference):
    texts, want = _ref_texts(reference), reference["embeddings"]
    lengths = encoder.token_lengths(texts)
    assert max(lengths) >= 3 * min(lengths)  # really mixed lengths, so batches really pad
    for bs in (7, 32):  # length-bucketed batches of 7, and all 20 (2..256 tokens) in one batch
        onnx = encoder.encode_passages(texts, batch_size=bs)
        assert (onnx * want).sum(1).min() >= 0.9999
    # batches of 7 texts of any lengths, each run as one padded batch
    order = np.random.default_rng(0).permutation(len(texts))
    for start in range(0, len(texts), 7):
        idx = order[start : start + 7]
        onnx = encoder.encode_passages([texts[i] for i in idx], batch_size=7)
        assert (onnx * want[idx]).sum(1).min() >= 0.9999


@pytest.fixture(scope="session")
def single_fp32(encoder, parity_texts) -> np.ndarray:
    """fp32 ONNX, one unpadded text at a time: as close to PyTorch as the parity tests above show."""
    return np.stack([encoder.encode_query(t) for t in parity_texts])


def test_padded_batches_match_single_texts(encoder, parity_texts, single_fp32):
    """Over many more texts (MS MARCO, or the mini corpus), padding changes nothing."""
    assert len(parity_texts) >= 200
    lengths = encoder.token_lengths(parity_texts)
    assert max(lengths) >= 3 * min(lengths)
    for bs in (7, 32):
        onnx = encoder.encode_passages(parity_texts, batch_size=bs)
        assert (onnx * single_fp32).sum(1).min() >= 0.9999


def test_batch_equals_single(encoder):
    texts = ["tiny", "a medium sized sentence about lucene", "long " * 100]
    batch = encoder.encode_queries(texts)
    single = np.stack([encoder.encode_query(t) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_over_long_input_is_truncated(encoder, reference):
    texts = _ref_texts(reference)
    cut = int(np.argmax(reference["token_lengths"]))  # the reference text that was cut at 256 tokens
    assert reference["token_lengths"][cut] == 256 and len(texts[cut]) > 2000
    long_text = texts[cut] * 50  # ~160 KB, far over 256 tokens
    assert len(long_text) > 100_000
    assert max(encoder.token_lengths([long_text])) == 256
    # truncated, it is the reference's text cut at 256 tokens
    assert encoder.tokenizer.encode(long_text).ids == encoder.tokenizer.encode(texts[cut]).ids
    q = encoder.encode_query(long_text)
    p = encoder.encode_passages([long_text, "short"])
    assert float(q @ reference["embeddings"][cut]) >= 0.9999
    np.testing.assert_allclose(p[0], q, atol=1e-5)


def test_empty_string_encodes_like_reference(encoder, reference):
    q = encoder.encode_query("")
    assert np.isfinite(q).all() and abs(float(np.linalg.norm(q)) - 1) < 1e-5
    assert float(q @ reference["embeddings"][_ref_texts(reference).index("")]) >= 0.9999
    assert encoder.encode_passages(["", "x"]).shape == (2, 384)


def test_bad_input(encoder):
    clean = encoder.encode_query("hello world")
    assert float(encoder.encode_query(b"hello world") @ clean) > 0.9999
    assert np.isfinite(encoder.encode_query(b"caf\xe9 \xff\xfe bytes")).all()  # not UTF-8: replaced
    assert np.isfinite(encoder.encode_query("lone surrogate \udcff here")).all()
    ctrl = encoder.encode_query("hello\x00\x07\x1b world\r\n\t")
    assert float(ctrl @ clean) > 0.99  # the BERT normaliser drops control characters
    with pytest.raises(TypeError):
        encoder.encode_query(123)
    with pytest.raises(TypeError):
        encoder.encode_passages("not a list")


def test_shared_session_across_threads(encoder):
    texts = _texts(24)
    expected = np.stack([encoder.encode_query(t) for t in texts])
    with ThreadPoolExecutor(4) as pool:
        got = np.stack(list(pool.map(encoder.encode_query, texts)))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_load_encoder_uses_cache(minilm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LUCERAG_CACHE", str(tmp_path))
    from lucerag.models import default_model_dir

    assert default_model_dir() == tmp_path / "models" / "all-MiniLM-L6-v2"
    shutil.copytree(minilm_dir, default_model_dir())
    enc = load_encoder(threads=1)
    assert enc.model_dir == default_model_dir() and enc.dim == 384
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "nothing-here")


def test_load_encoder_without_torch(tmp_path, monkeypatch):
    """The default model is built without torch; the PyTorch route says what to install."""
    monkeypatch.setenv("LUCERAG_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ExportDependencyError, match=r"lucerag\[export\]"):
        export_model(None, tmp_path / "via-torch", backend="torch")
    assert not (tmp_path / "via-torch").exists()
    enc = load_encoder(threads=1)
    assert enc.dim == 384 and (tmp_path / "models" / "all-MiniLM-L6-v2" / "model.onnx").is_file()


def test_export_refuses_to_overwrite(minilm_dir):
    with pytest.raises(FileExistsError):
        export_model(None, minilm_dir)


@pytest.fixture(scope="session")
def minilm_int8_dir(minilm_dir) -> Path:
    from lucerag.models import quantize_model

    return quantize_model(minilm_dir, minilm_dir.with_name("minilm-int8"))


def test_int8_parity(minilm_int8_dir, encoder, reference, parity_texts, single_fp32):
    m = ModelManifest.load(minilm_int8_dir)
    assert m.precision == "int8" and m.dim == 384
    int8 = OnnxEncoder(minilm_int8_dir, threads=2)
    # against PyTorch (the committed reference), and over many more texts against fp32 ONNX (which
    # matches PyTorch to >= 0.9999, see the parity tests above)
    for texts, want in ((_ref_texts(reference), reference["embeddings"]), (parity_texts, single_fp32)):
        cos = (int8.encode_passages(texts) * want).sum(1)
        assert cos.min() >= 0.99 and cos.mean() >= 0.995, (len(texts), float(cos.min()), float(cos.mean()))
        assert cos.mean() < 0.99999  # it really is a different (quantised) graph
    assert (minilm_int8_dir / "model.onnx").stat().st_size < 0.8 * (encoder.model_dir / "model.onnx").stat().st_size


def test_torch_never_imported_on_query_path(minilm_dir):
    code = (
        "import sys; from lucerag.models import load_encoder, OnnxEncoder; import lucerag.bench.encoder\n"
        f"enc = load_encoder({str(minilm_dir)!r}, threads=1)\n"
        "enc.encode_query('what is hybrid search'); enc.encode_passages(['a passage', 'another one here'])\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad; print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_bench_reports_parity_and_speed(minilm_dir, minilm_int8_dir):
    """With the PyTorch reference where torch is installed, without it elsewhere (one run: ~40 s)."""
    from lucerag.bench.encoder import run_encoder_bench
    from lucerag.models.cpu import int8_isa

    torch_reference = HAS_TORCH
    r = run_encoder_bench(minilm_dir, minilm_int8_dir, n_queries=10, n_passages=16, n_parity=12, rounds=2,
                          torch_reference=torch_reference, baseline_int8_dir=minilm_int8_dir, profile=True,
                          verbose=False)
    json.dumps(r)  # JSON-able
    for key in ("onnx_p50_ms", "onnx_p99_ms", "int8_p50_ms", "passages_per_s",
                "fp32_passages_per_s", "int8_passages_per_s"):
        assert r[key] > 0, key
    assert r["onnx_p50_ms"] <= r["onnx_p99_ms"]
    # the default passage encoder's rate is the median of its interleaved passes
    rounds = r["passages_per_s_rounds"][r["passage_precision"]]
    assert len(rounds) == 2 and abs(r["passages_per_s"] - float(np.median(rounds))) <= 0.11
    assert r["n_queries"] == 10 and r["int8_kernels"] == int8_isa()
    # no torch needed: int8 vs fp32 on the probe texts, and each probe text alone vs in batches
    assert r["probe_cos_min_int8_vs_fp32"] >= 0.99
    assert r["batch_independence_fp32"] >= 0.9999 and r["batch_independence_int8"] >= 0.9999
    # the query path the retriever uses by default ([encoder] precision int8, 1 thread), and a baseline
    # int8 folder timed in the same loop (here the same folder, so the same probe parity)
    from lucerag.config import EncoderConfig

    assert r["query_path"]["precision"] == EncoderConfig().precision == "int8"
    assert r["query_path"]["retriever_default_threads"] == EncoderConfig().threads
    assert r["query_p50_ms"] == r["int8_p50_ms"] and r["baseline_int8_p50_ms"] > 0
    assert 0 < r["int8_cpu_p50_ms"] and 0 < r["baseline_int8_cpu_p50_ms"]  # 1 query thread: its CPU time too
    assert r["probe_cos_min_baseline_int8_vs_fp32"] == r["probe_cos_min_int8_vs_fp32"]
    # the per-op profile of one query: every MatMul of the 6 layers runs as MatMulIntegerToFloat
    prof = r["profile_int8"]
    assert prof["ops"]["MatMulIntegerToFloat"]["nodes"] == 24 and prof["tokenize_us"] > 0
    assert 0 < prof["kernels_ms"] and prof["nodes"] == sum(v["nodes"] for v in prof["ops"].values())
    if torch_reference:
        assert r["torch_p50_ms"] > 0 and r["speedup_vs_torch"] > 0 and r["int8_speedup_vs_torch"] > 0
        assert r["cos_min_fp32"] >= 0.9999 and r["cos_min_int8"] >= 0.98
        assert r["n_parity"] == 12
    else:  # the PyTorch columns are there, empty
        assert r["torch_p50_ms"] is None and r["cos_min_fp32"] is None and r["cos_min_int8"] is None
        assert not {"n_parity", "speedup_vs_torch", "int8_speedup_vs_torch", "torch_p99_ms"} & set(r)
