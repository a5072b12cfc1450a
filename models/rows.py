"""The int8 graph's layout (recipe 5): hidden states as rows, attention as a quantisable MatMul.

Two rewrites of an optimised fp32 graph (:mod:`lucerag.models.optimize`) before int8 quantisation
(:mod:`lucerag.models.quantize`); neither changes what the graph computes:

- :func:`unfuse_attention` splits each fused ``Attention`` op into its Q/K/V projection, a plain
  ``MatMul`` + bias ``Add`` over the (tokens, hidden) rows that quantisation can turn into int8, and the
  attention proper, onnxruntime's ``MultiHeadAttention`` (softmax(QK^T/sqrt(d) + mask) V per head,
  padded keys masked by the raw attention mask). The fused op keeps its weights inside and its int8 form
  (``QAttention``) takes one activation range for the whole tensor, so recipe 4 had to leave the
  projection, a quarter of the model's weights, in fp32: 1.77 MB of fp32 weights streamed per layer for
  every query.
- :func:`as_rows` keeps the hidden states as a 2-D (batch x tokens, hidden) tensor from the embeddings
  to the pooling. Every op between them but the attention works row by row (MatMul on the last axis,
  bias and residual Add, LayerNormalization, Gelu, the smoothing Mul), so the per-token quantisation
  groups need no Reshape/Shape/Slice/Concat of their own: the two 3-D shapes are computed once, and only
  each attention and the pooling see 3-D tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Ops that act on each row (token) of a 2-D (rows, hidden) tensor alone, given 1-D or 2-D constants.
_ROWWISE = {"MatMul", "Add", "Mul", "LayerNormalization", "Gelu"}


def _attr(node, name: str, default=None):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def unfuse_attention(model) -> int:
    """Replace each fused ``Attention`` (com.microsoft) by MatMul + Add (the QKV projection, bias
    included), Split into Q, K and V, and ``MultiHeadAttention`` (in place). Returns the number replaced.

    Attention nodes with inputs or attributes this rewrite does not reproduce (past state, relative
    position bias, unidirectional, unequal Q/K/V sizes, a weight shared with another node) are left fused.
    The key padding mask is the graph's ``attention_mask`` input as int32, each 0 a padded key; a graph
    without that input keeps its fused Attention nodes (returns 0).
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    attention = [n for n in graph.node if n.op_type == "Attention" and n.domain == "com.microsoft"]
    if not attention:
        return 0
    if "attention_mask" not in {i.name for i in graph.input}:
        return 0
    mask = "lucerag_attn_key_mask"
    nodes, count = [helper.make_node("Cast", ["attention_mask"], [mask], name=mask, to=TensorProto.INT32)], 0
    for node in graph.node:
        inputs = list(node.input) + [""] * (4 - len(node.input))
        weight, bias = inputs[1], inputs[2]
        fits = (node in attention and len([i for i in node.input[4:] if i]) == 0
                and weight in inits and bias in inits and uses.get(weight) == 1 and uses.get(bias) == 1
                and not _attr(node, "unidirectional", 0) and not _attr(node, "past_present_share_buffer", 0)
                and not _attr(node, "do_rotary", 0) and len(node.output) == 1)
        shape = tuple(inits[weight].dims) if fits else ()
        sizes = list(_attr(node, "qkv_hidden_sizes", []) or [])
        if not fits or len(shape) != 2 or shape[1] % 3 or (sizes and len(set(sizes)) != 1):
            nodes.append(node)
            continue
        p, d = f"lucerag_attn{count}_", int(shape[1]) // 3
        graph.initializer.append(numpy_helper.from_array(np.array([d, d, d], np.int64), p + "split"))
        proj = p + "qkv"
        nodes.append(helper.make_node("MatMul", [inputs[0], weight], [p + "qkv_mm"], name=p + "qkv_mm"))
        nodes.append(helper.make_node("Add", [p + "qkv_mm", bias], [proj], name=p + "qkv_bias"))
        q, k, v = p + "q", p + "k", p + "v"
        nodes.append(helper.make_node("Split", [proj, p + "split"], [q, k, v], name=p + "split", axis=-1))
        attrs: dict[str, Any] = {"num_heads": int(_attr(node, "num_heads"))}
        for name in ("scale", "mask_filter_value"):
            if _attr(node, name) is not None:
                attrs[name] = float(_attr(node, name))
        nodes.append(helper.make_node("MultiHeadAttention", [q, k, v, "", mask], [node.output[0]],
                                      name=p + "mha", domain="com.microsoft", **attrs))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def as_rows(model) -> int:
    """Carry the hidden states as 2-D (rows, hidden) tensors between the embeddings and the pooling
    (in place); returns the number of nodes that now take 2-D tensors.

    The start is the first output of the ``EmbedLayerNormalization`` node. A row-wise op (in
    :data:`_ROWWISE`, its other operands constants of rank <= 2 or row tensors) takes the 2-D tensors as
    they are; ``MultiHeadAttention``'s 3-D result is flattened back into rows right after it; any other
    consumer (the Q/K/V Split, the pooling) reads a 3-D view, (batch, tokens) taken once from the
    ``input_ids`` shape. Does nothing (returns 0) without an EmbedLayerNormalization node or ``input_ids``.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    emb = next((n for n in graph.node if n.op_type == "EmbedLayerNormalization"), None)
    if emb is None or "input_ids" not in {i.name for i in graph.input}:
        return 0
    made: set[str] = set()

    def const(name: str, value) -> str:
        if name not in made and name not in inits:
            graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
            made.add(name)
        return name

    nodes: list = []
    rows: dict[str, str] = {}  # activation name -> its 2-D rows tensor
    width: dict[str, int] = {}  # rows tensor (or split output) -> last-axis width
    views: dict[str, str] = {}  # rows tensor -> its 3-D view
    lead = "lucerag_rows_lead"

    def flatten(name: str, w: int) -> None:
        rows[name] = f"{name}_rows"
        width[rows[name]] = w
        nodes.append(helper.make_node("Reshape", [name, const(f"lucerag_rows_flat{w}", [-1, w])], [rows[name]],
                                      name=rows[name]))

    def view3d(r: str) -> str:
        if r not in views:
            w = width[r]
            shape = f"lucerag_rows_shape{w}"
            if shape not in made:
                nodes.append(helper.make_node("Concat", [lead, const(shape + "_w", [w])], [shape], name=shape, axis=0))
                made.add(shape)
            views[r] = f"{r}_3d"
            nodes.append(helper.make_node("Reshape", [r, shape], [views[r]], name=views[r]))
        return views[r]

    count = 0
    for node in graph.node:
        if not any(i in rows for i in node.input):
            nodes.append(node)
            if node is emb:
                nodes.append(helper.make_node("Shape", ["input_ids"], [lead], name=lead))
                gamma = numpy_helper.to_array(inits[emb.input[5]])
                flatten(emb.output[0], int(gamma.shape[0]))
            elif node.op_type == "MultiHeadAttention" and node.input[0] in width:
                flatten(node.output[0], width[node.input[0]])
            continue
        others = [i for i in node.input if i and i not in rows]
        rowwise = (node.op_type in _ROWWISE and node.domain in ("", "com.microsoft")
                   and all(i in inits and len(inits[i].dims) <= 2 for i in others)
                   and not (node.op_type == "LayerNormalization" and _attr(node, "axis", -1) not in (-1, 1))
                   and not (node.op_type == "MatMul" and node.input[0] not in rows))
        if rowwise:
            node.input[:] = [rows.get(i, i) for i in node.input]
            w = int(inits[node.input[1]].dims[-1]) if node.op_type == "MatMul" else next(
                width[i] for i in node.input if i in width)
            rows[node.output[0]] = node.output[0]
            width[node.output[0]] = w
            count += 1
        else:
            src = [rows[i] for i in node.input if i in rows]
            node.input[:] = [view3d(rows[i]) if i in rows else i for i in node.input]
            if node.op_type == "Split" and len(src) == 1 and width[src[0]] % len(node.output) == 0:
                for o in node.output:  # equal Q/K/V parts: each a 3-D tensor of a third of the width
                    width[o] = width[src[0]] // len(node.output)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return count
