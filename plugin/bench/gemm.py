"""Where the int8 query encoder's time goes: its GEMMs alone, and one int8 GEMM written several ways.

- :func:`gemm_floor_model` keeps only the int8 GEMMs of a quantised encoder graph (every
  ``MatMulIntegerToFloat``, with its own weights, scales and zero points), each fed a constant uint8
  matrix with as many rows as the query has tokens. Its latency is what a query would cost if everything
  else in the graph (per-token ranges, attention, LayerNorm, GELU, pooling) were free: the floor that no
  rewrite of the other nodes can go below. ``lucerag bench encoder --profile`` times it against the full
  encoder, query by query (``gemm_floor``).
- :func:`run_gemm_variants` (``lucerag bench ops gemm``) times one GEMM per weight shape of a MiniLM layer
  (QKV 384x1152, attention output 384x384, FFN up 384x1536, FFN down 1536x384) at a query's row count,
  written the ways the int8 recipe could use: onnxruntime's ``MatMulIntegerToFloat`` as recipe 5 writes
  it (u8 activations, s8 weights, a per-column weight zero point), without the zero point, with
  onnxruntime's weight prepacking switched off, u8 weights, ``MatMulInteger``, blockwise ``MatMulNBits``
  with int8 compute, and fp32. The variants take turns call by call.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

# (K, N) of the four MatMuls of one all-MiniLM-L6-v2 layer, in graph order
MINILM_SHAPES = ((384, 1152), (384, 384), (384, 1536), (1536, 384))


def gemm_floor_model(model):
    """A copy of an int8 encoder graph (``onnx.ModelProto``) that runs only its ``MatMulIntegerToFloat``
    nodes, each on a constant uint8 (rows, K) input, rows = batch x tokens of ``input_ids``; one output per
    GEMM, named ``gemm_<i>``. The graph keeps the encoder's inputs, so the same feeds run it.

    Raises ValueError when the graph has no ``MatMulIntegerToFloat`` with a constant 2-D weight.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    gemms = [n for n in graph.node if n.op_type == "MatMulIntegerToFloat" and n.input[1] in inits
             and len(inits[n.input[1]].dims) == 2]
    if not gemms:
        raise ValueError("the graph has no MatMulIntegerToFloat with a constant 2-D weight (not a lucerag int8 graph?)")
    nodes = [helper.make_node("Shape", ["input_ids"], ["floor_ids_shape"], name="floor_ids_shape"),
             helper.make_node("ReduceProd", ["floor_ids_shape"], ["floor_rows"], name="floor_rows", keepdims=1)]
    extra = [numpy_helper.from_array(np.array(7, np.uint8), "floor_value")]
    widths = sorted({int(inits[n.input[1]].dims[0]) for n in gemms})
    for k in widths:
        extra.append(numpy_helper.from_array(np.array([k], np.int64), f"floor_k{k}"))
        nodes.append(helper.make_node("Concat", ["floor_rows", f"floor_k{k}"], [f"floor_shape{k}"], axis=0,
                                      name=f"floor_shape{k}"))
        nodes.append(helper.make_node("Expand", ["floor_value", f"floor_shape{k}"], [f"floor_x{k}"], name=f"floor_x{k}"))
    outputs = []
    for i, n in enumerate(gemms):
        k = int(inits[n.input[1]].dims[0])
        nodes.append(helper.make_node("MatMulIntegerToFloat", [f"floor_x{k}", *n.input[1:]], [f"gemm_{i}"],
                                      name=f"gemm_{i}", domain="com.microsoft"))
        outputs.append(helper.make_tensor_value_info(f"gemm_{i}", TensorProto.FLOAT, None))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    keep = [t for t in graph.initializer if t.name in used] + extra
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.output[:]
    graph.output.extend(outputs)
    return out


def _session(nodes, inputs, initializers: dict[str, np.ndarray], *, prepack: bool = True, threads: int = 1):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "gemm", [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.INT32 if nodes[-1].op_type == "MatMulInteger" else TensorProto.FLOAT,
                                       None)],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _pack_nbits(w: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) float weights -> MatMulNBits' (N, K/block, block*bits/8) uint8 blob and (N*K/block) scales,
    symmetric around the default zero point 2^(bits-1)."""
    k, n = w.shape
    blocks = w.T.reshape(n, k // block, block)
    half = 2 ** (bits - 1)
    scale = np.maximum(np.abs(blocks).max(-1), 1e-8) / (half - 1)
    q = (np.clip(np.round(blocks / scale[..., None]), -half, half - 1) + half).astype(np.uint8)
    if bits == 4:
        q = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return q, scale.astype(np.float32).reshape(-1)


def gemm_variants(k: int, n: int, block: int = 128, seed: int = 0) -> dict[str, tuple]:
    """name -> (nodes, inputs {name: (onnx type, shape tail)}, initializers, prepack, input kind) for one
    (K, N) weight. The int8 variants share one 7-bit weight matrix and its per-column scales."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    wq = rng.integers(-64, 65, (k, n)).astype(np.int8)
    ws = (rng.random(n) * 0.01 + 0.001).astype(np.float32)
    shared = {"w": wq, "ws": ws, "one": np.array(1.0, np.float32), "azp": np.array(0, np.uint8),
              "wzp": np.zeros(n, np.int8)}
    u8 = {"x": (TensorProto.UINT8, k)}
    f32 = {"x": (TensorProto.FLOAT, k)}
    mitf = "MatMulIntegerToFloat"
    node = helper.make_node
    out: dict[str, tuple] = {
        "MatMulIntegerToFloat u8 x s8, per-column zero point (recipe 5)": (
            [node(mitf, ["x", "w", "one", "ws", "azp", "wzp"], ["y"], domain="com.microsoft")], u8, shared, True, "u8"),
        "MatMulIntegerToFloat u8 x s8, no zero point": (
            [node(mitf, ["x", "w", "one", "ws"], ["y"], domain="com.microsoft")], u8, shared, True, "u8"),
        "MatMulIntegerToFloat u8 x s8, prepacking off": (
            [node(mitf, ["x", "w", "one", "ws", "azp", "wzp"], ["y"], domain="com.microsoft")], u8, shared, False, "u8"),
        "MatMulIntegerToFloat u8 x u8 (weights + 64)": (
            [node(mitf, ["x", "wu", "one", "ws", "azp", "wuzp"], ["y"], domain="com.microsoft")], u8,
            {**shared, "wu": (wq.astype(np.int16) + 64).astype(np.uint8), "wuzp": np.full(n, 64, np.uint8)}, True, "u8"),
        "MatMulInteger u8 x s8 (int32 out, no scaling)": (
            [node("MatMulInteger", ["x", "w"], ["y"])], u8, shared, True, "u8"),
    }
    wf = (wq.astype(np.float32) * ws)
    for bits in (8, 4):
        blob, scales = _pack_nbits(wf, bits, block)
        out[f"MatMulNBits {bits}-bit, block {block}, int8 compute"] = (
            [node("MatMulNBits", ["x", "b", "s"], ["y"], domain="com.microsoft", K=k, N=n, bits=bits,
                  block_size=block, accuracy_level=4)], f32, {"b": blob, "s": scales}, True, "f32")
    out["fp32 MatMul"] = ([node("MatMul", ["x", "wf"], ["y"])], f32, {"wf": wf}, True, "f32")
    return out


def run_gemm_variants(rows: int = 10, shapes=MINILM_SHAPES, layers: int = 6, calls: int = 500,
                      block: int = 128, threads: int = 1) -> dict:
    """Median microseconds per call of each variant at each (K, N), ``rows`` input rows, the variants and
    shapes taking turns call by call; ``per_query_ms``: the sum over ``shapes`` times ``layers``;
    ``gmac_per_s``: multiply-adds per second over all shapes."""
    rng = np.random.default_rng(1)
    built: dict[tuple[str, int, int], Any] = {}
    for k, n in shapes:
        for name, (nodes, inputs, inits, prepack, kind) in gemm_variants(k, n, block).items():
            used = {i for nd in nodes for i in nd.input}
            session = _session(nodes, {x: (t, (rows, d)) for x, (t, d) in inputs.items()},
                               {a: b for a, b in inits.items() if a in used}, prepack=prepack, threads=threads)
            x = (rng.integers(0, 256, (rows, k)).astype(np.uint8) if kind == "u8"
                 else rng.normal(size=(rows, k)).astype(np.float32))
            session.run(None, {"x": x})
            built[(name, k, n)] = (session, {"x": x})
    keys = list(built)
    times: dict[tuple, list[float]] = {key: [] for key in keys}
    for c in range(calls):
        for key in keys if c % 2 == 0 else keys[::-1]:
            session, feeds = built[key]
            t0 = time.perf_counter()
            session.run(None, feeds)
            times[key].append(time.perf_counter() - t0)
    names = list(dict.fromkeys(name for name, _, _ in keys))
    macs = rows * sum(k * n for k, n in shapes)
    result: dict[str, Any] = {"rows": rows, "shapes": [list(s) for s in shapes], "layers": layers,
                              "threads": threads, "calls": calls, "variants": {}}
    for name in names:
        us = {f"{k}x{n}": round(float(np.median(times[(name, k, n)])) * 1e6, 1) for k, n in shapes}
        total_s = sum(us.values()) / 1e6
        result["variants"][name] = {"us": us, "per_query_ms": round(total_s * layers * 1e3, 3),
                                    "gmac_per_s": round(macs / total_s / 1e9, 1)}
    return result


def floor_vs_encoder(int8_dir, texts: list[str], threads: int = 1) -> dict:
    """p50 ms of the int8 encoder's ``encode_query`` and of its GEMM floor (:func:`gemm_floor_model`, fed
    the same tokenised query) over ``texts``, taking turns query by query; tokenisation is in both.

    Returns {"int8_p50_ms", "gemm_floor_p50_ms", "rest_p50_ms" (the difference: every other node plus
    the GEMMs' share of cache effects), "gemms", "tokens_p50"}.
    """
    from pathlib import Path

    import onnx
    import onnxruntime as ort

    from lucerag.bench.encoder import _interleaved_latencies_ms
    from lucerag.models.encoder import OnnxEncoder
    from lucerag.models.manifest import MODEL_FILE

    enc = OnnxEncoder(int8_dir, threads=threads)
    floor = gemm_floor_model(onnx.load(str(Path(int8_dir) / MODEL_FILE)))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(floor.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    tok, prefix = enc.tokenizer, enc.manifest.query_prefix

    def run_floor(text: str) -> None:
        ids = np.array(tok.encode(prefix + text).ids, dtype=np.int64)[None, :]
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        session.run(None, {k: v for k, v in feeds.items() if k in names})

    ms = _interleaved_latencies_ms({"int8": enc.encode_query, "floor": run_floor}, texts)
    full, gemms = float(np.median(ms["int8"])), float(np.median(ms["floor"]))
    return {"int8_p50_ms": round(full, 3), "gemm_floor_p50_ms": round(gemms, 3), "rest_p50_ms": round(full - gemms, 3),
            "gemms": len(floor.graph.output),
            "tokens_p50": float(np.median([len(tok.encode(prefix + t).ids) for t in texts]))}
