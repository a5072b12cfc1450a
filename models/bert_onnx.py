"""Build the ONNX graph of a BERT bi-encoder straight from ``model.safetensors`` + ``config.json``.

numpy and onnx only: no torch, no transformers, not even the ``safetensors`` package (the format is a
JSON header followed by raw little-endian arrays, read here with numpy). The graph computes what
Hugging Face's eager ``BertModel`` computes, followed by the pooling the exporter adds:

    embeddings  LayerNorm(word[input_ids] + token_type[token_type_ids] + position[0..S-1])
    N layers    x = LayerNorm(x + Wo * softmax(Q K^T / sqrt(d) + (1 - mask) * min_float) V)
                x = LayerNorm(x + W2 * gelu(W1 x))          (gelu: exact erf form)
    pooling     masked mean over the sequence, or the first ([CLS]) token; then L2 normalisation

Inputs and output follow the PyTorch exporter's contract (``input_ids``, ``attention_mask`` and, when
the model has token types, ``token_type_ids``, all int64 (batch, sequence); output ``embedding``
(batch, hidden)). The subgraphs are laid out the way onnxruntime's BERT fusion recognises them
(``fusion_attention.py`` / ``fusion_embedlayer.py``): every self-attention block becomes one
``Attention`` node and the embeddings one ``EmbedLayerNormalization`` node after
:func:`lucerag.models.optimize.optimize_onnx`, exactly as for the PyTorch export.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from lucerag.errors import UnsupportedModel

# What the builder understands; anything else goes through the PyTorch exporter (lucerag[export]).
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "BF16": "<u2"}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as float32 (floating point) or int64 numpy arrays.

    Layout: 8-byte little-endian header length, a JSON header mapping each name to its dtype, shape
    and byte range within the data section that follows. bfloat16 is widened by shifting its 16 bits
    into the top half of a float32.
    """
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = meta["dtype"]
        if dtype not in _ST_DTYPES:
            raise UnsupportedModel(f"{path}: tensor {name} has dtype {dtype}, which the builder does not read")
        start, end = meta["data_offsets"]
        arr = np.frombuffer(body[start:end], dtype=_ST_DTYPES[dtype]).reshape(meta["shape"])
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        else:
            arr = arr.astype(np.int64)
        out[name] = arr
    return out


def _config(src: Path) -> dict:
    path = src / "config.json"
    if not path.is_file():
        raise UnsupportedModel(f"{src} has no config.json")
    return json.loads(path.read_text(encoding="utf-8"))


def unsupported_reason(src: str | Path) -> str | None:
    """Why :func:`build_bert_onnx` cannot build ``src`` (None: it can). Reads config.json only."""
    src = Path(src)
    try:
        cfg = _config(src)
    except (UnsupportedModel, ValueError) as e:
        return str(e)
    if cfg.get("model_type") != "bert":
        return f"model_type is {cfg.get('model_type')!r}, the builder handles 'bert'"
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {cfg.get('position_embedding_type')!r} (only 'absolute')"
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        return "decoder / cross-attention BERT"
    if cfg.get("hidden_act", "gelu") not in SUPPORTED_ACTIVATIONS:
        return f"hidden_act {cfg.get('hidden_act')!r} (supported: {', '.join(SUPPORTED_ACTIVATIONS)})"
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        return "hidden_size is not a multiple of num_attention_heads"
    if not (src / "model.safetensors").is_file():
        return "no model.safetensors (the builder reads safetensors only)"
    return None


def _bert_weights(src: Path) -> dict[str, np.ndarray]:
    """BertModel tensors keyed without the ``bert.`` prefix that task heads (BertForX) add."""
    raw = read_safetensors(src / "model.safetensors")
    for p in ("", "bert.", "model."):
        if p + "embeddings.word_embeddings.weight" in raw:
            return {k[len(p):]: v for k, v in raw.items() if k.startswith(p)}
    raise UnsupportedModel(f"{src}/model.safetensors has no embeddings.word_embeddings.weight")


class _Graph:
    """A small helper that names nodes and constants uniquely while the graph is written."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits = [], []

    def const(self, name: str, value) -> str:
        self.inits.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        out = f"{name}_out"
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out


def build_bert_onnx(src: str | Path, path: str | Path, *, pooling: str = "mean", normalize: bool = True,
                    opset: int = 17) -> dict:
    """Write the pooled encoder of the BERT folder ``src`` to ``path``.

    Returns ``{"inputs": [...], "hidden_size": H, "num_heads": A, "layers": N, "max_position": P}``.
    Raises :class:`UnsupportedModel` when ``src`` is not something this builder handles.
    """
    import onnx
    from onnx import TensorProto, helper

    src = Path(src)
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
    if opset < 17:
        raise ValueError(f"the builder writes LayerNormalization, which needs opset >= 17, not {opset}")
    reason = unsupported_reason(src)
    if reason:
        raise UnsupportedModel(f"{src}: {reason}")
    cfg = _config(src)
    w = _bert_weights(src)
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim = hidden // heads
    layers = int(cfg["num_hidden_layers"])
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    act = cfg.get("hidden_act", "gelu")
    max_pos = int(cfg.get("max_position_embeddings", 512))
    with_types = int(cfg.get("type_vocab_size", 0) or 0) > 0 and "embeddings.token_type_embeddings.weight" in w

    g = _Graph()
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    i64 = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731

    def linear(x: str, key: str, name: str) -> str:
        """x @ W^T + b, written as MatMul then bias Add (the layout the fusions and quantiser expect)."""
        wt = g.const(f"{key}.weight_t", np.ascontiguousarray(w[f"{key}.weight"].T))
        b = g.const(f"{key}.bias", w[f"{key}.bias"])
        return g.op("Add", [g.op("MatMul", [x, wt], f"{name}/MatMul"), b], f"{name}/Add")

    def layer_norm(x: str, key: str, name: str) -> str:
        return g.op("LayerNormalization", [x, g.const(f"{key}.weight", w[f"{key}.weight"]),
                                           g.const(f"{key}.bias", w[f"{key}.bias"])],
                    name, axis=-1, epsilon=eps)

    # Shared constants.
    axes0, axes1, axes2 = g.const("axes_0", i64([0])), g.const("axes_1", i64([1])), g.const("axes_2", i64([2]))
    one = g.const("one_f", f32(1.0))

    # Embeddings: (word + token type) + position, then LayerNorm. Positions are a Slice of the row
    # [0, 1, ..., P-1] up to the sequence length, which is what the EmbedLayerNormalization fusion matches.
    word = g.op("Gather", [g.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                           "input_ids"], "embeddings/word/Gather")
    if with_types:
        types = g.op("Gather", [g.const("embeddings.token_type_embeddings.weight",
                                        w["embeddings.token_type_embeddings.weight"]), "token_type_ids"],
                     "embeddings/token_type/Gather")
        word = g.op("Add", [word, types], "embeddings/Add")
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"], "embeddings/Shape"), g.const("index_1", i64(1))],
                   "embeddings/seq_len", axis=0)
    positions = g.op("Slice", [g.const("position_ids", i64(np.arange(max_pos)[None, :])), g.const("zero_1d", i64([0])),
                               g.op("Unsqueeze", [seq_len, axes0], "embeddings/seq_len_1d"), axes1,
                               g.const("one_1d", i64([1]))], "embeddings/position_ids")
    pos = g.op("Gather", [g.const("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]),
                          positions], "embeddings/position/Gather")
    x = layer_norm(g.op("Add", [word, pos], "embeddings/Add_1"), "embeddings.LayerNorm", "embeddings/LayerNorm")

    # Additive attention mask (batch, 1, 1, seq): 0 where attended, the lowest float32 where padded.
    mask_f = g.op("Cast", [g.op("Unsqueeze", [g.op("Unsqueeze", ["attention_mask", axes1], "mask/Unsqueeze"), axes2],
                                "mask/Unsqueeze_1")], "mask/Cast", to=TensorProto.FLOAT)
    mask_bias = g.op("Mul", [g.op("Sub", [one, mask_f], "mask/Sub"),
                             g.const("mask_filter", f32(np.finfo(np.float32).min))], "mask/Mul")

    split_heads = g.const("shape_heads", i64([0, 0, heads, head_dim]))  # 0: keep that input dimension
    merge_heads = g.const("shape_merged", i64([0, 0, hidden]))
    sqrt_d = g.const("sqrt_head_dim", f32(np.sqrt(head_dim)))
    sqrt2, half = g.const("sqrt_2", f32(np.sqrt(2.0))), g.const("half", f32(0.5))

    for i in range(layers):
        p, n = f"encoder.layer.{i}.", f"layer.{i}/"

        def heads_of(t: str, key: str, perm: list[int]) -> str:
            h = g.op("Reshape", [linear(t, p + f"attention.self.{key}", n + key), split_heads], n + key + "/Reshape")
            return g.op("Transpose", [h], n + key + "/Transpose", perm=perm)

        q = heads_of(x, "query", [0, 2, 1, 3])  # (B, A, S, d)
        k = heads_of(x, "key", [0, 2, 3, 1])  # (B, A, d, S)
        v = heads_of(x, "value", [0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k], n + "scores/MatMul"), sqrt_d], n + "scores/Div")
        probs = g.op("Softmax", [g.op("Add", [scores, mask_bias], n + "scores/Add")], n + "Softmax", axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v], n + "context/MatMul")], n + "context/Transpose",
                   perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_heads], n + "context/Reshape")
        attn = linear(ctx, p + "attention.output.dense", n + "attention_out")
        x = layer_norm(g.op("Add", [attn, x], n + "attention_out/Residual"), p + "attention.output.LayerNorm",
                       n + "attention_out/LayerNorm")

        h = linear(x, p + "intermediate.dense", n + "intermediate")
        if act == "gelu":  # 0.5 * h * (1 + erf(h / sqrt 2)), the order the Gelu fusion matches
            erf = g.op("Erf", [g.op("Div", [h, sqrt2], n + "gelu/Div")], n + "gelu/Erf")
            h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, one], n + "gelu/Add")], n + "gelu/Mul"), half],
                     n + "gelu/Mul_1")
        elif act == "relu":
            h = g.op("Relu", [h], n + "relu")
        else:  # tanh approximation: 0.5 h (1 + tanh(sqrt(2/pi) (h + 0.044715 h^3)))
            cube = g.op("Pow", [h, g.const(n + "three", f32(3.0))], n + "gelu/Pow")
            inner = g.op("Add", [h, g.op("Mul", [cube, g.const(n + "c", f32(0.044715))], n + "gelu/Mul_c")],
                         n + "gelu/Add_c")
            t = g.op("Tanh", [g.op("Mul", [inner, g.const(n + "k", f32(np.sqrt(2 / np.pi)))], n + "gelu/Mul_k")],
                     n + "gelu/Tanh")
            h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [t, one], n + "gelu/Add")], n + "gelu/Mul"), half],
                     n + "gelu/Mul_1")
        out = linear(h, p + "output.dense", n + "output")
        x = layer_norm(g.op("Add", [out, x], n + "output/Residual"), p + "output.LayerNorm", n + "output/LayerNorm")

    if pooling == "cls":
        emb = g.op("Gather", [x, g.const("index_0", i64(0))], "pool/cls", axis=1)
    else:  # sum(hidden * mask) / max(sum(mask), 1e-9) over the sequence axis
        m = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const("axes_-1", i64([-1]))], "pool/Unsqueeze")], "pool/Cast",
                 to=TensorProto.FLOAT)
        total = g.op("ReduceSum", [g.op("Mul", [x, m], "pool/Mul"), axes1], "pool/ReduceSum", keepdims=0)
        count = g.op("Clip", [g.op("ReduceSum", [m, axes1], "pool/Count", keepdims=0),
                              g.const("min_count", f32(1e-9))], "pool/Clip")
        emb = g.op("Div", [total, count], "pool/Div")
    if normalize:
        norm = g.op("Clip", [g.op("ReduceL2", [emb], "norm/ReduceL2", axes=[-1], keepdims=1),
                             g.const("min_norm", f32(1e-12))], "norm/Clip")
        emb = g.op("Div", [emb, norm], "norm/Div")
    g.nodes[-1].output[0] = "embedding"

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    inputs = [helper.make_tensor_value_info(nm, TensorProto.INT64, ["batch", "sequence"]) for nm in names]
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, [output], initializer=g.inits)
    # No producer_name: onnxruntime's optimizer warns about any producer other than "pytorch".
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              doc_string=f"built by lucerag.models.bert_onnx from {src.name}/model.safetensors")
    model.ir_version = 8  # opset 17's IR version: loadable by every onnxruntime the project accepts
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"inputs": names, "hidden_size": hidden, "num_heads": heads, "layers": layers, "max_position": max_pos}
