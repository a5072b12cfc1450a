"""The torch-free BERT builder (lucerag.models.bert_onnx): parity with PyTorch without torch.

The PyTorch side is tests/data/minilm_reference.npz, made once by tests/data/make_minilm_reference.py;
nothing here imports torch or transformers (the default export runs in a subprocess that refuses to).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from lucerag.models import ExportDependencyError, ModelManifest, OnnxEncoder, export_model
from lucerag.models.bert_onnx import UnsupportedModel, build_bert_onnx, read_safetensors, unsupported_reason
from lucerag.models.export import default_source_dir, sha256_file

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.npz"
COS = 0.9999

# Any import of these in the subprocess fails, as on an install without the export extra.
BLOCK_TORCH = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'transformers', 'safetensors'):\n"
    "            raise ImportError(f'{name} is blocked in this test')\n"
    "sys.meta_path.insert(0, _Block())\n"
)


@pytest.fixture(scope="module")
def ref():
    with np.load(REFERENCE) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def tokenizer(ref) -> Tokenizer:
    tok = Tokenizer.from_file(str(default_source_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(int(ref["max_length"]))
    return tok


@pytest.fixture(scope="module")
def raw_graph(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bert-onnx") / "raw.onnx"
    build_bert_onnx(default_source_dir(), path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """export_model(None) in a fresh interpreter where torch, transformers and safetensors can't be imported."""
    out = tmp_path_factory.mktemp("exports") / "minilm"
    code = BLOCK_TORCH + (
        "from lucerag.models import export_model\n"
        f"export_model(None, {str(out)!r})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'safetensors'))\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
    return out


def _feeds(tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """One batch padded to its longest text (pad id 0), like OnnxEncoder."""
    enc = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_reference_is_for_the_bundled_weights(ref, tokenizer):
    assert str(ref["weights_sha256"]) == sha256_file(default_source_dir() / "model.safetensors")
    texts = [str(t) for t in ref["texts"]]
    assert len(texts) >= 20 and ref["embeddings"].shape == (len(texts), 384)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    assert lengths == ref["token_lengths"].tolist()
    assert min(lengths) <= 3 and max(lengths) == 256  # empty text to truncated text


def test_safetensors_reader_matches_the_file_layout():
    w = read_safetensors(default_source_dir() / "model.safetensors")
    assert w["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert w["encoder.layer.5.output.dense.weight"].dtype == np.float32
    assert unsupported_reason(default_source_dir()) is None


@pytest.mark.parametrize("graph", ["raw", "optimized"])
def test_builder_parity_single_and_padded(graph, raw_graph, ref, tokenizer, tmp_path):
    path = raw_graph
    if graph == "optimized":
        from lucerag.models.optimize import optimize_onnx

        path = tmp_path / "opt.onnx"
        optimize_onnx(raw_graph, path, 12, 384)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    texts, expected = [str(t) for t in ref["texts"]], ref["embeddings"]
    single = np.concatenate([session.run(["embedding"], _feeds(tokenizer, [t]))[0] for t in texts])
    assert _cos(single, expected).min() >= COS
    whole = session.run(["embedding"], _feeds(tokenizer, texts))[0]  # 2..256 tokens in one batch
    assert _cos(whole, expected).min() >= COS
    order = np.random.default_rng(0).permutation(len(texts))
    for start in range(0, len(texts), 7):
        idx = order[start : start + 7]
        got = session.run(["embedding"], _feeds(tokenizer, [texts[i] for i in idx]))[0]
        assert _cos(got, expected[idx]).min() >= COS


def test_default_export_without_torch(exported, ref):
    m = ModelManifest.load(exported)
    assert (m.dim, m.pooling, m.normalize, m.max_length, m.precision, m.optimized) == (384, "mean", True, 256, "fp32", True)
    assert m.inputs == ["input_ids", "attention_mask", "token_type_ids"] and m.opset == 17
    assert m.weights_sha256 == str(ref["weights_sha256"])
    tok = json.loads((exported / "tokenizer.json").read_text())
    assert tok["padding"] is None and tok["truncation"] is None

    enc = OnnxEncoder(exported, threads=2)
    texts, expected = [str(t) for t in ref["texts"]], ref["embeddings"]
    queries = np.stack([enc.encode_query(t) for t in texts])
    assert (queries * expected).sum(1).min() >= COS
    for bs in (5, 20):
        assert (enc.encode_passages(texts, batch_size=bs) * expected).sum(1).min() >= COS


def test_onnxruntime_fusions_fire_on_the_built_graph(exported):
    """Same fused ops as the PyTorch export: one Attention per layer, one EmbedLayerNormalization."""
    ops = collections.Counter(n.op_type for n in onnx.load(str(exported / "model.onnx")).graph.node)
    assert ops["Attention"] == 6 and ops["EmbedLayerNormalization"] == 1
    assert ops["MatMul"] == 12 + 6  # FFN in/out per layer + attention output per layer
    assert not {"Softmax", "Erf", "Transpose", "Reshape"} & set(ops)


def test_int8_of_the_built_graph(exported, ref, tmp_path):
    from lucerag.models import quantize_model

    q8 = quantize_model(exported, tmp_path / "q8")
    ops = collections.Counter(n.op_type for n in onnx.load(str(q8 / "model.onnx")).graph.node)
    assert ops["QAttention"] == 6 and ops["DynamicQuantizeMatMul"] == 18
    got = OnnxEncoder(q8, threads=2).encode_passages([str(t) for t in ref["texts"]])
    cos = (got * ref["embeddings"]).sum(1)
    # Loose on purpose: int8 accuracy depends on the CPU's int8 kernels (on an AVX2-only machine the
    # PyTorch export quantises to the same 0.943 min / 0.967 mean over these texts); what this test
    # checks is that the built graph goes through the same smoothing + quantisation.
    assert cos.min() >= 0.9 and cos.mean() >= 0.95


def _copy_tokenizer(dst: Path) -> None:
    (dst / "tokenizer.json").write_bytes((default_source_dir() / "tokenizer.json").read_bytes())


def test_other_architectures_still_need_torch(tmp_path):
    src = tmp_path / "roberta"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 8, "num_attention_heads": 2}))
    _copy_tokenizer(src)
    assert "roberta" in unsupported_reason(src)
    with pytest.raises(UnsupportedModel, match="roberta"):
        export_model(src, tmp_path / "out", backend="numpy")
    code = BLOCK_TORCH + (
        "from lucerag.models import ExportDependencyError, export_model\n"
        "try:\n"
        f"    export_model({str(src)!r}, {str(tmp_path / 'out')!r})\n"
        "except ExportDependencyError as e:\n"
        "    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "lucerag[export]" in run.stdout and "roberta" in run.stdout, run.stdout + run.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="backend"):
        export_model(src, tmp_path / "out", backend="jax")
    assert ExportDependencyError.__mro__[1] is ImportError


# --- a tiny random BERT, written as safetensors by hand, checked against a plain numpy forward pass ---


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: bool = False) -> None:
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


def _tiny_bert(dst: Path, act: str, prefix: str, bf16: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    vocab, hidden, inter, layers, max_pos = 30522, 16, 32, 2, 300  # the bundled tokenizer's vocabulary
    r = lambda *s: (rng.standard_normal(s) * 0.4).astype(np.float32)  # noqa: E731
    w = {"embeddings.word_embeddings.weight": r(vocab, hidden), "embeddings.position_embeddings.weight": r(max_pos, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden),
         "embeddings.LayerNorm.weight": 1 + r(hidden), "embeddings.LayerNorm.bias": r(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for key, (o, n) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                            "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                            "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}.items():
            w[p + key + ".weight"], w[p + key + ".bias"] = r(o, n), r(o)
        for key in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + key + ".weight"], w[p + key + ".bias"] = 1 + r(hidden), r(hidden)
    if bf16:  # what the graph will see: bf16-rounded weights
        w = {k: ((v.view(np.uint32) >> 16) << 16).view(np.float32) for k, v in w.items()}
    dst.mkdir()
    _write_safetensors(dst / "model.safetensors", {prefix + k: v for k, v in w.items()} | {"cls.bias": r(3)}, bf16)
    (dst / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": 4, "intermediate_size": inter, "hidden_act": act, "max_position_embeddings": max_pos,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12}))
    _copy_tokenizer(dst)
    return w


def _numpy_bert(w: dict, ids: np.ndarray, mask: np.ndarray, act: str, heads: int = 4) -> np.ndarray:
    """The last hidden state, written from the BERT paper's equations (float64)."""
    from math import erf

    w = {k: v.astype(np.float64) for k, v in w.items()}

    def ln(x, key):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[key + ".weight"] + w[key + ".bias"]

    def lin(x, key):
        return x @ w[key + ".weight"].T + w[key + ".bias"]

    gelu = {"gelu": np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2)))),
            "gelu_new": lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3))),
            "relu": lambda v: np.maximum(v, 0)}[act]
    b, s = ids.shape
    x = ln(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0]
           + w["embeddings.position_embeddings.weight"][:s], "embeddings.LayerNorm")
    for i in range(2):
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


@pytest.mark.parametrize("act, prefix, bf16, pooling", [
    ("gelu", "", False, "cls"), ("gelu_new", "bert.", True, "mean"), ("relu", "bert.", False, "mean"),
])
def test_tiny_bert_matches_a_numpy_forward(tmp_path, act, prefix, bf16, pooling):
    src = tmp_path / "tiny"
    w = _tiny_bert(src, act, prefix, bf16)
    out = export_model(src, tmp_path / "out", pooling=pooling, max_length=64, optimize=pooling == "cls")
    assert ModelManifest.load(out).dim == 16
    enc = OnnxEncoder(out, threads=1)
    texts = ["", "lucene", "hybrid search with lucene and onnx runtime " * 3, "what is a bi-encoder"]
    got = enc.encode_passages(texts, batch_size=4)  # one padded batch
    feeds = _feeds(enc.tokenizer, texts)
    hidden = _numpy_bert(w, feeds["input_ids"], feeds["attention_mask"], act)
    if pooling == "cls":
        want = hidden[:, 0]
    else:
        m = feeds["attention_mask"][..., None]
        want = (hidden * m).sum(1) / m.sum(1)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert _cos(got, want).min() >= COS
    np.testing.assert_allclose(np.stack([enc.encode_query(t) for t in texts]), got, atol=1e-4)
