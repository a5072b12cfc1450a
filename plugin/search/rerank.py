"""Optional re-ranking between fusion and the relevance filter.

After fusion, the best ``rerank.depth`` candidates (default 20) are scored by a :class:`Reranker`
from the query and each passage's text and put in the order of those scores; candidates below the
depth keep their fused order after them. The relevance filter and pagination then work on that
order. Passages carry the re-ranker's score in ``rerank_score``; ``score`` stays the fused score.

Any object with ``score(query, texts) -> array of floats`` (higher is better) is a re-ranker
(a ``typing.Protocol``). lucerag ships :class:`OnnxCrossEncoder` for cross-encoders exported to
ONNX by the user (for example an MS MARCO MiniLM cross-encoder exported with Hugging Face Optimum):
a directory with ``model.onnx`` and the tokenizer's ``tokenizer.json``. Configure it with
``[rerank] model = "<dir>"`` or pass ``Retriever(..., reranker=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from lucerag.errors import RerankerError


@runtime_checkable
class Reranker(Protocol):
    """Scores passages for a query: ``score(query, texts)`` returns one float per text, shape
    ``(len(texts),)``, higher meaning more relevant."""

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray: ...


class OnnxCrossEncoder:
    """A cross-encoder in ONNX: each (query, passage) pair is encoded together and the model's
    logit is the score.

    ``path``: a directory holding ``model.onnx`` (inputs ``input_ids``, ``attention_mask`` and
    optionally ``token_type_ids``, int64 of shape (batch, tokens); output logits of shape (batch,),
    (batch, 1), or (batch, 2) for a two-class head, whose score is ``logit[1] - logit[0]``) and
    ``tokenizer.json`` (Hugging Face tokenizers; its pair template decides the token types).
    ``max_length``: tokens per pair (the passage is truncated first). Raises :class:`RerankerError`
    when a file is missing or the model lacks those inputs.
    """

    def __init__(self, path: str | Path, *, max_length: int = 512, batch_size: int = 32, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(path)
        model, tokenizer = path / "model.onnx", path / "tokenizer.json"
        for f in (model, tokenizer):
            if not f.is_file():
                raise RerankerError(f"re-ranker {path}: no {f.name} (expected model.onnx and tokenizer.json)")
        self.path, self.batch_size = path, int(batch_size)
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=int(max_length), strategy="only_second")
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self.inputs
        if missing:
            raise RerankerError(f"re-ranker {model}: inputs {sorted(missing)} missing (it has {sorted(self.inputs)})")

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(texts), np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer.encode_batch([(query, t) for t in texts[start:start + self.batch_size]])
            feed = {"input_ids": np.array([e.ids for e in batch], np.int64),
                    "attention_mask": np.array([e.attention_mask for e in batch], np.int64)}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.array([e.type_ids for e in batch], np.int64)
            logits = np.asarray(self.session.run(None, feed)[0], np.float32)
            if logits.ndim == 2 and logits.shape[1] == 2:
                logits = logits[:, 1] - logits[:, 0]
            out[start:start + len(batch)] = logits.reshape(len(batch), -1)[:, 0]
        return out


def rerank_order(reranker: Reranker, query: str, order: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Reorder the first ``len(texts)`` entries of ``order`` (candidate indexes, best first) by the
    re-ranker's scores of ``texts`` (ties keep the fused order); returns the new order and the
    scores aligned with it (NaN below the re-ranked depth)."""
    n = len(texts)
    scores = np.asarray(reranker.score(query, list(texts)), np.float32).reshape(-1)
    if scores.shape != (n,):
        raise RerankerError(f"the re-ranker returned {scores.shape[0]} scores for {n} passages")
    top = np.argsort(-scores, kind="stable")
    new_order = np.concatenate([order[:n][top], order[n:]])
    aligned = np.full(len(order), np.nan, np.float32)
    aligned[:n] = scores[top]
    return new_order, aligned
