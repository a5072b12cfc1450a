"""Test helpers for small BERT models without torch: safetensors writer, random weights, numpy forward pass.

A Hugging Face BERT folder is config.json + model.safetensors (+ tokenizer.json); these helpers write one
with numpy alone, and compute what ``transformers.BertModel`` (eager attention) returns, so the tests
have a reference that needs neither torch nor transformers.
"""

from __future__ import annotations

import json
from math import erf
from pathlib import Path

import numpy as np

LAYER_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense")
LAYER_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: bool = False) -> None:
    """The safetensors layout: 8-byte little-endian header length, a JSON header, then the raw arrays.

    ``bf16``: float32 tensors are stored as bfloat16 (their upper 16 bits, i.e. truncated)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        if bf16 and arr.dtype == np.float32:
            raw, dtype = (arr.view(np.uint32) >> 16).astype("<u2").tobytes(), "BF16"
        else:
            raw = arr.astype("<f4" if arr.dtype == np.float32 else "<i8").tobytes()
            dtype = "F32" if arr.dtype == np.float32 else "I64"
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def random_bert_weights(rng: np.random.Generator, *, vocab: int, hidden: int, inter: int, layers: int,
                        max_pos: int, std: float, random_affine: bool = True,
                        pad_id: int | None = None) -> dict[str, np.ndarray]:
    """BERT encoder weights under Hugging Face's names (without the ``bert.`` prefix), float32.

    ``random_affine``: biases and LayerNorm scale/shift are random too (N(0, std) and 1 + N(0, std));
    otherwise zero biases and unit LayerNorms, as ``BertModel`` initialises them. ``pad_id``: that row
    of the word embeddings is zero, as ``BertModel`` initialises its padding index."""
    r = lambda *s: (rng.standard_normal(s) * std).astype(np.float32)  # noqa: E731
    bias = (lambda n: r(n)) if random_affine else (lambda n: np.zeros(n, np.float32))
    scale = (lambda n: 1 + r(n)) if random_affine else (lambda n: np.ones(n, np.float32))
    w = {"embeddings.word_embeddings.weight": r(vocab, hidden),
         "embeddings.position_embeddings.weight": r(max_pos, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden),
         "embeddings.LayerNorm.weight": scale(hidden), "embeddings.LayerNorm.bias": bias(hidden)}
    if pad_id is not None:
        w["embeddings.word_embeddings.weight"][pad_id] = 0
    shapes = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
              "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
              "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for key in LAYER_LINEARS:
            out_f, in_f = shapes[key]
            w[p + key + ".weight"], w[p + key + ".bias"] = r(out_f, in_f), bias(out_f)
        for key in LAYER_NORMS:
            w[p + key + ".weight"], w[p + key + ".bias"] = scale(hidden), bias(hidden)
    return w


def bert_config(w: dict[str, np.ndarray], *, heads: int, act: str = "gelu", eps: float = 1e-12) -> dict:
    """config.json of a ``BertModel`` with weights ``w`` (shapes read from the arrays)."""
    vocab, hidden = w["embeddings.word_embeddings.weight"].shape
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": int(vocab), "hidden_size": int(hidden),
        "num_hidden_layers": _layers(w), "num_attention_heads": heads,
        "intermediate_size": int(w["encoder.layer.0.intermediate.dense.weight"].shape[0]), "hidden_act": act,
        "max_position_embeddings": int(w["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(w["embeddings.token_type_embeddings.weight"].shape[0]), "layer_norm_eps": eps,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    }


def _layers(w: dict) -> int:
    return len({k.split(".")[2] for k in w if k.startswith("encoder.layer.")})


def numpy_bert(w: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray, act: str = "gelu", heads: int = 4,
               eps: float = 1e-12) -> np.ndarray:
    """The last hidden state (batch, seq, hidden), written from the BERT paper's equations in float64.

    Token type 0 everywhere; padded keys (``mask == 0``) get no attention."""
    w = {k: v.astype(np.float64) for k, v in w.items()}

    def ln(x, key):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[key + ".weight"] + w[key + ".bias"]

    def lin(x, key):
        return x @ w[key + ".weight"].T + w[key + ".bias"]

    gelu = {"gelu": np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2)))),
            "gelu_new": lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3))),
            "relu": lambda v: np.maximum(v, 0)}[act]
    b, s = ids.shape
    x = ln(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0]
           + w["embeddings.position_embeddings.weight"][:s], "embeddings.LayerNorm")
    for i in range(_layers(w)):
        p = f"encoder.layer.{i}."
        split = lambda t: t.reshape(b, s, heads, -1).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + np.where(mask[:, None, None, :] > 0, 0, -1e30)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, -1)
        x = ln(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        x = ln(x + lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense"), p + "output.LayerNorm")
    return x


def pad_batch(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) of one batch padded to its longest text with pad id 0, like OnnxEncoder."""
    enc = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return ids, mask


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """CLS or masked-mean pooling of ``numpy_bert``'s output, then L2 normalisation."""
    if pooling == "cls":
        out = hidden[:, 0]
    else:
        m = mask[..., None]
        out = (hidden * m).sum(1) / m.sum(1)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)
