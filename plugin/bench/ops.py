"""Micro-benchmarks behind the encoder recipe: single onnxruntime kernels, and query-latency drift.

``python -m lucerag.bench.ops kernels`` times, on one activation tensor of a passage batch,
the ways a BERT layer's residual + LayerNorm and bias + GELU can be written (onnxruntime's fused
kernels, the plain ops recipe 3 uses, the primitive ops recipe 2 used). ``... windows`` times the
default int8 query encoder over consecutive short windows, with the share of CPU time the host
stole, to show how much this machine's speed moves from one second to the next. ``... gemm`` times one
int8 GEMM per MiniLM weight shape written the ways the int8 recipe could use (:mod:`lucerag.bench.gemm`).
Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from typing import Any

import numpy as np


def _session(nodes, inputs: dict[str, tuple], initializers: dict[str, np.ndarray], threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "op", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # time the ops as written
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _variants(hidden: int, ffn: int):
    """name -> (nodes, inputs by name -> last dim, initializers)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    def vec(n: int) -> np.ndarray:
        return rng.normal(size=n).astype(np.float32)

    ln_w = {"gamma": vec(hidden), "beta": vec(hidden), "bias": vec(hidden), "eps": np.array(1e-12, np.float32)}
    gelu_w = {"fbias": vec(ffn), "rsqrt2": np.array(0.70710678, np.float32), "one": np.array(1.0, np.float32),
              "half": np.array(0.5, np.float32)}
    n = helper.make_node
    primitive_ln = [
        n("Add", ["x", "bias"], ["b"]), n("Add", ["b", "r"], ["s"]), n("ReduceMean", ["s"], ["m"], axes=[-1]),
        n("Sub", ["s", "m"], ["d"]), n("Mul", ["d", "d"], ["d2"]), n("ReduceMean", ["d2"], ["v"], axes=[-1]),
        n("Add", ["v", "eps"], ["ve"]), n("Sqrt", ["ve"], ["sd"]), n("Div", ["d", "sd"], ["z"]),
        n("Mul", ["z", "gamma"], ["zg"]), n("Add", ["zg", "beta"], ["y"])]
    primitive_gelu = [
        n("Add", ["u", "fbias"], ["a"]), n("Mul", ["a", "rsqrt2"], ["as"]), n("Erf", ["as"], ["e"]),
        n("Add", ["e", "one"], ["e1"]), n("Mul", ["a", "e1"], ["p"]), n("Mul", ["p", "half"], ["y"])]
    res = {"x": hidden, "r": hidden}
    return {
        "SkipLayerNormalization (fused kernel)": (
            [n("SkipLayerNormalization", ["x", "r", "gamma", "beta", "bias"], ["y"], domain="com.microsoft",
               epsilon=1e-12)], res, ln_w),
        "Add + Add + LayerNormalization (recipe 3)": (
            [n("Add", ["x", "bias"], ["b"]), n("Add", ["b", "r"], ["s"]),
             n("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)], res, ln_w),
        "Add + Add + LayerNorm as primitive ops (recipe 2)": (primitive_ln, res, ln_w),
        "BiasGelu (fused kernel)": ([n("BiasGelu", ["u", "fbias"], ["y"], domain="com.microsoft")], {"u": ffn}, gelu_w),
        "Gelu, bias folded into the MatMul (recipe 3)": (
            [n("Gelu", ["u"], ["y"], domain="com.microsoft")], {"u": ffn}, gelu_w),
        "bias Add + GELU as primitive ops (recipe 2)": (primitive_gelu, {"u": ffn}, gelu_w),
    }


def run_kernels(batch: int = 8, seq: int = 81, hidden: int = 384, ffn: int = 1536, threads: int = 2,
                calls: int = 100, rounds: int = 5) -> dict:
    """Median ms per call of each way of writing the two blocks, the variants taking turns round by round."""
    rng = np.random.default_rng(1)
    built: dict[str, Any] = {}
    for name, (nodes, inputs, weights) in _variants(hidden, ffn).items():
        used = {i for node in nodes for i in node.input}
        session = _session(nodes, {k: (batch, seq, d) for k, d in inputs.items()},
                           {k: v for k, v in weights.items() if k in used}, threads)
        feeds = {k: rng.normal(size=(batch, seq, d)).astype(np.float32) for k, d in inputs.items()}
        for _ in range(10):
            session.run(None, feeds)
        built[name] = (session, feeds)
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(rounds):
        for name, (session, feeds) in built.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                session.run(None, feeds)
            times[name].append((time.perf_counter() - t0) / calls * 1e3)
    return {"shape": [batch, seq, hidden], "ffn": ffn, "threads": threads, "calls": calls, "rounds": rounds,
            "ms_per_call": {name: round(float(np.median(v)), 3) for name, v in times.items()}}


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def run_windows(windows: int = 6, passes: int = 5, pause_s: float = 0.5) -> dict:
    """p50 ms of the default int8 query encoder (1 thread) in consecutive windows of ``passes`` over the
    benchmark queries, with the host's steal share of CPU time in each (from /proc/stat)."""
    from lucerag.bench.encoder import load_texts
    from lucerag.models.store import load_encoder

    encoder = load_encoder(None, threads=1, precision="int8")
    queries = load_texts(n_passages=0)[0]
    for q in queries[:20]:
        encoder.encode_query(q)
    out = []
    for _ in range(windows):
        before, ms = _cpu_times(), []
        for q in queries * passes:
            t0 = time.perf_counter()
            encoder.encode_query(q)
            ms.append((time.perf_counter() - t0) * 1e3)
        delta = [b - a for a, b in zip(before, _cpu_times())]
        out.append({"p50_ms": round(float(np.median(ms)), 3), "queries": len(ms),
                    "steal_pct": round(100 * delta[7] / max(sum(delta), 1), 1)})
        time.sleep(pause_s)
    return {"encoder": str(encoder.model_dir), "windows": out}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m lucerag.bench.ops", description=__doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kernels", help="residual+LayerNorm and bias+GELU written three ways")
    k.add_argument("--batch", type=int, default=8)
    k.add_argument("--seq", type=int, default=81)
    k.add_argument("--threads", type=int, default=2)
    k.add_argument("--rounds", type=int, default=5)
    w = sub.add_parser("windows", help="int8 query p50 in consecutive windows, with steal time")
    w.add_argument("--windows", type=int, default=6)
    w.add_argument("--passes", type=int, default=5)
    g = sub.add_parser("gemm", help="one int8 GEMM per MiniLM weight shape, written several ways (1 query's rows)")
    g.add_argument("--rows", type=int, default=10, help="input rows = a query's tokens (DL19 queries: ~10)")
    g.add_argument("--calls", type=int, default=500)
    g.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if a.what == "gemm":
        from lucerag.bench.gemm import run_gemm_variants

        result = run_gemm_variants(rows=a.rows, calls=a.calls, threads=a.threads)
    elif a.what == "kernels":
        result = run_kernels(a.batch, a.seq, threads=a.threads, rounds=a.rounds)
    else:
        result = run_windows(a.windows, a.passes)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
