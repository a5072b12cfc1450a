"""Where the int8 query time goes (lucerag.bench.gemm): the GEMM-only floor graph of the real int8 model
computes that model's GEMMs with its own weights, and the int8 GEMM variants compute the same product."""

from __future__ import annotations

import numpy as np
import pytest

from lucerag.bench.gemm import _session, floor_vs_encoder, gemm_floor_model, gemm_variants, run_gemm_variants


@pytest.fixture(scope="module")
def int8_dir():
    from lucerag.models import load_encoder

    enc = load_encoder(None, threads=1, precision="int8", selfcheck=False)
    assert enc.manifest.precision == "int8"
    return enc.model_dir


def test_floor_graph_runs_every_int8_gemm_with_the_models_weights(int8_dir):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(int8_dir / "model.onnx"))
    gemms = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
    floor = gemm_floor_model(model)
    assert len(gemms) == 24 and len(floor.graph.output) == 24
    assert {n.op_type for n in floor.graph.node} == {"Shape", "ReduceProd", "Concat", "Expand", "MatMulIntegerToFloat"}
    session = ort.InferenceSession(floor.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 2054, 2003, 1037, 3231, 102]], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    outs = session.run(None, {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}})
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node, y in zip(gemms, outs):
        w = inits[node.input[1]].astype(np.int64)
        zero = inits[node.input[5]].astype(np.int64) if len(node.input) > 5 and node.input[5] else 0
        a_scale = float(inits[node.input[2]]) if node.input[2] in inits else 1.0
        want = 7 * (w - zero).sum(0) * inits[node.input[3]] * a_scale  # every input value is 7, zero point 0
        assert y.shape == (ids.size, w.shape[1])
        np.testing.assert_allclose(y, np.broadcast_to(want, y.shape), rtol=1e-5, atol=1e-3)


def test_floor_graph_rejects_a_graph_without_int8_gemms():
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="MatMulIntegerToFloat"):
        gemm_floor_model(helper.make_model(g))


def test_floor_against_the_encoder_is_timed_query_by_query(int8_dir):
    r = floor_vs_encoder(int8_dir, ["what is hybrid search", "ok", "lucene hnsw graph"] * 4)
    assert r["gemms"] == 24 and r["int8_p50_ms"] > 0 and r["gemm_floor_p50_ms"] > 0
    assert r["rest_p50_ms"] == pytest.approx(r["int8_p50_ms"] - r["gemm_floor_p50_ms"], abs=2e-3)
    assert r["tokens_p50"] >= 3


def test_int8_gemm_variants_compute_the_same_product():
    k, n, rows = 64, 48, 3
    rng = np.random.default_rng(5)
    xu = rng.integers(0, 256, (rows, k)).astype(np.uint8)
    outs = {}
    variants = gemm_variants(k, n, block=32)
    for name, (nodes, inputs, inits, prepack, kind) in variants.items():
        used = {i for nd in nodes for i in nd.input}
        session = _session(nodes, {x: (t, (rows, d)) for x, (t, d) in inputs.items()},
                           {a: b for a, b in inits.items() if a in used}, prepack=prepack)
        x = xu if kind == "u8" else xu.astype(np.float32)
        outs[name] = session.run(None, {"x": x})[0].astype(np.float64)
    wq = variants["MatMulInteger u8 x s8 (int32 out, no scaling)"][2]["w"].astype(np.int64)
    ws = variants["MatMulInteger u8 x s8 (int32 out, no scaling)"][2]["ws"].astype(np.float64)
    exact = xu.astype(np.int64) @ wq  # the integer product every int8 kernel must give
    np.testing.assert_array_equal(outs.pop("MatMulInteger u8 x s8 (int32 out, no scaling)"), exact)
    for name, y in outs.items():
        if "MatMulNBits" in name:  # blockwise weights and int8 activations: approximate by design
            want = (exact * ws).ravel()
            assert y.ravel() @ want / np.linalg.norm(y) / np.linalg.norm(want) >= 0.98, name
        else:
            np.testing.assert_allclose(y, exact * ws, rtol=1e-5, atol=1e-4, err_msg=name)
    r = run_gemm_variants(rows=2, shapes=((64, 48), (32, 64)), layers=2, calls=3, block=32)
    assert set(r["variants"]) == set(variants)
    assert all(v["per_query_ms"] > 0 and set(v["us"]) == {"64x48", "32x64"} for v in r["variants"].values())
