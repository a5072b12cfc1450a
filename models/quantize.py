"""Dynamic int8 quantisation of an exported encoder, with activation smoothing.

Dynamic quantisation gives every weight column its own int8 range, but each activation tensor one range
for the whole tensor, chosen at run time. On all-MiniLM-L6-v2, quantising the weights alone keeps the
minimum cosine to fp32 at 0.9992; quantising the activations too drops it to 0.9885 (300 MS MARCO
queries and passages). The culprits are a few channels of the LayerNorm outputs that are far larger
than the rest. Smoothing (SmoothQuant, Xiao et al., 2023) divides input channel j of a MatMul by s_j
and multiplies row j of its weight by s_j: the product is unchanged, the activation's range is flatter
and the weight takes on a little of the difficulty. s_j = max|X_j|^alpha / max|W_j|^(1-alpha), with
max|X_j| from a calibration pass over generated text (no data files needed). Recipe 3 smoothed the
inputs of the fused QKV projection (``Attention``) and of the widening FFN MatMuls (min cosine 0.9907 over
1,050 texts); recipe 4 kept Attention in fp32 and smoothed only the FFN-up inputs; recipe 5 unfuses
Attention (:mod:`lucerag.models.rows`), so its QKV MatMul is smoothed again (without it the probe min
cosine drops from 0.9941 to 0.9908). Smoothing the FFN down-projection (its input is a GELU output)
made it worse, so it is left. Each quantised MatMul is first written as one ``DynamicQuantizeMatMul``
with its bias (:func:`fold_dynamic_matmuls`), the form that :func:`per_token_activations` rewrites.

Portability and batch independence (recipe 4). Two faults of plain dynamic quantisation are fixed here:
- onnxruntime multiplies u8 activations by s8 weights, and on AVX2 and AVX-512 CPUs without VNNI its
  kernel adds each pair of products into a saturating 16-bit lane (``vpmaddubsw``): 2 x 255 x 127
  overflows, so results depended on the CPU (min cosine to fp32 0.952 on an AVX2 EPYC, >= 0.99 on VNNI/AMX
  machines). Weights are therefore quantised to 7 bits (``reduce_range``: |w| <= 64), for which 2 x 255 x 64
  = 32640 fits: the integer products are exact on every x86-64 kernel (AVX2, AVX-512, VNNI, AMX).
- ``DynamicQuantizeMatMul`` computes one activation scale over the whole input tensor, i.e. over every
  token of every text in a padded batch, so a passage's vector depended on its batchmates (cosine 0.955
  alone vs in a batch of 64). :func:`per_token_activations` rewrites each quantised MatMul so that every
  token (row) gets its own asymmetric 8-bit range (min..max of that row), computed in the graph. The
  fused ``Attention``'s int8 form (``QAttention``) takes one scale per tensor, so recipe 4 left the Q, K, V
  projections in fp32; recipe 5 writes them as a MatMul before ``MultiHeadAttention`` and quantises that
  MatMul per token like the others. A text's vector is then the same alone or in any batch.
Measured on the AVX2 EPYC over the 64 probe texts (lucerag.models.probe), one at a time: min cosine to
fp32 0.9871 with per-tensor scales and 7-bit weights (the 3-token text "ok" is the worst case), 0.9941 with
per-token ranges; alone vs in a batch of 32: 0.9927 per-tensor, 0.999999 per-token (docs/encoder.md).

Recipe 6 (:func:`per_token_symmetric`, ``activations="symmetric"``, not the default): the same weights, one
symmetric range per token (zero point 128) and a one-sided range after GELU, 7 nodes per MatMul instead of
11 (no row offset to add back); on the AVX2 EPYC 4-6% faster queries, probe min cosine to fp32 0.9930
instead of 0.9941 (docs/encoder.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .optimize import KEEP_UNFUSED

DEFAULT_ALPHA = 0.7


def calibration_texts(tokenizer, n: int = 200, seed: int = 0) -> list[str]:
    """``n`` pseudo-sentences of 3-60 whole words drawn from the tokenizer's vocabulary (deterministic)."""
    words = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and not w.startswith("##"))
    if not words:
        raise ValueError("the tokenizer vocabulary has no whole words to calibrate with")
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, int(rng.integers(3, 61)))) for _ in range(n)]


def _targets(graph, attention: bool = True) -> list:
    """MatMuls that widen their input (and Attention nodes unless ``attention`` is False), each with a
    weight used by no other node."""
    from onnx import numpy_helper

    weights = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    out = []
    for n in graph.node:
        if len(n.input) < 2 or n.input[1] not in weights or uses[n.input[1]] != 1:
            continue
        shape = tuple(weights[n.input[1]].dims)
        if len(shape) != 2:
            continue
        is_attention = n.op_type == "Attention" and n.domain == "com.microsoft"
        if (attention and is_attention) or (n.op_type == "MatMul" and shape[0] < shape[1]):
            if numpy_helper.to_array(weights[n.input[1]]).dtype == np.float32:
                out.append(n)
    return out


def _channel_maxima(model, inputs: list[str], texts: list[str], tokenizer) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each tensor in ``inputs``, over ``texts`` encoded one at a time."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in inputs:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"],
                                   disabled_optimizers=list(KEEP_UNFUSED))
    feeds_needed = {i.name for i in session.get_inputs()}
    maxima: dict[str, np.ndarray] = {}
    for text in texts:
        ids = np.asarray(tokenizer.encode(text).ids, dtype=np.int64)[None, :]
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        values = session.run(inputs, {k: v for k, v in feeds.items() if k in feeds_needed})
        for name, v in zip(inputs, values):
            m = np.abs(v).reshape(-1, v.shape[-1]).max(0)
            maxima[name] = np.maximum(maxima[name], m) if name in maxima else m
    return maxima


def smooth_activations(model, tokenizer, alpha: float = DEFAULT_ALPHA, texts: list[str] | None = None,
                       attention: bool = True) -> int:
    """Insert per-channel 1/s scaling before each smoothing target and fold s into its weight (in place).

    Returns the number of nodes smoothed. The fp32 function of the graph is unchanged.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    targets = _targets(graph, attention)
    if not targets:
        return 0
    maxima = _channel_maxima(model, sorted({n.input[0] for n in targets}), texts or calibration_texts(tokenizer), tokenizer)
    weights = {t.name: t for t in graph.initializer}
    scale_nodes = {}
    first = sum(1 for n in graph.node if n.name.startswith("lucerag_smooth_"))  # unique names on a second call
    for k, node in enumerate(targets, start=first):
        w = numpy_helper.to_array(weights[node.input[1]])
        s = np.maximum(maxima[node.input[0]], 1e-5) ** alpha / np.maximum(np.abs(w).max(1), 1e-5) ** (1 - alpha)
        s = (s / np.exp(np.log(s).mean())).astype(np.float32)  # geometric mean 1: weights keep their scale
        weights[node.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1]))
        inv, scaled = f"lucerag_smooth_{k}_inv", f"lucerag_smooth_{k}_x"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv))
        scale_nodes[id(node)] = helper.make_node("Mul", [node.input[0], inv], [scaled], name=f"lucerag_smooth_{k}")
        node.input[0] = scaled
    nodes = []
    for node in graph.node:  # each scaling Mul goes right before its consumer: order stays topological
        if id(node) in scale_nodes:
            nodes.append(scale_nodes[id(node)])
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(targets)


def fold_dynamic_matmuls(model) -> int:
    """Replace each quantised MatMul chain (DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul by the
    product of scales), and the bias Add that follows it, with one ``DynamicQuantizeMatMul`` (in place).

    onnxruntime fuses the chain itself at load time but leaves the bias Add as a separate pass over
    the output. Returns the number of chains folded.
    """
    from onnx import helper

    graph = model.graph
    consumers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    producer = {o: n for n in graph.node for o in n.output}
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}

    def only(name: str, op: str):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op and name not in outputs else None

    drop: set[int] = set()
    replace: dict = {}
    for mm in graph.node:
        if mm.op_type != "MatMulInteger" or len(mm.input) < 4:
            continue
        dql = producer.get(mm.input[0])
        cast = only(mm.output[0], "Cast")
        if dql is None or dql.op_type != "DynamicQuantizeLinear" or cast is None:
            continue
        xq, xs, xz = dql.output
        scale_mul = only(xs, "Mul")
        out_mul = only(cast.output[0], "Mul")
        if (scale_mul is None or out_mul is None or mm.input[2] != xz or len(consumers.get(xq, [])) != 1
                or len(consumers.get(xz, [])) != 1 or scale_mul.output[0] not in out_mul.input):
            continue
        w_scale = next((i for i in scale_mul.input if i != xs), None)
        if w_scale is None or w_scale not in inits or mm.input[1] not in inits:
            continue
        chain, out, bias = [dql, mm, cast, scale_mul, out_mul], out_mul.output[0], ""
        add = only(out, "Add")
        if add is not None:
            other = next(i for i in add.input if i != out) if list(add.input).count(out) == 1 else ""
            n_out = inits[mm.input[1]].dims[-1]
            if other in inits and list(inits[other].dims) == [n_out] and inits[other].data_type == 1:
                chain.append(add)
                out, bias = add.output[0], other
        fused = helper.make_node(
            "DynamicQuantizeMatMul", [dql.input[0], mm.input[1], w_scale, mm.input[3], bias], [out],
            name=f"{mm.name or out}_dqmm", domain="com.microsoft")
        drop.update(id(n) for n in chain)
        replace[id(chain[-1])] = fused  # where the chain's output was produced: order stays topological
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop or id(n) in replace]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(replace)


def _constant_weight_matmul(node, inits: dict) -> tuple[str, str, str, str, np.ndarray, np.ndarray, np.ndarray] | None:
    """For a ``com.microsoft.DynamicQuantizeMatMul`` whose weights (and bias) are initializers:
    (input, int8 weights, weight scales, weight zero points (names), dequantised weights W (K, N),
    bias (N,) float32, the zero points' values); None for any other node."""
    from onnx import numpy_helper

    if node.op_type != "DynamicQuantizeMatMul" or node.domain != "com.microsoft":
        return None
    x, wq, w_scale, w_zero = node.input[:4]
    bias = node.input[4] if len(node.input) > 4 and node.input[4] else None
    if not {wq, w_scale, w_zero} <= inits.keys() or (bias and bias not in inits):
        return None
    zero = numpy_helper.to_array(inits[w_zero])
    w = ((numpy_helper.to_array(inits[wq]).astype(np.float32) - zero.astype(np.float32))
         * numpy_helper.to_array(inits[w_scale]))
    b = numpy_helper.to_array(inits[bias]).astype(np.float32) if bias else np.zeros(w.shape[1], np.float32)
    return x, wq, w_scale, w_zero, w, b, zero


def _finish_rewrite(graph, nodes: list, shared: dict[str, np.ndarray], count: int) -> int:
    """Install the rewritten ``nodes`` (and the ``shared`` constants when anything was rewritten), then drop
    the initializers no node reads any more (the replaced weights' biases; an opset-18 axes input on an
    opset-17 graph), or onnxruntime warns about every one of them at each session start. Returns ``count``."""
    from onnx import numpy_helper

    if count:
        graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in shared.items())
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return count


def per_token_activations(model, rows: set[str] | frozenset[str] = frozenset()) -> int:
    """Rewrite each ``DynamicQuantizeMatMul`` (one activation range per tensor) into the same product with
    one asymmetric uint8 range per row of its input (in place). Returns the number of nodes rewritten.

    The input is viewed as M rows of K values (inputs named in ``rows`` are 2-D already, see
    :func:`lucerag.models.rows.as_rows`; others are reshaped to (M, K) and back). For a row with range
    [lo, hi]: s = (hi - lo) / 255, and ``QuantizeLinear`` (per row, axis 0) gives q = round((x - lo) / s)
    in 0..255, so x ~ lo + s q. Then x W ~ s (q W) + lo colsum(W) + bias, where ``MatMulIntegerToFloat``
    gives q W exactly (integer products, 7-bit weights: no kernel saturates) times the weight scales,
    colsum(W) is a constant of the dequantised weights, and one ``Gemm`` forms the row offset plus the bias:
    11 nodes per MatMul on 2-D input.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inits = {t.name: t for t in graph.initializer}
    shared: dict[str, np.ndarray] = {"lucerag_pt_zero": np.array(0, np.uint8), "lucerag_pt_one": np.array(1.0, np.float32),
              "lucerag_pt_inv255": np.array(1 / 255, np.float32),
              "lucerag_pt_flat": np.array([-1], np.int64), "lucerag_pt_axis1": np.array([1], np.int64),
              "lucerag_pt_start": np.array([0], np.int64), "lucerag_pt_end": np.array([-1], np.int64)}
    nodes, count = [], 0
    for node in graph.node:
        found = _constant_weight_matmul(node, inits)
        if found is None:
            nodes.append(node)
            continue
        x, wq, w_scale, w_zero, w, b, _ = found
        p = f"lucerag_pt{count}_"
        k_in, n_out = w.shape
        graph.initializer.extend([
            numpy_helper.from_array(w.sum(0, keepdims=True).astype(np.float32), p + "colsum"),
            numpy_helper.from_array(b, p + "bias")])

        def op(kind: str, inputs: list[str], out: str, domain: str = "", **attrs) -> str:
            nodes.append(helper.make_node(kind, inputs, [p + out], name=p + out, domain=domain, **attrs))
            return p + out

        def reduce(kind: str, src: str, out: str) -> str:
            if opset >= 18:
                return op(kind, [src, "lucerag_pt_axis1"], out, keepdims=1)
            return op(kind, [src], out, axes=[1], keepdims=1)

        two_d = x in rows
        if not two_d:
            graph.initializer.append(numpy_helper.from_array(np.array([-1, k_in], np.int64), p + "rows"))
            graph.initializer.append(numpy_helper.from_array(np.array([n_out], np.int64), p + "n"))
        x2 = x if two_d else op("Reshape", [x, p + "rows"], "x2")  # (M, K)
        lo, hi = reduce("ReduceMin", x2, "lo"), reduce("ReduceMax", x2, "hi")  # (M, 1)
        # no epsilon: a constant row has s = 0, whatever q its 0 / 0 gives is finite and is multiplied by
        # s = 0 below, so its output is lo colsum(W) + bias, the exact x W + b
        scale = op("Mul", [op("Sub", [hi, lo], "range"), "lucerag_pt_inv255"], "scale")  # (M, 1)
        q = op("QuantizeLinear", [op("Sub", [x2, lo], "shifted"), op("Reshape", [scale, "lucerag_pt_flat"], "s")],
                 "q", axis=0)  # (M, K) uint8: round((x - lo) / s)
        acc = op("MatMulIntegerToFloat", [q, wq, "lucerag_pt_one", w_scale, "lucerag_pt_zero", w_zero], "acc",
                 domain="com.microsoft")  # (M, N): (q W) times the weight scales
        offset = op("Gemm", [lo, p + "colsum", p + "bias"], "offset")  # lo colsum(W) + bias
        if two_d:
            nodes.append(helper.make_node("Add", [op("Mul", [acc, scale], "scaled"), offset], [node.output[0]],
                                          name=p + "out"))
        else:
            y2 = op("Add", [op("Mul", [acc, scale], "scaled"), offset], "y2")
            lead = op("Slice", [op("Shape", [x], "x_shape"), "lucerag_pt_start", "lucerag_pt_end"], "lead")
            shape = op("Concat", [lead, p + "n"], "y_shape", axis=0)
            nodes.append(helper.make_node("Reshape", [y2, shape], [node.output[0]], name=p + "out"))
        count += 1
    return _finish_rewrite(graph, nodes, shared, count)


# One-sided inputs: the smallest value each producer can output (exact-erf GELU: -0.16997 at x = -0.75;
# ReLU: 0). Shifting by c >= -min makes every row non-negative, so its range is [0, max] and the shift
# c colsum(W) is a constant folded into the bias.
ONE_SIDED_SHIFT = {"Gelu": 0.17, "Relu": 0.0}


def per_token_symmetric(model) -> int:
    """Rewrite each ``DynamicQuantizeMatMul`` into the same product with one range per row (token) of its
    input, in 7 nodes and without the row offset of :func:`per_token_activations` (in place). Returns the
    number of nodes rewritten. Works on inputs of any rank (the ranges are over the last axis).

    Symmetric rows: m = max |x| per row, q = QuantizeLinear(x / m, 1/127, 128) in 1..255, and
    x W ~ m ((q - 128) W) / 127, where ``MatMulIntegerToFloat`` takes the constant activation scale 1/127 and
    zero point 128 (scalars, so no per-row offset term). A row of zeros gives 0 / 0 in the division and is
    then multiplied by m = 0: its output is the bias, exactly x W + b.
    One-sided rows (input made by an op in :data:`ONE_SIDED_SHIFT`, e.g. GELU before the FFN
    down-projection): u = x + c >= 0, m = max u per row, q = QuantizeLinear(u / m, 1/255) in 0..255, and
    x W ~ m (q W) / 255 - c colsum(W), the constant folded into the bias: the full 8 bits over the row's
    range, as the asymmetric form gives, with no offset node.
    Every product is u8 (0..255) x s8 (|w| <= 64), so it is exact on every x86-64 int8 kernel as before.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    shared: dict[str, np.ndarray] = {
        "lucerag_sym_inv127": np.array(1 / 127, np.float32), "lucerag_sym_z128": np.array(128, np.uint8),
        "lucerag_sym_inv255": np.array(1 / 255, np.float32), "lucerag_sym_z0": np.array(0, np.uint8),
        "lucerag_sym_last": np.array([-1], np.int64)}
    nodes, count = [], 0
    for node in graph.node:
        found = _constant_weight_matmul(node, inits)
        if found is None:
            nodes.append(node)
            continue
        x, wq, w_scale, w_zero, w, b, zero = found
        p = f"lucerag_sym{count}_"
        made_by = producer.get(x)
        shift = ONE_SIDED_SHIFT.get(made_by.op_type) if made_by is not None else None
        if shift is not None:
            b = b - np.float32(shift) * w.sum(0)
        graph.initializer.append(numpy_helper.from_array(b.astype(np.float32), p + "bias"))
        w_zero_in = [w_zero] if zero.any() else []  # symmetric weights: all zero, left out

        def op(kind: str, inputs: list[str], out: str, domain: str = "", **attrs) -> str:
            nodes.append(helper.make_node(kind, inputs, [p + out], name=p + out, domain=domain, **attrs))
            return p + out

        def row_max(src: str) -> str:
            if opset >= 18:
                return op("ReduceMax", [src, "lucerag_sym_last"], "max", keepdims=1)
            return op("ReduceMax", [src], "max", axes=[-1], keepdims=1)

        if shift is not None:
            if shift:
                graph.initializer.append(numpy_helper.from_array(np.array(shift, np.float32), p + "shift"))
                x = op("Add", [x, p + "shift"], "u")
            m = row_max(x)
            q = op("QuantizeLinear", [op("Div", [x, m], "unit"), "lucerag_sym_inv255", "lucerag_sym_z0"], "q")
            acc = op("MatMulIntegerToFloat", [q, wq, "lucerag_sym_inv255", w_scale, *(["lucerag_sym_z0", *w_zero_in]
                                                                                      if w_zero_in else [])],
                     "acc", domain="com.microsoft")
        else:
            m = row_max(op("Abs", [x], "abs"))
            q = op("QuantizeLinear", [op("Div", [x, m], "unit"), "lucerag_sym_inv127", "lucerag_sym_z128"], "q")
            acc = op("MatMulIntegerToFloat", [q, wq, "lucerag_sym_inv127", w_scale, "lucerag_sym_z128", *w_zero_in],
                     "acc", domain="com.microsoft")
        nodes.append(helper.make_node("Add", [op("Mul", [acc, m], "scaled"), p + "bias"], [node.output[0]],
                                      name=p + "out"))
        count += 1
    return _finish_rewrite(graph, nodes, shared, count)


def _row_tensors(model, start: set[str]) -> set[str]:
    """``start`` plus every tensor a row-wise op makes from one of them (first input), in graph order."""
    rows = set(start)
    for n in model.graph.node:
        if n.input and n.input[0] in rows and n.op_type in ("Mul", "Add", "MatMul", "DynamicQuantizeMatMul",
                                                            "LayerNormalization", "Gelu"):
            rows.update(o for o in n.output[:1])
    return rows


def quantize_onnx(src: Path, dst: Path, tokenizer, *, alpha: float | None = DEFAULT_ALPHA,
                  activations: str = "asymmetric") -> None:
    """Recipe 5: unfuse each Attention into a QKV MatMul + MultiHeadAttention and carry the hidden states
    as (tokens, hidden) rows (:mod:`lucerag.models.rows`), smooth the inputs of the widening MatMuls (QKV
    and FFN-up; unless ``alpha`` is None), then int8 every MatMul with 7-bit per-channel weights and one
    activation range per token (:func:`per_token_activations`). See the module docstring for why.
    ``activations="symmetric"`` writes the per-token ranges as :func:`per_token_symmetric` does instead
    (recipe 6, not the default: fewer nodes, a little less accurate). Raises ValueError for another value."""
    if activations not in ("asymmetric", "symmetric"):
        raise ValueError(f"activations must be 'asymmetric' or 'symmetric', not {activations!r}")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .rows import as_rows, unfuse_attention

    model = onnx.load(str(src))
    unfuse_attention(model)
    as_rows(model)
    if alpha is not None:
        smooth_activations(model, tokenizer, alpha, attention=False)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(
            model, str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # contrib ops defeat shape inference
        )
    finally:
        root.setLevel(level)
    quantized = onnx.load(str(dst))
    fold_dynamic_matmuls(quantized)
    if activations == "symmetric":
        per_token_symmetric(quantized)
    else:
        starts = {n.output[0] for n in quantized.graph.node if n.op_type == "Reshape" and n.output[0].endswith("_rows")}
        per_token_activations(quantized, _row_tensors(quantized, starts))
    onnx.save(quantized, str(dst))
