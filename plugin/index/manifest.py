"""``lucerag.json``: what an index was built with, so a search or an append can check it matches.

The same JSON is stored as the commit user data of the Lucene commit it describes
(key ``lucerag.manifest``); the file beside the index is written right after that commit.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lucerag.errors import EncoderMismatchError

FORMAT = 2  # 2: passages carry an indexed parent_id (upserts replace all chunks of a document)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class IndexManifest(BaseModel):
    """Build facts of a lucerag index (stored beside Lucene's files; Lucene ignores it)."""

    model_config = ConfigDict(extra="allow")
    FILENAME: ClassVar[str] = "lucerag.json"

    format: int = FORMAT
    encoder: str | None = None          # encoder name, e.g. "all-MiniLM-L6-v2"
    encoder_sha256: str | None = None   # hash of the encoder weights
    encoder_pooling: str | None = None
    encoder_max_length: int | None = None
    query_prefix: str = ""
    passage_prefix: str = ""
    dim: int | None = None
    # The precision that encoded the passages ("int8", "fp32", or "fp32+int8" after appends that
    # mixed them) and the query precision configured when the index was built (docs/encoder.md).
    passage_precision: str | None = None
    query_precision: str | None = None
    similarity: str = "DOT_PRODUCT"
    # HNSW vectors format: "float" (float32), "int8" (8-bit scalar quantised) or "bbq" (1-bit binary
    # quantised, rescored exactly from the stored floats at search time). Indexes written before the
    # option existed (Lucene 9.9) hold float vectors.
    vector_format: str = "float"
    analyzer: str = "DefaultEnglishAnalyzer"
    # What the encoder saw of each passage: "title+text" (title + " " + text, as BEIR/MTEB encode
    # corpora) or "text". Indexes built before this field existed encoded the text alone.
    dense_text: str = "text"
    passages: int = 0
    built_at: str = Field(default_factory=_now)
    updated_at: str | None = None
    # Metadata keys indexed for filters (lucerag.index.metadata) and their kinds ("keyword", "number",
    # "date"); None: the index was written without filter fields (before lucerag 0.3, or by Anserini).
    metadata_fields: dict[str, list[str]] | None = None
    settings: dict = Field(default_factory=dict)   # chunking and build settings
    updates: int = 0                                # successful appends since the build

    @classmethod
    def for_encoder(cls, encoder=None, **settings: Any) -> "IndexManifest":
        """A manifest for an index built with ``encoder`` (None: BM25 only)."""
        manifest = cls(settings=settings)
        if encoder is not None:
            from lucerag.models.manifest import DEFAULT_QUERY_PRECISION

            m = encoder.manifest
            manifest.passage_precision, manifest.query_precision = m.precision, DEFAULT_QUERY_PRECISION
            manifest.encoder, manifest.encoder_sha256 = m.name, m.weights_sha256
            manifest.encoder_pooling, manifest.encoder_max_length = m.pooling, m.max_length
            manifest.query_prefix, manifest.passage_prefix, manifest.dim = m.query_prefix, m.passage_prefix, m.dim
        return manifest

    def check_encoder(self, encoder, index: str | Path = "the index", action: str = "search") -> None:
        """Raise EncoderMismatchError naming the difference when ``encoder`` (an OnnxEncoder, or
        None for BM25 only) is not the encoder this index was built with.

        Indexes lucerag did not build (no encoder recorded) are only checked for the dimension."""
        if encoder is None:
            if self.dim:
                raise EncoderMismatchError(
                    f"cannot {action} {index} without an encoder: it holds {self.dim}-dimensional vectors "
                    f"from {self.encoder or 'an unnamed encoder'} (every passage needs one); "
                    f"use that encoder, or rebuild the index with --bm25-only")
            return
        m = encoder.manifest
        if self.dim is None and self.encoder is None:
            if action == "search":
                return  # a BM25-only index: the dense searcher reports that it has no vectors
            raise EncoderMismatchError(
                f"cannot {action} {index} with encoder {m.name}: it was built without vectors (--bm25-only); "
                f"add --bm25-only, or rebuild it with the encoder")
        diffs = []
        if self.dim and self.dim != m.dim:
            diffs.append(f"dimension {self.dim} vs {m.dim}")
        if self.encoder is not None and self.encoder != m.name:
            diffs.append(f"name {self.encoder!r} vs {m.name!r}")
        if self.encoder_sha256 and m.weights_sha256 and self.encoder_sha256 != m.weights_sha256:
            diffs.append(f"weights sha256 {self.encoder_sha256[:12]}… vs {m.weights_sha256[:12]}…")
        if self.encoder is not None:
            if self.query_prefix != m.query_prefix:
                diffs.append(f"query prefix {self.query_prefix!r} vs {m.query_prefix!r}")
            if self.passage_prefix != m.passage_prefix:
                diffs.append(f"passage prefix {self.passage_prefix!r} vs {m.passage_prefix!r}")
        if diffs:
            raise EncoderMismatchError(
                f"cannot {action} {index} with encoder {m.name} ({encoder.model_dir if hasattr(encoder, 'model_dir') else ''}): "
                f"the index was built with {self.encoder or 'another encoder'}; differences (index vs encoder): "
                f"{'; '.join(diffs)}. Use the encoder the index was built with, or rebuild the index.")

    def note_passage_precision(self, precision: str) -> None:
        """Record that passages were (also) encoded at ``precision`` (an append may mix them)."""
        have = set(self.passage_precision.split("+")) if self.passage_precision else set()
        self.passage_precision = "+".join(sorted(have | {precision}))

    def write(self, index_dir: Path) -> None:
        """Write ``lucerag.json`` atomically (a reader never sees half a file)."""
        path = Path(index_dir) / self.FILENAME
        tmp = path.with_name(f".{self.FILENAME}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(self.model_dump_json(indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def read(cls, index_dir: Path) -> "IndexManifest | None":
        """The manifest of ``index_dir``, or None for an index lucerag did not build."""
        path = Path(index_dir) / cls.FILENAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            data.setdefault("format", 1)  # written before the format field existed
            return cls.model_validate(data)
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable index manifest ({exc}); restore the file, or rebuild the index "
                             f"(`lucerag index --input ... --index {path.parent}`)") from None
