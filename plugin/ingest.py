"""Ingestion: documents -> passages (chunks) -> vectors (batched) -> one Lucene index."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

from lucerag.index_manifest import IndexManifest
from lucerag.index_writer import IndexWriter


@dataclass
class IngestReport:
    """What an ingest did; ``read == indexed + skipped + rejected`` (documents)."""

    read: int = 0
    indexed: int = 0      # documents written
    passages: int = 0     # passages (chunks) written
    skipped: int = 0      # documents skipped on purpose (e.g. empty text with on_error=skip)
    rejected: int = 0     # bad records (reported by the connector)
    seconds: float = 0.0

    @property
    def passages_per_s(self) -> float:
        return self.passages / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passages_per_s": round(self.passages_per_s, 1)}


def _batches(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def build_index(documents: Iterable, index_dir: str | Path, *, encoder=None, dense: bool = True,
                mode: str = "create", batch_size: int = 256, max_tokens: int | None = None,
                overlap: int = 32, total: int | None = None, progress: bool = True,
                stats=None) -> IngestReport:
    """Chunk, encode and index ``documents`` (objects with id, title, text, metadata).

    ``encoder`` defaults to the default ONNX model; ``dense=False`` builds a BM25-only index.
    ``stats`` is the connector's ReadStats when it counts rejected records.
    """
    from tqdm import tqdm

    if dense and encoder is None:
        from lucerag.models import load_encoder

        encoder = load_encoder(None)
    manifest = IndexManifest(settings={"max_tokens": max_tokens, "overlap": overlap})
    chunker = None
    if encoder is not None:
        m = encoder.manifest
        manifest.encoder, manifest.encoder_sha256 = m.name, m.weights_sha256
        manifest.query_prefix, manifest.passage_prefix, manifest.dim = m.query_prefix, m.passage_prefix, m.dim
        chunker = _chunker(encoder, max_tokens or m.max_length, overlap)
    report = IngestReport()
    start = time.perf_counter()
    bar = tqdm(total=total, unit="doc", disable=not progress, dynamic_ncols=True, desc="ingest")
    with IndexWriter(index_dir, mode=mode, manifest=manifest,
                     dim=encoder.dim if encoder is not None else None) as writer:
        for batch in _batches(documents, batch_size):
            report.read += len(batch)
            passages = []
            for doc in batch:
                if not doc.text or not doc.text.strip():
                    report.skipped += 1
                    continue
                passages.extend(chunker(doc) if chunker else [doc])
                report.indexed += 1
            if passages:
                texts = [p.text for p in passages]
                vectors = encoder.encode_passages(texts, batch_size=32) if encoder is not None else None
                writer.add_batch([p.id for p in passages], texts, vectors,
                                 [p.title for p in passages], [p.metadata for p in passages])
                report.passages += len(passages)
            bar.update(len(batch))
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{report.passages / max(elapsed, 1e-9):.0f} passages/s")
    bar.close()
    if stats is not None:
        report.rejected = getattr(stats, "rejected", 0)
        report.read += report.rejected
    report.seconds = time.perf_counter() - start
    return report


def _chunker(encoder, max_tokens: int, overlap: int):
    """Token-aware chunking with the encoder's own tokenizer (connectors.chunking)."""
    from tokenizers import Tokenizer

    from lucerag.connectors.chunking import chunk_document

    tokenizer = Tokenizer.from_file(str(Path(encoder.model_dir) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    budget = max(16, max_tokens - 2 - len(tokenizer.encode(encoder.manifest.passage_prefix or "",
                                                         add_special_tokens=False).ids))
    return lambda doc: chunk_document(doc, tokenizer, max_tokens=budget, overlap=min(overlap, budget // 2))
