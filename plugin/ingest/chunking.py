"""Token-aware chunking with overlap, using the encoder's own tokenizer.

A document of at most ``max_tokens`` tokens stays one chunk with the document's id; a longer one
becomes chunks ``<id>#0``, ``<id>#1``, ... of at most ``max_tokens`` tokens, consecutive chunks
sharing about ``overlap`` tokens. Chunk text is a slice of the original text cut at token (and,
where possible, word) boundaries, so no detokenisation artefacts. Every chunk carries the
document's title and metadata plus ``parent_id``, ``chunk_index``, ``char_start``, ``char_end``.
``max_tokens`` counts text tokens only: leave room for special tokens and prefixes."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from functools import cached_property

from tokenizers import Encoding, Tokenizer

from lucerag.connectors.document import Document

PIECE_CHARS = 16_384  # long texts are encoded in pieces split at whitespace (parallel, same tokens)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """A tokenizer from ``tokenizer.json`` with padding and truncation disabled."""
    tok = Tokenizer.from_file(os.fspath(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def _check(tokenizer: Tokenizer, max_tokens: int, overlap: int) -> None:
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens}, {overlap}")
    if tokenizer.truncation is not None or tokenizer.padding is not None:
        raise ValueError("the tokenizer truncates or pads: use load_tokenizer() or call "
                         "no_truncation() and no_padding() on a copy")


def _pieces(text: str) -> list[tuple[int, str]]:
    """Split ``text`` before whitespace into pieces of about PIECE_CHARS characters."""
    out, start = [], 0
    while len(text) - start > PIECE_CHARS:
        cut = max(text.rfind(" ", start + 1, start + PIECE_CHARS), text.rfind("\n", start + 1, start + PIECE_CHARS))
        cut = cut if cut > start else start + PIECE_CHARS
        out.append((start, text[start:cut]))
        start = cut
    out.append((start, text[start:]))
    return out


class _Tokens:
    """Offsets and word ids of a text's tokens, kept per encoded piece (no per-token copying)."""

    def __init__(self, encs: list[Encoding], starts: list[int]) -> None:
        self._encs = encs
        self._starts = starts
        self._first = [0]  # index of each piece's first token
        for e in encs:
            self._first.append(self._first[-1] + len(e))

    @cached_property
    def _offsets(self) -> list[list[tuple[int, int]]]:
        return [e.offsets for e in self._encs]

    @cached_property
    def _words(self) -> list[list[int | None]]:
        return [e.word_ids for e in self._encs]

    def __len__(self) -> int:
        return self._first[-1]

    def _at(self, i: int) -> tuple[int, int]:
        k = bisect_right(self._first, i) - 1
        return k, i - self._first[k]

    def span(self, s: int, e: int) -> tuple[int, int]:
        """Character range covered by tokens [s, e)."""
        (k1, j1), (k2, j2) = self._at(s), self._at(e - 1)
        return self._starts[k1] + self._offsets[k1][j1][0], self._starts[k2] + self._offsets[k2][j2][1]

    def word(self, i: int) -> tuple[int, int | None]:
        k, j = self._at(i)
        return k, self._words[k][j]


def _encode(tokenizer: Tokenizer, text: str, enc: Encoding | None) -> _Tokens:
    if enc is not None:
        return _Tokens([enc], [0])
    pieces = _pieces(text)
    encs = tokenizer.encode_batch([p for _, p in pieces], add_special_tokens=False)
    return _Tokens(encs, [start for start, _ in pieces])


def _word_start(toks: _Tokens, i: int, floor: int) -> int:
    """First token of the word holding token ``i``, if it lies above ``floor``; else ``i``."""
    j = i
    while j > floor and toks.word(j - 1) == toks.word(j):
        j -= 1
    return j if j > floor else i


def _windows(toks: _Tokens, max_tokens: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Token ranges [s, e) of the chunks; cuts fall between words unless a word is very long."""
    n, s, prev_e = len(toks), 0, 0
    while True:
        e = min(s + max_tokens, n)
        if e < n:  # move the cut back to a word start unless that leaves a short or stale chunk
            w = _word_start(toks, e, s)
            if w > prev_e and w - s >= max_tokens // 2:
                e = w
        yield s, e
        prev_e = e
        if e >= n:
            return
        s = _word_start(toks, max(e - overlap, s + 1), s)


def _split(doc: Document, toks: _Tokens, max_tokens: int, overlap: int) -> list[Document]:
    if len(toks) <= max_tokens:
        meta = {**doc.metadata, "parent_id": doc.id, "chunk_index": 0, "char_start": 0, "char_end": len(doc.text)}
        return [doc.model_copy(update={"metadata": meta})]
    chunks = []
    for i, (s, e) in enumerate(_windows(toks, max_tokens, overlap)):
        a, b = toks.span(s, e)
        meta = {**doc.metadata, "parent_id": doc.id, "chunk_index": i, "char_start": a, "char_end": b}
        chunks.append(Document(id=f"{doc.id}#{i}", title=doc.title, text=doc.text[a:b], metadata=meta))
    return chunks


def chunk_document(doc: Document, tokenizer: Tokenizer, max_tokens: int = 200, overlap: int = 40) -> list[Document]:
    """Split ``doc`` into passages of at most ``max_tokens`` tokens (see the module docstring)."""
    _check(tokenizer, max_tokens, overlap)
    enc = tokenizer.encode(doc.text, add_special_tokens=False) if len(doc.text) <= PIECE_CHARS else None
    return _split(doc, _encode(tokenizer, doc.text, enc), max_tokens, overlap)


def chunk_documents(docs: Iterable[Document], tokenizer: Tokenizer, max_tokens: int = 200,
                    overlap: int = 40, batch_size: int = 256) -> Iterator[Document]:
    """Chunk a stream of documents, encoding short ones in parallel batches."""
    _check(tokenizer, max_tokens, overlap)
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= batch_size:
            yield from _chunk_batch(batch, tokenizer, max_tokens, overlap)
            batch = []
    yield from _chunk_batch(batch, tokenizer, max_tokens, overlap)


def _chunk_batch(batch: list[Document], tokenizer: Tokenizer, max_tokens: int, overlap: int) -> Iterator[Document]:
    short = [d.text for d in batch if len(d.text) <= PIECE_CHARS]
    encs = iter(tokenizer.encode_batch(short, add_special_tokens=False)) if short else iter(())
    for d in batch:
        enc = next(encs) if len(d.text) <= PIECE_CHARS else None
        yield from _split(d, _encode(tokenizer, d.text, enc), max_tokens, overlap)
