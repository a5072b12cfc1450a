"""The options of :func:`lucerag.ingest.pipeline.build_index`, grouped by what they change.

Every field has a default that works; pass an object to change a group, or (for the common ones)
the field's name as a keyword of ``build_index``::

    build_index(docs, "idx", chunking=ChunkingOptions(max_tokens=128), hnsw=HnswOptions(m=16))
    build_index(docs, "idx", max_tokens=128, hnsw_m=16)          # the same
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from lucerag.errors import InputError
from lucerag.index.hnsw import GRAPH_FROM, HNSW_BEAM, HNSW_M, VECTOR_FORMATS
from lucerag.ingest.chunking import DEFAULT_MAX_WORDS, DEFAULT_OVERLAP_WORDS
from lucerag.models.encoder import PASSAGE_BATCH

DENSE_TEXTS = ("title+text", "text")  # what the encoder sees of a passage (title + " " + text, or text)
DEFAULT_DENSE_TEXT = "title+text"


@dataclass(frozen=True)
class ChunkingOptions:
    """How documents are cut into passages (:mod:`lucerag.ingest.chunking`)."""

    max_tokens: int | None = None   # with an encoder: tokens per passage; None: the encoder's window
    overlap: int = 32               # tokens shared by consecutive passages of a document
    max_words: int = DEFAULT_MAX_WORDS          # BM25-only indexes: words per passage
    overlap_words: int = DEFAULT_OVERLAP_WORDS  # BM25-only indexes: words shared
    chunk: bool = True              # False: one passage per document (the encoder truncates)
    dense_text: str | None = None   # "title+text" or "text"; None: the index's own on append, else title+text

    def __post_init__(self) -> None:
        if self.dense_text is not None and self.dense_text not in DENSE_TEXTS:
            raise InputError(f"dense_text must be one of {', '.join(DENSE_TEXTS)}, not {self.dense_text!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InputError(f"max_tokens must be >= 1, not {self.max_tokens}")
        if self.overlap < 0 or self.overlap_words < 0 or self.max_words < 1:
            raise InputError("overlap and overlap_words must be >= 0 and max_words >= 1")


@dataclass(frozen=True)
class HnswOptions:
    """The HNSW graph the index writer builds (:mod:`lucerag.index.writer`)."""

    m: int = HNSW_M                   # neighbours per node
    beam: int = HNSW_BEAM             # construction beam width
    vector_format: str | None = None  # "float" (default), "int8" or "bbq"; appends keep the index's own
    # a new index of at least this many passages gets one HNSW graph, built when it closes; smaller ones
    # are searched by an exact scan (lucerag.index.writer.IndexWriter's graph_from)
    graph_from: int = GRAPH_FROM

    def __post_init__(self) -> None:
        if self.vector_format is not None and self.vector_format not in VECTOR_FORMATS:
            raise InputError(f"vector_format must be one of {', '.join(VECTOR_FORMATS)}, not {self.vector_format!r}")
        if self.graph_from < 0:
            raise InputError(f"graph_from must be >= 0, not {self.graph_from}")


@dataclass(frozen=True)
class IngestOptions:
    """How the pipeline runs: batches, threads, memory, and what to do with bad records."""

    batch_size: int = 256                    # passages handed to the writer at once (whole documents)
    encode_batch_size: int = PASSAGE_BATCH   # passages per encoder call
    index_threads: int | None = None         # Java indexing threads (None: 1)
    producer_thread: bool | None = None      # read and chunk on a thread (None: when encoding)
    ram_buffer_mb: float = 512               # Lucene's RAM buffer before it flushes a segment
    on_error: str = "fail"                   # records the pipeline refuses: "fail" or "skip"
    delete_missing: bool = False             # append: delete documents the source no longer has
    progress_every: float = 10.0             # without a terminal: seconds between progress log lines

    def __post_init__(self) -> None:
        if self.on_error not in ("fail", "skip"):
            raise InputError(f"on_error must be 'fail' or 'skip', not {self.on_error!r}")


# build_index keywords that name a field under another name
_RENAMED = {"hnsw_m": "m", "hnsw_beam": "beam"}


def resolve(chunking: ChunkingOptions | None, hnsw: HnswOptions | None, options: IngestOptions | None,
            keywords: dict[str, Any]) -> tuple[ChunkingOptions, HnswOptions, IngestOptions]:
    """The three option objects, with ``keywords`` (field names, or ``hnsw_m``/``hnsw_beam``) applied
    on top; raises TypeError for a keyword no group has."""
    groups: list[Any] = [chunking or ChunkingOptions(), hnsw or HnswOptions(), options or IngestOptions()]
    left = dict(keywords)
    for i, group in enumerate(groups):
        names = {f.name for f in fields(group)}
        mine = {_RENAMED.get(k, k): left.pop(k) for k in list(left) if _RENAMED.get(k, k) in names}
        if mine:
            groups[i] = replace(group, **mine)
    if left:
        raise TypeError(f"build_index() got unexpected keyword argument(s): {', '.join(sorted(left))}")
    return groups[0], groups[1], groups[2]
