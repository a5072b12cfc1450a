"""Graph optimisation of an exported encoder: fuse attention, keep LayerNorm and GELU as plain ops.

onnxruntime's transformer optimizer turns each BERT self-attention block into one ``Attention`` op and
the embeddings into one ``EmbedLayerNormalization`` op, which removes ~200 small nodes per query.
It also fuses each residual + LayerNorm into ``SkipLayerNormalization`` and each bias + GELU into
``BiasGelu``; on this project's 2-core machine those two kernels are slower than what they replace
(``lucerag bench ops kernels``, batch of 8 x 81 tokens: SkipLayerNormalization ~2.3x the time of
two Adds and a LayerNormalization; BiasGelu ~1.3x the time of Gelu once the bias is folded into the
int8 MatMul). :func:`split_fused_norms` writes them back as bias Add + residual Add + LayerNormalization
and bias Add + Gelu, and the runtime session disables the onnxruntime fusions that would undo it
(:data:`KEEP_UNFUSED`). The maths is unchanged: an optimised graph matches the exported one to
float rounding.
"""

from __future__ import annotations

import collections
from pathlib import Path


# onnxruntime graph transformers that would re-fuse what split_fused_norms took apart (names as in
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


def split_fused_norms(model):
    """Rewrite SkipLayerNormalization as bias Add + residual Add + LayerNormalization, and BiasGelu
    as bias Add + Gelu (in place). Returns the model.

    The bias Add comes first and right after its MatMul, so that int8 quantisation can fold it into
    the MatMul (``DynamicQuantizeMatMul`` takes a bias). Nodes whose mean/inv-std side outputs are
    consumed are left fused.
    """
    from onnx import helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 17:
        raise ValueError(f"graph optimisation needs ONNX opset >= 17 (LayerNormalization); this model has {opset}")
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    nodes = []

    def add(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
        return output

    for i, node in enumerate(graph.node):
        p = f"lucerag_{i}_"
        arg = lambda k: node.input[k] if len(node.input) > k and node.input[k] else None  # noqa: E731
        if node.op_type == "SkipLayerNormalization" and not [o for o in node.output[1:3] if o and o in used]:
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
            x = add("Add", [node.input[0], arg(4)], p + "biased") if arg(4) else node.input[0]
            total = add("Add", [x, node.input[1]], p + "sum")
            if len(node.output) > 3 and node.output[3] in used:
                add("Identity", [total], node.output[3])
            ln_inputs = [total, node.input[2]] + ([arg(3)] if arg(3) else [])
            add("LayerNormalization", ln_inputs, node.output[0], axis=-1, epsilon=eps)
        elif node.op_type == "BiasGelu":
            add("Gelu", [add("Add", [node.input[0], node.input[1]], p + "biased")], node.output[0], domain="com.microsoft")
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def optimize_onnx(src: Path, dst: Path, num_heads: int = 0, hidden_size: int = 0) -> dict[str, int]:
    """:func:`fuse_transformer` then :func:`split_fused_norms`; returns the op counts of the result."""
    import onnx

    fuse_transformer(src, dst, num_heads, hidden_size)
    model = split_fused_norms(onnx.load(str(dst)))
    onnx.save(model, str(dst))
    return dict(collections.Counter(n.op_type for n in model.graph.node))
