"""The symmetric per-token int8 form (recipe 6, `quantize_model(..., activations="symmetric")`, not the
default): 7 nodes per MatMul, exact integer products on every x86-64 kernel, batch-independent vectors and
the self-check bound against fp32. The real default model; bounds are the documented ones."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from lucerag.models.probe import PROBE_TEXTS
from lucerag.models.selfcheck import MIN_COSINE

from conftest import isa

ISA = isa()


def _dqmm_model(k: int, n: int, rng, gelu: bool = False):
    """x -> [Gelu] -> DynamicQuantizeMatMul with 7-bit weights (the extreme |w| = 64 in two rows) and a bias."""
    from onnx import TensorProto, helper, numpy_helper

    wq = rng.integers(-64, 65, size=(k, n)).astype(np.int8)
    wq[:2] = 64
    ws = rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    nodes = [helper.make_node("Gelu", ["x"], ["h"], domain="com.microsoft")] if gelu else []
    nodes.append(helper.make_node("DynamicQuantizeMatMul", ["h" if gelu else "x", "wq", "ws", "wz", "b"], ["y"],
                                  domain="com.microsoft"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(ws, "ws"),
                               numpy_helper.from_array(np.zeros(n, np.int8), "wz"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model, wq, ws, bias


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_symmetric_matmul_is_exact_integer_arithmetic():
    """Against numpy's exact integer product of the same quantised rows: extreme activations meet the extreme
    weights (equality means the kernel did not saturate); a zero row and a constant row come out exact."""
    from lucerag.models.quantize import per_token_symmetric

    rng = np.random.default_rng(11)
    k, n = 64, 24
    model, wq, ws, bias = _dqmm_model(k, n, rng)
    assert per_token_symmetric(model) == 1
    ops = collections.Counter(m.op_type for m in model.graph.node)
    assert sum(ops.values()) == 7 and ops["MatMulIntegerToFloat"] == 1 and not {"Gemm", "ReduceMin", "Reshape"} & set(ops)
    x = (rng.normal(size=(6, k)) * np.array([[1], [10], [0.01], [3], [1], [1]])).astype(np.float32)
    x[3], x[4] = 0.0, -2.5  # a zero row (0 / 0 in the graph, times m = 0) and a constant row
    x[5, :2] = np.abs(x[5]).max() + 5  # the row's largest values meet the extreme weights
    got = _run(model, x)
    m = np.abs(x).max(1, keepdims=True)
    with np.errstate(invalid="ignore"):
        unit = np.nan_to_num((x / m).astype(np.float32))
    q = np.clip(np.rint(unit / np.float32(1 / 127)) + 128, 0, 255).astype(np.int64)
    assert q.max() == 255 and q.min() == 1
    want = m * ((q - 128) @ wq.astype(np.int64)) * ws / np.float32(127) + bias
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), ISA
    w = wq.astype(np.float64) * ws
    assert np.abs(got[3] - bias).max() <= 1e-6  # zero row: exactly the bias
    assert np.abs(got[4] - (-2.5 * w.sum(0) + bias)).max() <= 1e-4  # constant row: x W + b


def test_one_sided_range_after_gelu_is_exact_and_uses_all_256_levels():
    """GELU output >= -0.17: u = x + 0.17 >= 0 is quantised over [0, max u] (0..255) and the shift is folded
    into the bias; the result is the exact integer product of those rows."""
    from lucerag.models.quantize import ONE_SIDED_SHIFT, per_token_symmetric

    rng = np.random.default_rng(12)
    k, n = 48, 16
    model, wq, ws, bias = _dqmm_model(k, n, rng, gelu=True)
    assert per_token_symmetric(model) == 1
    assert "Abs" not in {m.op_type for m in model.graph.node}  # the one-sided form, not the symmetric one
    x = (rng.normal(size=(5, k)) * 3).astype(np.float32)
    x[0, :2] = -0.7518  # GELU's minimum (-0.16997) in the extreme-weight rows
    got = _run(model, x)
    from math import erf

    h = (x * 0.5 * (1 + np.vectorize(erf)(x / np.sqrt(2)))).astype(np.float32)
    assert h.min() >= -ONE_SIDED_SHIFT["Gelu"]
    u = h + np.float32(ONE_SIDED_SHIFT["Gelu"])
    m = u.max(1, keepdims=True)
    q = np.clip(np.rint((u / m).astype(np.float32) / np.float32(1 / 255)), 0, 255).astype(np.int64)
    assert q.max() == 255 and q.min() == 0
    w = wq.astype(np.float64) * ws
    want = m * (q @ wq.astype(np.int64)) * ws / np.float32(255) - ONE_SIDED_SHIFT["Gelu"] * w.sum(0) + bias
    assert np.abs(got - want).max() <= 2e-4 * np.abs(want).max(), ISA
    assert np.abs(got - (h @ w + bias)).max() <= 0.02 * np.abs(h @ w + bias).max()  # close to the fp32 product


@pytest.fixture(scope="module")
def symmetric(fp32, tmp_path_factory):
    from lucerag.models.encoder import OnnxEncoder
    from lucerag.models.export import quantize_model

    out = quantize_model(fp32.model_dir, tmp_path_factory.mktemp("sym") / "int8-symmetric", activations="symmetric")
    return OnnxEncoder(out, threads=1)


def test_symmetric_graph_every_matmul_int8_in_seven_nodes(symmetric):
    import onnx
    from onnx import numpy_helper

    assert symmetric.manifest.recipe == 6 and symmetric.manifest.batch_independent
    model = onnx.load(str(symmetric.model_dir / "model.onnx"))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert ops["MatMulIntegerToFloat"] == 24 and ops["QuantizeLinear"] == 24 and ops["MultiHeadAttention"] == 6
    assert not {"MatMul", "Attention", "DynamicQuantizeMatMul", "Gemm", "ReduceMin"} & set(ops)
    assert ops["Abs"] == 18  # QKV, attention output, FFN up: symmetric; FFN down (after GELU): one-sided
    assert len(model.graph.node) <= 350 - 24 * 4  # recipe 5: 350 nodes, 11 per MatMul; here 7
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "MatMulIntegerToFloat":
            quant = producer[node.input[0]]
            assert quant.op_type == "QuantizeLinear"
            assert numpy_helper.to_array(inits[quant.input[2]]).dtype == np.uint8  # u8 activations
            w = numpy_helper.to_array(inits[node.input[1]])
            assert w.dtype == np.int8 and int(np.abs(w.astype(np.int16)).max()) <= 64


def test_symmetric_meets_the_selfcheck_bound_and_is_batch_independent(fp32, symmetric):
    texts = list(PROBE_TEXTS)
    want = np.stack([fp32.encode_query(t) for t in texts])
    alone = np.stack([symmetric.encode_query(t) for t in texts])
    cos = (alone * want).sum(1)
    print(f"\n[{ISA}] symmetric int8 vs fp32: min {cos.min():.5f} mean {cos.mean():.5f}")
    assert cos.min() >= MIN_COSINE and cos.mean() >= 0.997
    for bs in (7, 64):  # padded, mixed lengths: a text's vector does not depend on its batchmates
        assert (symmetric.encode_passages(texts, batch_size=bs) * alone).sum(1).min() >= 0.99999


def test_unknown_activation_form_is_refused_and_leaves_no_folder(fp32, tmp_path):
    from lucerag.models.export import quantize_model

    with pytest.raises(ValueError, match="activations must be 'asymmetric' or 'symmetric'"):
        quantize_model(fp32.model_dir, tmp_path / "q", activations="per-tensor")  # type: ignore[arg-type]
    assert not (tmp_path / "q").exists()
