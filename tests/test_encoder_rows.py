"""Recipe 5 of the int8 encoder: the QKV projection in int8 (Attention unfused into MatMul +
MultiHeadAttention), hidden states as rows, compact per-token quantisation (lucerag.models.rows,
lucerag.models.quantize). The real default model; bounds are the documented ones, not this CPU's.
"""

from __future__ import annotations

import collections
import shutil

import numpy as np

from lucerag.models.probe import PROBE_TEXTS

from conftest import isa

ISA = isa()


def test_the_default_int8_encoder_is_recipe_5_or_later(int8):
    assert int8.manifest.precision == "int8" and int8.manifest.recipe >= 5


def _ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


def test_unfused_rows_graph_computes_what_the_fused_one_does(fp32, tmp_path):
    """unfuse_attention + as_rows on the fp32 graph: same vectors, alone and in padded batches."""
    import onnx

    from lucerag.models.encoder import OnnxEncoder
    from lucerag.models.rows import as_rows, unfuse_attention

    model = onnx.load(str(fp32.model_dir / "model.onnx"))
    assert unfuse_attention(model) == 6
    assert as_rows(model) >= 6 * 8  # every MatMul, Add, LayerNormalization and Gelu of the 6 layers
    ops = _ops(model)
    assert ops["MultiHeadAttention"] == 6 and ops["MatMul"] == 6 * 4 and "Attention" not in ops
    assert ops["Reshape"] == 2 * 6 + 2  # per layer: the QKV view and the attention output; embeddings, pooling
    out = tmp_path / "rows"
    shutil.copytree(fp32.model_dir, out)
    onnx.save(model, str(out / "model.onnx"))
    rows = OnnxEncoder(out, threads=1)
    texts = list(PROBE_TEXTS)
    want = fp32.encode_passages(texts)
    assert (np.stack([rows.encode_query(t) for t in texts]) * want).sum(1).min() >= 0.99999
    for bs in (5, 64):  # padded, mixed lengths: the key padding mask reaches MultiHeadAttention
        assert (rows.encode_passages(texts, batch_size=bs) * want).sum(1).min() >= 0.99999


def test_every_matmul_is_int8_on_per_token_uint8_input(int8):
    """No fp32 MatMul or fused Attention is left; each MatMulIntegerToFloat multiplies a per-row
    QuantizeLinear's uint8 output by int8 weights of |w| <= 64 (2 x 255 x 64 = 32640: the pair sums of
    the AVX2 / AVX-512 u8 x s8 kernels cannot saturate, so the products are exact on every x86-64 CPU)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8.model_dir / "model.onnx"))
    ops = _ops(model)
    assert ops["MatMulIntegerToFloat"] == 6 * 4 and ops["MultiHeadAttention"] == 6
    assert not {"MatMul", "Attention", "QAttention", "DynamicQuantizeMatMul"} & set(ops)
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    widths = set()
    for node in model.graph.node:
        if node.op_type != "MatMulIntegerToFloat":
            continue
        quant = producer[node.input[0]]
        assert quant.op_type == "QuantizeLinear" and next(a.i for a in quant.attribute if a.name == "axis") == 0
        assert len(quant.input) == 2 or not quant.input[2]  # no zero point: uint8 output
        w = numpy_helper.to_array(inits[node.input[1]])
        assert w.dtype == np.int8 and int(np.abs(w.astype(np.int16)).max()) <= 64
        widths.add(w.shape)
    assert widths == {(384, 1152), (384, 384), (384, 1536), (1536, 384)}  # QKV, output, FFN up and down


def test_per_token_matmul_is_exact_integer_arithmetic():
    """One rewritten MatMul against numpy's exact integer product of the same quantised rows; a constant
    row (range 0) stays finite and exact. Equality here means the CPU's int8 kernel added no saturation."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from lucerag.models.quantize import per_token_activations

    rng = np.random.default_rng(7)
    k, n = 64, 24
    wq = rng.integers(-64, 65, size=(k, n)).astype(np.int8)
    wq[:2] = 64  # the extreme weights, against the extreme activations below
    w_scale = rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "wq", "ws", "wz", "b"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(w_scale, "ws"),
                               numpy_helper.from_array(np.zeros(n, np.int8), "wz"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    assert per_token_activations(model, rows={"x"}) == 1
    assert "Reshape" in {m.op_type for m in model.graph.node}  # only the 1-D view of the row scales
    x = (rng.normal(size=(6, k)) * np.array([[1], [10], [0.01], [3], [1], [1]])).astype(np.float32)
    x[3] = 2.5  # a constant row
    x[4, :2], x[5, :2] = x[4].min() - 5, x[5].max() + 5  # rows whose extremes meet the extreme weights
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    s = (hi - lo) / 255
    with np.errstate(invalid="ignore"):  # the constant row: 0 / 0, multiplied by s = 0 below
        q = np.nan_to_num(np.clip(np.rint((x - lo) / s), 0, 255)).astype(np.int64)
    assert q.max() == 255 and q.min() == 0
    w = wq.astype(np.float64) * w_scale
    want = s * ((q @ wq.astype(np.int64)) * w_scale) + lo * w.sum(0) + bias
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), ISA
    assert np.abs(got[3] - (2.5 * w.sum(0) + bias)).max() <= 1e-4  # constant row: x W + b exactly


def test_query_vector_is_the_passage_graphs_vector(int8):
    """One graph serves both paths: a text's query vector equals its passage vector alone and batched."""
    texts = list(PROBE_TEXTS)
    queries = np.stack([int8.encode_query(t) for t in texts])
    for bs in (1, 16):
        assert (int8.encode_passages(texts, batch_size=bs) * queries).sum(1).min() >= 0.99999


def test_int8_recipe_5_parity_with_fp32(fp32, int8):
    """The probe texts, each alone (the query path): at least recipe 4's documented min cosine 0.994 on
    AVX2; the bound holds on every kernel because the integer products are exact."""
    from lucerag.models import selfcheck

    cos_min, cos_mean = selfcheck.measure(fp32, int8)
    print(f"\n[{ISA}] recipe {int8.manifest.recipe} int8 vs fp32: min {cos_min:.5f} mean {cos_mean:.5f}")
    assert cos_min >= 0.993 and cos_mean >= 0.998
