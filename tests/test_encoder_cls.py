"""Export + runtime for a CLS-pooled BERT with a query prefix (BGE-style), on a tiny random model.

The model is written with numpy and the reference is a numpy forward pass (tests/bert_testutil.py), so
this needs no torch; only test_torch_export_route does, and it skips without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bert_testutil import bert_config, numpy_bert, pool, random_bert_weights, write_safetensors

from lucerag.models import ModelManifest, OnnxEncoder, export_model
from lucerag.models.cpu import int8_isa
from lucerag.models.encoder import default_providers

PREFIX = "represent this sentence for searching relevant passages: "
HEADS, MAX_POS = 4, 48  # the tiny model's attention heads and max_position_embeddings (its max_length)
WORDS = (
    "represent this sentence for searching relevant passages the a of to and in is what how why lucene "
    "search index vector query passage document dense sparse hybrid fusion model encoder token bert "
    "retrieval augmented generation score rank java python fast slow small large"
).split()


def _texts() -> list[str]:
    rng = np.random.default_rng(0)
    out = ["", "lucene", "unknownword zzz", "hybrid search with lucene and onnx"]
    out += [" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(1, 60, size=36)]
    return out


def _vocab() -> dict[str, int]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789:.,")
    return {t: i for i, t in enumerate(dict.fromkeys(specials + WORDS + chars + ["##" + c for c in chars]))}


@pytest.fixture(scope="session")
def tiny_weights() -> dict[str, np.ndarray]:
    """BertModel's initialisation: weights N(0, 0.5) (the default 0.02 gives near-identical CLS vectors for
    every input), zero biases, unit LayerNorms, a zero [PAD] embedding."""
    return random_bert_weights(np.random.default_rng(0), vocab=len(_vocab()), hidden=64, inter=128, layers=2,
                               max_pos=MAX_POS, std=0.5, random_affine=False, pad_id=0)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, tiny_weights) -> Path:
    """A randomly initialised 2-layer BERT + WordPiece tokenizer.json, declared CLS-pooled.

    Written with numpy (config.json + model.safetensors) as ``BertModel.save_pretrained`` would, with
    ``tiny_weights`` and the pooler head that CLS pooling does not use."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    src = tmp_path_factory.mktemp("tiny-bert")
    vocab = _vocab()
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.enable_padding(length=40, pad_id=0, pad_token="[PAD]")  # export must strip these
    tok.enable_truncation(40)
    tok.save(str(src / "tokenizer.json"))

    pooler = {"pooler.dense.weight": (np.random.default_rng(1).standard_normal((64, 64)) * 0.5).astype(np.float32),
              "pooler.dense.bias": np.zeros(64, np.float32)}
    write_safetensors(src / "model.safetensors", tiny_weights | pooler)
    (src / "config.json").write_text(json.dumps(bert_config(tiny_weights, heads=HEADS)))
    (src / "1_Pooling").mkdir()
    (src / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    return src


@pytest.fixture(scope="session")
def tiny_dir(tiny_bert, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "tiny-cls"
    return export_model(tiny_bert, out, name="tiny-cls", query_prefix=PREFIX)


def _reference(src: Path, w: dict[str, np.ndarray], texts: list[str], max_length: int = MAX_POS) -> np.ndarray:
    """CLS vector of the last hidden state, L2-normalised; one unpadded text at a time (numpy, float64)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    out = []
    for t in texts:
        ids = np.array([tok.encode(t).ids])
        mask = np.ones_like(ids)
        out.append(pool(numpy_bert(w, ids, mask, heads=HEADS), mask, "cls")[0])
    return np.stack(out)


def test_manifest_detects_cls_and_records_prefix(tiny_bert, tiny_dir):
    m = ModelManifest.load(tiny_dir)
    assert (m.name, m.pooling, m.dim, m.max_length, m.query_prefix, m.passage_prefix) == (
        "tiny-cls", "cls", 64, 48, PREFIX, ""
    )
    assert "token_type_ids" in m.inputs and m.precision == "fp32" and m.optimized  # optimised by default
    import hashlib

    assert m.weights_sha256 == hashlib.sha256((tiny_bert / "model.safetensors").read_bytes()).hexdigest()
    saved = json.loads((tiny_dir / "tokenizer.json").read_text())
    assert saved["padding"] is None and saved["truncation"] is None


def test_cls_parity_queries_and_padded_passages(tiny_bert, tiny_weights, tiny_dir):
    enc = OnnxEncoder(tiny_dir, threads=1)
    texts = _texts()
    ref_q = _reference(tiny_bert, tiny_weights, [PREFIX + t for t in texts])
    ref_p = _reference(tiny_bert, tiny_weights, texts)
    off_diag = (ref_p @ ref_p.T)[~np.eye(len(texts), dtype=bool)]
    assert off_diag.mean() < 0.9  # inputs really give different vectors, so parity means something
    q_single = np.stack([enc.encode_query(t) for t in texts])
    assert (q_single * ref_q).sum(1).min() >= 0.9999
    assert (enc.encode_queries(texts, batch_size=8) * ref_q).sum(1).min() >= 0.9999
    lengths = enc.token_lengths(texts)
    assert min(lengths) == 2 and max(lengths) == 48  # mixed lengths, and truncation at max_length
    for bs in (1, 5, 64):
        assert (enc.encode_passages(texts, batch_size=bs) * ref_p).sum(1).min() >= 0.9999
    # the prefix matters: a query is not the same vector as the bare passage text
    assert float(q_single[3] @ ref_p[3]) < 0.99


def test_torch_export_route(tiny_bert, tiny_weights, tiny_dir, tmp_path):
    """backend="torch" (transformers' BertModel through torch.onnx) gives the same vectors as the reference
    and as the numpy builder that ``auto`` picks."""
    pytest.importorskip("torch", reason="the PyTorch export route needs torch (pip install 'lucerag[export]')")
    pytest.importorskip("transformers", reason="the PyTorch export route needs transformers")
    out = export_model(tiny_bert, tmp_path / "via-torch", query_prefix=PREFIX, backend="torch")
    m = ModelManifest.load(out)
    assert (m.pooling, m.dim, m.max_length, m.query_prefix, m.optimized) == ("cls", 64, 48, PREFIX, True)
    enc, built = OnnxEncoder(out, threads=1), OnnxEncoder(tiny_dir, threads=1)
    texts = _texts()
    ref_q = _reference(tiny_bert, tiny_weights, [PREFIX + t for t in texts])
    ref_p = _reference(tiny_bert, tiny_weights, texts)
    assert (np.stack([enc.encode_query(t) for t in texts]) * ref_q).sum(1).min() >= 0.9999
    got = enc.encode_passages(texts, batch_size=5)
    assert (got * ref_p).sum(1).min() >= 0.9999
    assert (got * built.encode_passages(texts, batch_size=5)).sum(1).min() >= 0.9999


def _ops(model_dir: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(model_dir / "model.onnx")).graph.node}


def test_optimized_and_int8_exports(tiny_bert, tiny_dir, tmp_path):
    texts = _texts()
    plain = export_model(tiny_bert, tmp_path / "plain", query_prefix=PREFIX, optimize=False)
    assert not ModelManifest.load(plain).optimized
    base = OnnxEncoder(plain).encode_passages(texts)
    # the default export fuses attention and embeddings; residual and bias are Adds before a plain
    # LayerNormalization, and GELU is Gelu after its bias Add
    assert {"Attention", "EmbedLayerNormalization", "LayerNormalization", "Gelu"} <= _ops(tiny_dir)
    assert not _ops(tiny_dir) & {"SkipLayerNormalization", "BiasGelu"}
    assert "Attention" not in _ops(plain)
    assert (OnnxEncoder(tiny_dir).encode_passages(texts, batch_size=7) * base).sum(1).min() >= 0.9999
    q8 = export_model(tiny_bert, tmp_path / "q8", query_prefix=PREFIX, precision="int8")
    assert ModelManifest.load(q8).precision == "int8"
    q8_vecs = OnnxEncoder(q8).encode_passages(texts)
    cos = (q8_vecs * base).sum(1)
    # Random Gaussian weights (std 0.5) quantise worse than trained ones (MiniLM: >= 0.99, see
    # test_encoder_portable.py). With 7-bit weights the integer products are exact on every x86-64 kernel,
    # so this measures the recipe, not the CPU: recipe 4 (QKV in fp32) min 0.983, mean 0.998 on AVX2
    # (recipe 3 gave 0.727 there). Recipe 5 quantises the QKV projection too; the random weights make
    # attention logits far sharper than a trained model's, so the softmax amplifies its rounding: min
    # 0.935, mean 0.990 here (the QKV MatMuls left in fp32 give 0.980 / 0.998), while MiniLM's mean
    # moves from 0.9985 to 0.9982 (tests/test_encoder_rows.py).
    isa = int8_isa()
    print(f"tiny BERT int8 vs fp32 on {isa}: min cosine {cos.min():.4f}, mean {cos.mean():.4f}")
    assert cos.min() >= 0.9 and cos.mean() >= 0.98, (isa, float(cos.min()), float(cos.mean()))
    # every quantised MatMul quantises its input per token (QuantizeLinear along the rows, then
    # MatMulIntegerToFloat); nothing takes one range per tensor. Recipe 5: the fused Attention is unfused
    # into an int8 QKV MatMul and MultiHeadAttention, so no fp32 MatMul is left
    ops = _ops(q8)
    assert {"QuantizeLinear", "MatMulIntegerToFloat", "ReduceMin", "ReduceMax", "MultiHeadAttention"} <= ops
    assert not ops & {"DynamicQuantizeMatMul", "DynamicQuantizeLinear", "QAttention", "Attention", "MatMul"}
    with pytest.raises(ValueError, match="opset >= 17"):
        export_model(tiny_bert, tmp_path / "old-opset", opset=14)


def test_failed_export_leaves_nothing(tiny_bert, tmp_path, monkeypatch):
    import lucerag.models.export as export

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(export, "_save_tokenizer", boom)
    with pytest.raises(RuntimeError, match="killed"):
        export_model(tiny_bert, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_atomically(tiny_bert, tiny_dir, tmp_path):
    out = export_model(tiny_bert, tmp_path / "m", query_prefix="old: ")
    assert ModelManifest.load(out).query_prefix == "old: "
    export_model(tiny_bert, out, query_prefix="new: ", overwrite=True)
    assert ModelManifest.load(out).query_prefix == "new: "
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_model(tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        OnnxEncoder(tmp_path)


def test_providers(tiny_dir):
    providers = default_providers()
    assert providers[-1] == "CPUExecutionProvider"
    enc = OnnxEncoder(tiny_dir, threads=1, providers=["CPUExecutionProvider"])
    assert enc.providers == ["CPUExecutionProvider"]
    assert enc.session.get_session_options().intra_op_num_threads == 1


def test_smoothing_keeps_the_fp32_function(tiny_dir, tmp_path):
    """Activation smoothing rescales weights and inputs but must not change what the graph computes."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from lucerag.models.quantize import smooth_activations

    model = onnx.load(str(tiny_dir / "model.onnx"))
    before = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}
    enc = OnnxEncoder(tiny_dir)
    n = smooth_activations(model, enc.tokenizer, alpha=0.7, texts=_texts()[4:20])
    assert n == 2 * 2  # 2 layers x (Attention QKV + FFN up)
    changed = [t.name for t in model.graph.initializer if t.name in before
               and not np.array_equal(before[t.name], numpy_helper.to_array(t))]
    assert len(changed) == n
    out = tmp_path / "smoothed"
    shutil.copytree(tiny_dir, out)
    onnx.save(model, str(out / "model.onnx"))
    texts = _texts()
    cos = (OnnxEncoder(out).encode_passages(texts) * enc.encode_passages(texts)).sum(1)
    assert cos.min() >= 0.99999


def _session(model, **kw):
    import onnxruntime as ort

    from lucerag.models.optimize import KEEP_UNFUSED

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(KEEP_UNFUSED), **kw)


def _model(nodes, inputs, output, initializers):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def test_split_fused_norms_computes_the_same():
    """SkipLayerNormalization -> Add/Add/LayerNormalization and BiasGelu -> Add/Gelu: same maths."""
    from onnx import helper

    from lucerag.models.optimize import split_fused_norms

    rng = np.random.default_rng(3)
    vec = lambda n: rng.normal(size=n).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("SkipLayerNormalization", ["x", "r", "gamma", "beta", "bias"], ["h"],
                         domain="com.microsoft", epsilon=1e-12),
        helper.make_node("BiasGelu", ["h", "bias"], ["y"], domain="com.microsoft"),
    ]
    model = _model(nodes, [("x", ["n", 8]), ("r", ["n", 8])], "y", {"gamma": vec(8), "beta": vec(8), "bias": vec(8)})
    feeds = {"x": rng.normal(size=(5, 8)).astype(np.float32), "r": rng.normal(size=(5, 8)).astype(np.float32)}
    want = _session(model).run(None, feeds)[0]
    split = split_fused_norms(model)
    ops = [n.op_type for n in split.graph.node]
    assert ops == ["Add", "Add", "LayerNormalization", "Add", "Gelu"]
    assert split.graph.node[0].input[1] == "bias"  # the bias comes first, next to its MatMul
    assert np.abs(_session(split).run(None, feeds)[0] - want).max() < 1e-5


def test_fold_dynamic_matmuls_keeps_the_output(tmp_path):
    """DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul (+ bias Add) becomes one node, same output."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from lucerag.models.quantize import fold_dynamic_matmuls

    rng = np.random.default_rng(4)
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("MatMul", ["a1", "w2"], ["m2"]), helper.make_node("Add", ["m2", "a1"], ["y"])]
    model = _model(nodes, [("x", ["n", 8])], "y", {
        "w1": rng.normal(size=(8, 8)).astype(np.float32), "b1": rng.normal(size=8).astype(np.float32),
        "w2": rng.normal(size=(8, 8)).astype(np.float32)})
    quantize_dynamic(model, str(tmp_path / "q.onnx"), weight_type=QuantType.QInt8, per_channel=True)
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    x = {"x": rng.normal(size=(6, 8)).astype(np.float32)}
    want = _session(quantized).run(None, x)[0]
    assert fold_dynamic_matmuls(quantized) == 2
    onnx.checker.check_model(quantized)
    ops = [n.op_type for n in quantized.graph.node]
    # the first bias is folded; the second Add is a residual (not a constant bias) and stays
    assert ops.count("DynamicQuantizeMatMul") == 2 and ops.count("Add") == 1 and "MatMulInteger" not in ops
    assert np.abs(_session(quantized).run(None, x)[0] - want).max() < 1e-4
