"""The int8 encoder is portable: the same vectors on every CPU and in every batch, checked before use.

Every test prints the CPU's int8 kernel family (lucerag.models.cpu.int8_isa) so that a run's log says
which ISA its numbers came from. Bounds are the documented ones (docs/encoder.md), not this CPU's.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from lucerag.models import load_encoder, selfcheck
from lucerag.models.cpu import int8_isa, saturating_int8
from lucerag.models.manifest import DEFAULT_PASSAGE_PRECISION, DEFAULT_QUERY_PRECISION
from lucerag.models.probe import PROBE_TEXTS

from conftest import isa, mini_documents

ISA = isa()


def _by_precision(precision, fp32, int8):
    return {"fp32": fp32, "int8": int8}[precision]


def test_probe_set_is_fixed_and_mixed():
    assert len(PROBE_TEXTS) == 64 and len(set(PROBE_TEXTS)) == 64
    assert min(map(len, PROBE_TEXTS)) <= 2 and max(map(len, PROBE_TEXTS)) >= 600


def test_int8_matches_fp32_on_the_probe_texts(fp32, int8):
    """The default query precision against fp32, each text alone, on whatever CPU runs the test."""
    cos_min, cos_mean = selfcheck.measure(fp32, int8)
    print(f"\n[{ISA}] int8 vs fp32 over {len(PROBE_TEXTS)} texts: min cosine {cos_min:.4f}, mean {cos_mean:.4f}")
    assert cos_min >= selfcheck.MIN_COSINE == 0.99, ISA
    assert cos_mean < 0.99999  # really a quantised graph


def test_int8_weights_fit_every_kernel(int8):
    """7-bit weights (|w| <= 64): a pair of u8 x s8 products (2 x 255 x 64 = 32640) fits the 16-bit lane of
    the AVX2 and AVX-512 kernels, so the integer products are exact on every x86-64 CPU."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8.model_dir / "model.onnx"))
    quantised = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8
                 and len(t.dims) == 2]
    assert len(quantised) >= 6 * 3  # every MatMul of the 6 layers
    for w in quantised:
        assert int(np.abs(w.astype(np.int16)).max()) <= 64
    print(f"\n[{ISA}] saturating u8 x s8 kernel on this CPU: {saturating_int8()}")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_passage_vector_does_not_depend_on_its_batch(precision, fp32, int8):
    enc = _by_precision(precision, fp32, int8)
    texts = list(PROBE_TEXTS)
    alone = np.stack([enc.encode_passages([t])[0] for t in texts])
    worst = 1.0
    for bs in (7, 32, 64):
        got = enc.encode_passages(texts, batch_size=bs)
        worst = min(worst, float((got * alone).sum(1).min()))
    # other batchmates (a long filler first) and another order
    other = enc.encode_passages(["filler " * 300] + texts[::-1], batch_size=16)[1:][::-1]
    worst = min(worst, float((other * alone).sum(1).min()))
    print(f"\n[{ISA}] {precision}: min cosine alone vs batched (7/32/64, reordered) {worst:.6f}")
    assert worst >= 0.9999


def test_default_precisions_are_batch_independent(fp32, int8):
    """Both defaults batch their inputs (no one-text-per-call fallback): recipe 4 int8 is row-independent."""
    for precision in {DEFAULT_PASSAGE_PRECISION, DEFAULT_QUERY_PRECISION}:
        enc = _by_precision(precision, fp32, int8)
        assert enc.batch_independent_rows and enc.manifest.batch_independent is not False


def test_selfcheck_verdict_is_cached(fp32, int8, tmp_path, monkeypatch):
    monkeypatch.setattr(selfcheck, "cache_dir", lambda: tmp_path)
    verdict = selfcheck.check(fp32.model_dir, int8.model_dir)
    files = list((tmp_path / "selfcheck").glob("*.json"))
    assert len(files) == 1 and verdict.passed == (verdict.cosine_min >= 0.99)
    assert verdict.isa == int8_isa() and verdict.texts == 64
    saved = json.loads(files[0].read_text())
    assert saved["cosine_min"] == verdict.cosine_min
    saved["cosine_min"] = 0.5  # the next check reads the file instead of measuring
    files[0].write_text(json.dumps(saved))
    assert selfcheck.check(fp32.model_dir, int8.model_dir).cosine_min == 0.5
    assert selfcheck.cached_verdicts()[0].cosine_min == 0.5


def test_failed_selfcheck_falls_back_to_fp32_with_one_warning(fp32, tmp_path, monkeypatch, caplog):
    """A bound no int8 graph can meet makes the real check fail: fp32 is loaded, and said so once."""
    monkeypatch.setattr(selfcheck, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(selfcheck, "MIN_COSINE", 0.999999)
    caplog.set_level(logging.WARNING, logger="lucerag.models")
    first = load_encoder(fp32.model_dir, threads=1, precision="int8")
    second = load_encoder(fp32.model_dir, threads=1, precision="int8")
    assert first.manifest.precision == second.manifest.precision == "fp32"
    lines = [r.getMessage() for r in caplog.records if r.name == "lucerag.models"]
    assert len(lines) == 1, lines
    assert int8_isa() in lines[0] and "min cosine to fp32 0.9" in lines[0] and "using fp32" in lines[0]


def test_index_manifest_records_precisions(int8, fp32, tmp_path):
    from lucerag.index.manifest import IndexManifest
    from lucerag.ingest.pipeline import build_index

    docs = mini_documents()
    build_index(docs[:10], tmp_path / "ix", encoder=int8, progress=False)
    m = IndexManifest.read(tmp_path / "ix")
    assert (m.passage_precision, m.query_precision) == ("int8", DEFAULT_QUERY_PRECISION)
    build_index(docs[10:], tmp_path / "ix", encoder=fp32, mode="append", progress=False)
    assert IndexManifest.read(tmp_path / "ix").passage_precision == "fp32+int8"

    out = subprocess.run([sys.executable, "-m", "lucerag", "info", "--index", str(tmp_path / "ix"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["index"]["passage_precision"] == "fp32+int8"
    assert info["cpu"]["int8_kernels"] == int8_isa()
    assert info["precision"] == {"passages": DEFAULT_PASSAGE_PRECISION, "queries": DEFAULT_QUERY_PRECISION,
                                 "int8_recipe": int8.manifest.recipe, "selfcheck_bound": 0.99}
    text = subprocess.run([sys.executable, "-m", "lucerag", "info", "--index", str(tmp_path / "ix")],
                          capture_output=True, text=True, timeout=120).stdout
    assert "passages encoded fp32+int8" in text and int8_isa() in text
