"""The re-ranking stage with a real ONNX cross-encoder the test builds itself.

The model (``onnx.helper``) scores a (query, passage) pair by how many query tokens occur in the
passage: for every query position (token type 0) it checks, with Equal over all position pairs,
whether some passage position (token type 1) holds the same token id, then sums. Its tokenizer is
a word-level ``tokenizers`` model with a BERT-style pair template, written by the test too.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import mini_documents
from lucerag.search.rerank import OnnxCrossEncoder, Reranker, RerankerError, rerank_order

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]+", text.lower())


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    path = tmp_path_factory.mktemp("cross-encoder")
    vocab = {w: i for i, w in enumerate(SPECIAL)}
    for d in mini_documents():
        for w in _words(f"{d.title}\n{d.text}"):
            vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.save(str(path / "tokenizer.json"))

    def const(name, value, dtype=TensorProto.INT64):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [len(value)], value))

    nodes = [
        const("four", [4]), const("zero", [0]), const("one", [1]), const("ax1", [1]), const("ax2", [2]),
        # a position counts when it is real text (attention 1, not a special token)
        helper.make_node("GreaterOrEqual", ["input_ids", "four"], ["word"]),
        helper.make_node("Equal", ["attention_mask", "one"], ["live"]),
        helper.make_node("And", ["word", "live"], ["text"]),
        helper.make_node("Equal", ["token_type_ids", "zero"], ["is_q"]),
        helper.make_node("Equal", ["token_type_ids", "one"], ["is_p"]),
        helper.make_node("And", ["text", "is_q"], ["q_b"]),
        helper.make_node("And", ["text", "is_p"], ["p_b"]),
        helper.make_node("Cast", ["q_b"], ["q"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["p_b"], ["p"], to=TensorProto.FLOAT),
        # same[b, i, j] = ids[b, i] == ids[b, j]
        helper.make_node("Unsqueeze", ["input_ids", "ax2"], ["ids_i"]),
        helper.make_node("Unsqueeze", ["input_ids", "ax1"], ["ids_j"]),
        helper.make_node("Equal", ["ids_i", "ids_j"], ["same_b"]),
        helper.make_node("Cast", ["same_b"], ["same"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["q", "ax2"], ["q_i"]),
        helper.make_node("Unsqueeze", ["p", "ax1"], ["p_j"]),
        helper.make_node("Mul", ["same", "q_i"], ["m1"]),
        helper.make_node("Mul", ["m1", "p_j"], ["m2"]),
        helper.make_node("ReduceMax", ["m2"], ["found"], axes=[2], keepdims=0),   # [B, L]
        helper.make_node("ReduceSum", ["found", "ax1"], ["logits"], keepdims=1),  # [B, 1]
    ]
    ints = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])  # noqa: E731
    graph = helper.make_graph(nodes, "token-overlap", [ints("input_ids"), ints("attention_mask"),
                                                       ints("token_type_ids")],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path / "model.onnx"))
    return path


def overlap(query: str, text: str) -> int:
    """The reference score: query word positions whose word occurs in the passage."""
    passage = set(_words(text))
    return sum(1 for w in _words(query) if w in passage)


def test_the_cross_encoder_scores_pairs(cross_encoder_dir):
    ce = OnnxCrossEncoder(cross_encoder_dir, batch_size=3)
    assert isinstance(ce, Reranker)
    texts = [f"{d.title}\n{d.text}" for d in mini_documents()]
    query = "why does magma erupt through the crust of a volcano"
    got = ce.score(query, texts)
    assert got.shape == (len(texts),) and got.dtype == np.float32
    assert got.tolist() == [overlap(query, t) for t in texts]
    assert max(got) >= 4


def test_reranking_reorders_the_fused_top(retriever, cross_encoder_dir):
    from lucerag.search.retriever import Retriever

    query = "the energy of light and sugar in leaves"
    depth = 10
    ce = OnnxCrossEncoder(cross_encoder_dir)
    with Retriever.from_index(retriever.bm25_index.path, encoder=retriever.encoder, reranker=ce,
                              rerank={"depth": depth}) as r:
        plain = retriever.search(query, k=25, filter=False)
        reranked = r.search(query, k=25, filter=False)
    texts = {p.id: f"{p.title}\n{p.text}" if p.title else p.text for p in plain}
    top = plain[:depth]
    expected = sorted(top, key=lambda p: -overlap(query, texts[p.id]))   # stable: ties keep fused order
    assert [p.id for p in reranked[:depth]] == [p.id for p in expected]
    assert [p.id for p in reranked[depth:]] == [p.id for p in plain[depth:]]
    assert [p.rerank_score for p in reranked[:depth]] == [overlap(query, texts[p.id]) for p in expected]
    assert all(p.rerank_score is None for p in reranked[depth:])
    assert [p.rank for p in reranked] == list(range(1, len(reranked) + 1))
    assert {p.id: p.score for p in reranked} == pytest.approx({p.id: p.score for p in plain})
    assert [p.id for p in reranked[:depth]] != [p.id for p in top]   # the stage changed something


def test_reranking_runs_before_the_relevance_filter(retriever, cross_encoder_dir):
    from lucerag.search.retriever import Retriever

    if retriever.calibrator is None:
        pytest.skip("no calibrator for this encoder")
    query = "why does a volcano erupt"
    with Retriever.from_index(retriever.bm25_index.path, encoder=retriever.encoder,
                              reranker=OnnxCrossEncoder(cross_encoder_dir)) as r:
        filtered = r.search(query, k=5, filter=True)
    plain = retriever.search(query, k=5, filter=True)
    assert {p.id for p in filtered} == {p.id for p in plain}   # the filter keeps the same passages...
    scores = [p.rerank_score for p in filtered]
    assert scores == sorted(scores, reverse=True)              # ...in the re-ranker's order


def test_configured_reranker_and_errors(tmp_path, retriever, cross_encoder_dir):
    from lucerag.config import Config
    from lucerag.search.retriever import Retriever

    config = Config.for_index(retriever.bm25_index.path, rerank={"model": str(cross_encoder_dir), "depth": 5})
    with Retriever(config, retriever.encoder) as r:
        assert isinstance(r.reranker, OnnxCrossEncoder)
        assert r.search("volcano magma", k=5, filter=False)[0].rerank_score is not None
    with pytest.raises(RerankerError, match="no model.onnx"):
        OnnxCrossEncoder(tmp_path)

    class Broken:
        def score(self, query, texts):
            return np.zeros(len(texts) + 1)

    with pytest.raises(RerankerError, match="returned 4 scores for 3 passages"):
        rerank_order(Broken(), "q", np.arange(5), ["a", "b", "c"])
