"""Graph optimisation of an exported encoder: fuse attention, then spell LayerNorm and GELU out again.

onnxruntime's transformer optimizer turns each BERT self-attention block into one ``Attention`` op and
the embeddings into one ``EmbedLayerNormalization`` op, which removes ~200 small nodes per query.
The same optimizer also fuses LayerNorm (``SkipLayerNormalization``) and GELU (``BiasGelu``); on this
project's 2-core machine those kernels are the slow part of a passage batch (4 passages x 81 tokens:
0.90 ms per SkipLayerNormalization vs 0.26 ms for the same math as ReduceMean/Sub/Mul/Div/... ops),
so :func:`unfuse_norms` writes them back as primitive ops, and the runtime session disables the
onnxruntime fusions that would undo it (:data:`KEEP_UNFUSED`). The maths is unchanged: an optimised
graph matches the exported one to float rounding.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

# onnxruntime graph transformers that would re-fuse what unfuse_norms spelled out (names as in
# onnxruntime's optimizer registry; passed as ``disabled_optimizers`` by OnnxEncoder).
KEEP_UNFUSED = (
    "LayerNormFusion", "SimplifiedLayerNormFusion", "SkipLayerNormFusion",
    "GeluFusion", "BiasGeluFusion", "FastGeluFusion",
)


def fuse_transformer(src: Path, dst: Path, num_heads: int = 0, hidden_size: int = 0) -> dict[str, int]:
    """onnxruntime's BERT fusions (attention, embeddings); returns the op counts of the result.

    ``num_heads``/``hidden_size`` 0: detected from the graph.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
    fused.save_model_to_file(str(dst))
    return dict(collections.Counter(n.op_type for n in fused.model.graph.node))


class _Builder:
    """Collects new nodes and scalar constants while one graph is rewritten."""

    def __init__(self, graph):
        self.graph = graph
        self.nodes: list = []
        self.consts: dict[str, object] = {}

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = f"lucerag_const_{np.dtype(dtype).name}_{value!r}"
        if name not in self.consts:
            self.consts[name] = numpy_helper.from_array(np.array(value, dtype=dtype), name)
        return name

    def add(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output


def _layer_norm(b: _Builder, x: str, gamma: str, beta: str | None, eps: float, out: str, p: str, opset: int) -> None:
    """(x - mean) / sqrt(var + eps) * gamma + beta over the last axis, as primitive ops."""
    if opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
        axes = b.const([-1], np.int64)
        mean = lambda t, o: b.add("ReduceMean", [t, axes], o)  # noqa: E731
    else:
        mean = lambda t, o: b.add("ReduceMean", [t], o, axes=[-1], keepdims=1)  # noqa: E731
    mu = mean(x, p + "mean")
    d = b.add("Sub", [x, mu], p + "centred")
    var = mean(b.add("Mul", [d, d], p + "squared"), p + "var")
    sd = b.add("Sqrt", [b.add("Add", [var, b.const(eps)], p + "var_eps")], p + "std")
    scaled = b.add("Mul", [b.add("Div", [d, sd], p + "normed"), gamma], out if beta is None else p + "scaled")
    if beta is not None:
        b.add("Add", [scaled, beta], out)


def _used(graph) -> set[str]:
    used = {i for n in graph.node for i in n.input}
    return used | {o.name for o in graph.output}


def unfuse_norms(model):
    """Rewrite LayerNormalization, SkipLayerNormalization and BiasGelu nodes as primitive ops (in place).

    Nodes whose mean/inv-std side outputs are consumed are left fused. Returns the model.
    """
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    used = _used(graph)
    b = _Builder(graph)
    for i, node in enumerate(graph.node):
        p = f"lucerag_{i}_"
        attrs = {a.name: a for a in node.attribute}
        eps = attrs["epsilon"].f if "epsilon" in attrs else 1e-5
        side_outputs = [o for o in node.output[1:] if o and o in used]
        arg = lambda k: node.input[k] if len(node.input) > k and node.input[k] else None  # noqa: E731
        if node.op_type == "SkipLayerNormalization" and not [o for o in node.output[1:3] if o and o in used]:
            total = b.add("Add", [node.input[0], node.input[1]], p + "sum")
            if arg(4):
                total = b.add("Add", [total, arg(4)], p + "sum_bias")
            if len(node.output) > 3 and node.output[3] in used:
                total = b.add("Identity", [total], node.output[3])
            _layer_norm(b, total, node.input[2], arg(3), eps, node.output[0], p, opset)
        elif (node.op_type == "LayerNormalization" and not side_outputs
              and ("axis" not in attrs or attrs["axis"].i == -1)):
            _layer_norm(b, node.input[0], node.input[1], arg(2), eps, node.output[0], p, opset)
        elif node.op_type == "BiasGelu":
            # gelu(a) = a * (1 + erf(a / sqrt(2))) / 2, with a = x + bias
            a = b.add("Add", [node.input[0], node.input[1]], p + "biased")
            e = b.add("Erf", [b.add("Mul", [a, b.const(float(1 / np.sqrt(2)))], p + "scaled")], p + "erf")
            m = b.add("Mul", [a, b.add("Add", [e, b.const(1.0)], p + "erf1")], p + "prod")
            b.add("Mul", [m, b.const(0.5)], node.output[0])
        else:
            b.nodes.append(node)
    del graph.node[:]
    graph.node.extend(b.nodes)
    graph.initializer.extend(b.consts.values())
    return model


def optimize_onnx(src: Path, dst: Path, num_heads: int = 0, hidden_size: int = 0) -> dict[str, int]:
    """:func:`fuse_transformer` then :func:`unfuse_norms`; returns the op counts of the result."""
    import onnx

    fuse_transformer(src, dst, num_heads, hidden_size)
    model = unfuse_norms(onnx.load(str(dst)))
    onnx.save(model, str(dst))
    return dict(collections.Counter(n.op_type for n in model.graph.node))
