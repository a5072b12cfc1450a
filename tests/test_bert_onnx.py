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
from bert_testutil import bert_config, numpy_bert, pad_batch, pool, random_bert_weights, write_safetensors
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
    ids, mask = pad_batch(tokenizer, texts)
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
    # recipe 5 (lucerag.models.quantize, lucerag.models.rows): every MatMul of the 6 layers (QKV projection,
    # attention output, FFN up, FFN down) is MatMulIntegerToFloat on a per-token quantised input; the
    # attention proper is MultiHeadAttention; no fp32 MatMul and no fused Attention is left
    assert ops["MatMulIntegerToFloat"] == 24 and ops["QuantizeLinear"] == 24
    assert ops["MultiHeadAttention"] == 6 and ops["EmbedLayerNormalization"] == 1
    assert not {"QAttention", "Attention", "MatMul", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"} & set(ops)
    # hidden states are rows (lucerag.models.rows): the per-token groups need no Reshape of their own, so
    # the graph has 2 Reshapes per layer (QKV view, attention output) plus the embeddings' and the pooling's
    assert ops["Reshape"] <= 2 * 6 + 2 + 24  # + one 1-D view of each row scale for QuantizeLinear
    got = OnnxEncoder(q8, threads=2).encode_passages([str(t) for t in ref["texts"]])
    cos = (got * ref["embeddings"]).sum(1)
    # 7-bit weights make the integer products exact on every x86-64 kernel, so this bound does not depend
    # on the CPU (measured on AVX2: min 0.9921, mean 0.9978 over these texts)
    assert cos.min() >= 0.99 and cos.mean() >= 0.995
    assert cos.mean() < 0.99999  # really a quantised graph


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
    assert issubclass(ExportDependencyError, ImportError)  # the CLI's one-line ImportError message


# --- a tiny random BERT, written as safetensors by hand, checked against a plain numpy forward pass ---


def _tiny_bert(dst: Path, act: str, prefix: str, bf16: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    # the bundled tokenizer's vocabulary; random biases and LayerNorms too
    w = random_bert_weights(rng, vocab=30522, hidden=16, inter=32, layers=2, max_pos=300, std=0.4)
    extra = {"cls.bias": (rng.standard_normal(3) * 0.4).astype(np.float32)}  # not BERT's: ignored
    if bf16:  # what the graph will see: bf16-rounded weights
        w = {k: ((v.view(np.uint32) >> 16) << 16).view(np.float32) for k, v in w.items()}
    dst.mkdir()
    write_safetensors(dst / "model.safetensors", {prefix + k: v for k, v in w.items()} | extra, bf16)
    (dst / "config.json").write_text(json.dumps(bert_config(w, heads=4, act=act)))
    _copy_tokenizer(dst)
    return w


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
    want = pool(numpy_bert(w, feeds["input_ids"], feeds["attention_mask"], act), feeds["attention_mask"], pooling)
    assert _cos(got, want).min() >= COS
    np.testing.assert_allclose(np.stack([enc.encode_query(t) for t in texts]), got, atol=1e-4)
