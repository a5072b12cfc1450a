"""Token-aware chunking with overlap, using the encoder's own tokenizer.

A document of at most ``max_tokens`` tokens stays one chunk with the document's id; a longer one
becomes chunks ``<id>#0``, ``<id>#1``, ... of at most ``max_tokens`` tokens, consecutive chunks
sharing about ``overlap`` tokens. Chunk text is a slice of the original text cut at token (and,
where possible, word) boundaries, so no detokenisation artefacts. Every chunk carries the
document's title and metadata plus ``parent_id``, ``chunk_index``, ``char_start``, ``char_end``
(a source's own value under one of those keys is kept as ``source_<key>``, :func:`provenance`).
``max_tokens`` counts text tokens only: leave room for special tokens and prefixes.

The one chunking module: the ingest pipeline takes its chunker from here, :func:`token_chunker`
(with an encoder: the encoder's own tokenizer) or :func:`word_chunker` (BM25-only: the same windows
counted in words, microseconds instead of a tokenizer pass)."""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

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


PROVENANCE = ("parent_id", "chunk_index", "char_start", "char_end")   # the keys chunking writes


def provenance(metadata: dict, parent: str, index: int, start: int, end: int) -> dict:
    """``metadata`` plus the chunk's ``parent_id``, ``chunk_index``, ``char_start``, ``char_end``.

    A source's own value under one of those keys is kept, renamed ``source_<key>`` (with more
    ``source_`` prefixes until the name is free), never overwritten."""
    meta = dict(metadata)
    for key in PROVENANCE:
        if key in meta:
            moved = "source_" + key
            while moved in meta:
                moved = "source_" + moved
            meta[moved] = meta.pop(key)
    meta.update(parent_id=parent, chunk_index=index, char_start=start, char_end=end)
    return meta


def _split(doc: Document, toks: _Tokens, max_tokens: int, overlap: int) -> list[Document]:
    if len(toks) <= max_tokens:
        meta = provenance(doc.metadata, doc.id, 0, 0, len(doc.text))
        return [doc.model_copy(update={"metadata": meta})]
    chunks = []
    for i, (s, e) in enumerate(_windows(toks, max_tokens, overlap)):
        a, b = toks.span(s, e)
        meta = provenance(doc.metadata, doc.id, i, a, b)
        chunks.append(Document(id=f"{doc.id}#{i}", title=doc.title, text=doc.text[a:b], metadata=meta))
    return chunks


def chunk_document(doc: Document, tokenizer: Tokenizer, max_tokens: int = 200, overlap: int = 40) -> list[Document]:
    """Split ``doc`` into passages of at most ``max_tokens`` tokens (see the module docstring)."""
    _check(tokenizer, max_tokens, overlap)
    enc = tokenizer.encode(doc.text, add_special_tokens=False) if len(doc.text) <= PIECE_CHARS else None
    return _split(doc, _encode(tokenizer, doc.text, enc), max_tokens, overlap)


def chunk_documents(docs: Iterable[Document], tokenizer: Tokenizer, max_tokens: int = 200,
                    overlap: int = 40, batch_size: int = 256, with_title: bool = False) -> Iterator[Document]:
    """Chunk a stream of documents, encoding short ones in parallel batches.

    ``with_title``: each chunk will be encoded as ``title + " " + chunk`` (BEIR/MTEB style), so a
    document's budget is ``max_tokens`` less its title's tokens (+1), keeping at least half of it
    (a longer title is cut by the encoder's truncation instead of the text)."""
    _check(tokenizer, max_tokens, overlap)
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= batch_size:
            yield from _chunk_batch(batch, tokenizer, max_tokens, overlap, with_title)
            batch = []
    yield from _chunk_batch(batch, tokenizer, max_tokens, overlap, with_title)


def _chunk_batch(batch: list[Document], tokenizer: Tokenizer, max_tokens: int, overlap: int,
                 with_title: bool = False) -> Iterator[Document]:
    short = [d.text for d in batch if len(d.text) <= PIECE_CHARS]
    encs = iter(tokenizer.encode_batch(short, add_special_tokens=False)) if short else iter(())
    budgets = [max_tokens] * len(batch)
    if with_title:
        titled = [i for i, d in enumerate(batch) if d.title and d.title.strip()]
        if titled:
            lengths = tokenizer.encode_batch([batch[i].title for i in titled], add_special_tokens=False)
            for i, t in zip(titled, lengths):
                budgets[i] = max(max_tokens - len(t) - 1, max_tokens // 2, 1)
    for d, budget in zip(batch, budgets):
        enc = next(encs) if len(d.text) <= PIECE_CHARS else None
        yield from _split(d, _encode(tokenizer, d.text, enc), budget,
                          overlap if budget == max_tokens else min(overlap, budget // 2))


# -- the ingest pipeline's chunkers: documents -> rows (id, parent_id, title, text, metadata JSON) -------

Chunk = tuple  # (id, parent_id, title, text, metadata_json): one passage row for the index writer
Chunker = Callable[[Iterable], Iterator[Chunk]]

DEFAULT_MAX_WORDS = 192      # ~ the default encoder's 254-token window
DEFAULT_OVERLAP_WORDS = 24
_WORD = re.compile(r"\S{1,100}")  # a word; runs of more than 100 non-space characters are cut


def _jstr(s: str) -> str:
    """``json.dumps`` of a string, without the encoder's overhead for plain ids."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return json.dumps(s, ensure_ascii=False)


def _meta(metadata: dict, parent: str, index: int, start: int, end: int) -> str:
    """The passage metadata as JSON: the document's plus ``parent_id``, ``chunk_index``,
    ``char_start``, ``char_end`` (as :func:`chunk_document` sets them)."""
    tail = f'"parent_id": {_jstr(parent)}, "chunk_index": {index}, "char_start": {start}, "char_end": {end}}}'
    if not metadata:
        return "{" + tail
    if any(k in metadata for k in PROVENANCE):
        return json.dumps(provenance(metadata, parent, index, start, end), ensure_ascii=False, default=str)
    return json.dumps(metadata, ensure_ascii=False, default=str)[:-1] + ", " + tail


def chunk_words(doc, max_words: int = DEFAULT_MAX_WORDS, overlap: int = DEFAULT_OVERLAP_WORDS) -> list[Chunk]:
    """Split ``doc`` into passages of at most ``max_words`` words sharing ``overlap`` words.

    The word-count variant of :func:`chunk_document` (same ids ``docid#n``, same
    metadata ``parent_id``, ``chunk_index``, ``char_start``, ``char_end``, text an exact slice),
    used when there is no encoder tokenizer (BM25-only indexes)."""
    text = doc.text
    if (len(text) + 1) // 2 <= max_words or (len(text) <= 32 * max_words and len(text.split()) <= max_words):
        return [(doc.id, doc.id, doc.title, text, _meta(doc.metadata, doc.id, 0, 0, len(text)))]
    spans = [m.span() for m in _WORD.finditer(text)]
    if len(spans) <= max_words and len(text) <= 100 * max_words:
        return [(doc.id, doc.id, doc.title, text, _meta(doc.metadata, doc.id, 0, 0, len(text)))]
    out: list[Chunk] = []
    step, i = max(1, max_words - overlap), 0
    while True:
        j = min(i + max_words, len(spans))
        a, b = spans[i][0], spans[j - 1][1]
        n = len(out)
        out.append((f"{doc.id}#{n}", doc.id, doc.title, text[a:b], _meta(doc.metadata, doc.id, n, a, b)))
        if j >= len(spans):
            return out
        i += step


def whole_documents() -> tuple[Chunker, dict[str, Any]]:
    """No chunking: one passage per document with the document's id (the published BEIR/MS MARCO
    protocol: BM25 over the whole title + text; the encoder truncates at its own max length)."""

    def chunk(docs: Iterable) -> Iterator[Chunk]:
        for doc in docs:
            yield (doc.id, doc.id, doc.title, doc.text, _meta(doc.metadata, doc.id, 0, 0, len(doc.text)))

    return chunk, {"chunker": "none"}


def token_chunker(encoder, max_tokens: int | None, overlap: int,
                  with_title: bool = False) -> tuple[Chunker, dict[str, Any]]:
    """Token-aware chunking with the encoder's own tokenizer: windows of ``max_tokens`` (default:
    the encoder's own window) minus special tokens and the passage prefix; and the settings to record.
    ``with_title``: each document's window also leaves room for its title (encoded with every chunk)."""
    m = encoder.manifest
    tokenizer = load_tokenizer(Path(encoder.model_dir) / "tokenizer.json")
    prefix = len(tokenizer.encode(m.passage_prefix or "", add_special_tokens=False).ids)
    budget = max(16, (max_tokens or m.max_length) - 2 - prefix)
    overlap = min(overlap, budget // 2)

    def chunk(docs: Iterable) -> Iterator[Chunk]:
        for c in chunk_documents(docs, tokenizer, max_tokens=budget, overlap=overlap, with_title=with_title):
            meta = c.metadata
            yield (c.id, meta.get("parent_id", c.id), c.title, c.text,
                   json.dumps(meta, ensure_ascii=False, default=str))

    return chunk, {"chunker": "tokens", "max_tokens": budget, "overlap": overlap}


def word_chunker(max_words: int, overlap: int) -> tuple[Chunker, dict[str, Any]]:
    """Word-count chunking (:func:`chunk_words`) for BM25-only indexes: no tokenizer pass."""
    overlap = min(overlap, max_words // 2)

    def chunk(docs: Iterable) -> Iterator[Chunk]:
        for doc in docs:
            yield from chunk_words(doc, max_words, overlap)

    return chunk, {"chunker": "words", "max_words": max_words, "overlap": overlap}
