"""Runtime bi-encoder: onnxruntime + tokenizers + numpy only (never torch).

One :class:`OnnxEncoder` holds one onnxruntime session and one tokenizer; both are safe to share
across threads (``InferenceSession.run`` is thread-safe and the tokenizer is never mutated after
construction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .manifest import MODEL_FILE, TOKENIZER_FILE, ModelManifest
from .optimize import KEEP_UNFUSED

TextLike = str | bytes
# Passages per onnxruntime call. Small batches keep activations in the 2 MB L2 cache; on the 2-core
# machine batches of 4-16 encode MS MARCO passages equally fast within its drift (docs/encoder.md,
# `lucerag bench encoder --batch-size B`).
PASSAGE_BATCH = 8


def _clean(text: TextLike) -> str:
    """Accept str or bytes; undecodable bytes and lone surrogates become U+FFFD instead of failing."""
    if isinstance(text, str):
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", "replace")
    raise TypeError(f"text must be str or bytes, not {type(text).__name__}")


def runtime_tokenizer(path: str | Path, max_length: int) -> Tokenizer:
    """A model folder's tokenizer as the runtime uses it: no padding, truncated to ``max_length``."""
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu sees a GPU, CPU always as the fallback."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxEncoder:
    """Encode queries and passages with an exported model folder (see ``lucerag.models.export``).

    ``threads``: onnxruntime intra-op threads (None: onnxruntime's default, all physical cores).
    Queries are encoded unpadded; passage batches are sorted by length and padded to the longest
    in each batch. Inputs longer than ``manifest.max_length`` tokens are truncated.

    A text's vector never depends on its batchmates or the batch size. fp32 graphs and lucerag's int8
    graphs (one activation range per token, :mod:`lucerag.models.quantize`) are row-independent, so they
    batch. An int8 graph with one activation range per tensor (older exports, ``batch_independent`` not
    true in its manifest) would let every text of a padded batch change every other text's vector
    (cosine 0.955 measured), so such a graph runs one text per call.
    """

    def __init__(self, model_dir: str | Path, threads: int | None = None, *, providers: Sequence[str] | None = None):
        self.model_dir = Path(model_dir)
        self.manifest = ModelManifest.load(self.model_dir)
        self.dim = self.manifest.dim
        self.threads = threads
        self._tok = tok = runtime_tokenizer(self.model_dir / TOKENIZER_FILE, self.manifest.max_length)
        self._pad_id = next((i for t in ("[PAD]", "<pad>") if (i := tok.token_to_id(t)) is not None), 0)

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(
            str(self.model_dir / MODEL_FILE), opts, providers=list(providers or default_providers()),
            disabled_optimizers=list(KEEP_UNFUSED),
        )
        # Per-tensor dynamic int8 graphs share one activation scale across the rows of a batch.
        flag = self.manifest.batch_independent
        self.batch_independent_rows = flag if flag is not None else self.manifest.precision == "fp32"
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._takes_types = "token_type_ids" in self._inputs
        self._outputs = ["embedding"]
        # A single query's mask and token types are prefixes of these (read-only, shared by all threads).
        self._ones = np.ones((1, self.manifest.max_length), dtype=np.int64)
        self._zeros = np.zeros((1, self.manifest.max_length), dtype=np.int64)
        self._ones.setflags(write=False)
        self._zeros.setflags(write=False)

    def __repr__(self) -> str:
        m = self.manifest
        return f"OnnxEncoder({m.name!r}, dim={m.dim}, pooling={m.pooling}, precision={m.precision}, dir={str(self.model_dir)!r})"

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def tokenizer(self) -> Tokenizer:
        """The truncating, non-padding tokenizer (treat as read-only: it is shared across threads)."""
        return self._tok

    def _feeds(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._takes_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def encode_query(self, text: TextLike) -> np.ndarray:
        """One query -> (dim,) float32, unpadded, with the manifest's query prefix."""
        ids = np.array(self._tok.encode(self.manifest.query_prefix + _clean(text)).ids, dtype=np.int64)[None, :]
        return self._run_one(ids)

    def _run_one(self, ids: np.ndarray) -> np.ndarray:
        """One unpadded text of token ids, shape (1, n) -> (dim,)."""
        n = ids.shape[1]
        feeds = {"input_ids": ids, "attention_mask": self._ones[:, :n]}
        if self._takes_types:
            feeds["token_type_ids"] = self._zeros[:, :n]
        return self.session.run(self._outputs, feeds)[0][0]

    def encode_queries(self, texts: Iterable[TextLike], batch_size: int = PASSAGE_BATCH) -> np.ndarray:
        """Several queries -> (n, dim), query prefix applied."""
        return self._encode(texts, self.manifest.query_prefix, batch_size)

    def encode_passages(self, texts: Iterable[TextLike], batch_size: int = PASSAGE_BATCH) -> np.ndarray:
        """Passages -> (n, dim), passage prefix applied, length-bucketed dynamic padding."""
        return self._encode(texts, self.manifest.passage_prefix, batch_size)

    def token_lengths(self, texts: Sequence[TextLike], prefix: str = "") -> list[int]:
        """Token counts after truncation (special tokens included)."""
        return [len(e.ids) for e in self._tok.encode_batch([prefix + _clean(t) for t in texts])]

    def _encode(self, texts: Iterable[TextLike], prefix: str, batch_size: int) -> np.ndarray:
        if isinstance(texts, (str, bytes)):
            raise TypeError("pass a list of texts (use encode_query for a single text)")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        encodings = self._tok.encode_batch([prefix + _clean(t) for t in texts])
        n = len(encodings)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        if not self.batch_independent_rows:
            for i, e in enumerate(encodings):
                out[i] = self._run_one(np.asarray(e.ids, dtype=np.int64)[None, :])
            return out
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")  # length buckets: little padding per batch
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                k = lengths[i]
                ids[row, :k] = encodings[i].ids
                mask[row, :k] = 1
            out[idx] = self.session.run(self._outputs, self._feeds(ids, mask))[0]
        return out
