"""Importing pre-encoded vectors (Pyserini/Anserini JsonDenseVectorCollection): JSONL, JSONL.gz and
Parquet, text inline or from a separate corpus; searches must agree with an index lucerag encoded."""

import json
import random

import numpy as np
import pytest
from conftest import DL19_SLICE, MINI_BEIR, mini_documents, needs_shared
from lucerag.ingest.vectors import (
    VectorFormatError,
    export_vectors,
    import_vectors,
    read_vectors,
)
from lucerag.search.retriever import Retriever
from typer.testing import CliRunner

QUERIES = [json.loads(x)["text"] for x in (MINI_BEIR / "queries.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def mini_vectors(encoder):
    from lucerag.ingest.pipeline import dense_passage_text

    docs = mini_documents()  # encoded as build_index encodes them (title + text), to compare the two indexes
    return docs, encoder.encode_passages([dense_passage_text(d.title, d.text) for d in docs])


def _same_rankings(a, b, encoder, queries, methods=("bm25", "dense", "hybrid"), k=10):
    with Retriever.from_index(a, encoder=encoder) as ra, Retriever.from_index(b, encoder=encoder) as rb:
        for q in queries:
            for m in methods:
                x, y = ra.rank(q, m, k), rb.rank(q, m, k)
                assert x.ids == y.ids, (q, m)
                np.testing.assert_allclose(x.scores, y.scores, rtol=1e-4, atol=1e-5)


def test_jsonl_gz_with_inline_text_matches_the_encoded_index(mini_vectors, mini_index, encoder, tmp_path):
    docs, vectors = mini_vectors
    path = tmp_path / "vectors.jsonl.gz"
    # Unnormalised on purpose (x3): the import must normalise for DOT_PRODUCT, and say so.
    export_vectors(((d.id, v * 3.0, d.text) for d, v in zip(docs, vectors)), path, id_key="docid")
    assert next(read_vectors(path)).id == docs[0].id
    report = import_vectors(path, tmp_path / "idx", corpus=MINI_BEIR / "corpus.jsonl", model="default")
    assert report.passages == 25 and report.dim == 384 and report.normalised == 25
    assert any("normalised" in w for w in report.warnings)
    _same_rankings(mini_index, tmp_path / "idx", encoder, QUERIES)
    manifest = json.loads((tmp_path / "idx" / "lucerag.json").read_text())
    assert manifest["encoder"] == "all-MiniLM-L6-v2" and manifest["dim"] == 384


def test_parquet_without_text_joins_a_shuffled_corpus(mini_vectors, mini_index, encoder, tmp_path):
    docs, vectors = mini_vectors
    path = tmp_path / "vectors.parquet"
    export_vectors(((d.id, v, d.text) for d, v in zip(docs, vectors)), path, with_contents=False, id_key="docid")
    shuffled = (MINI_BEIR / "corpus.jsonl").read_text().splitlines()
    random.Random(3).shuffle(shuffled)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(shuffled) + "\n")
    out = CliRunner().invoke(__import__("lucerag.cli", fromlist=["app"]).app,
                             ["import-vectors", "--input", str(path), "--index", str(tmp_path / "idx"),
                              "--corpus", str(corpus), "--model", "default", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["passages"] == 25 and report["text_from_corpus"] == 25 and report["normalised"] == 0
    _same_rankings(mini_index, tmp_path / "idx", encoder, QUERIES)


def test_clear_errors(mini_vectors, tmp_path):
    docs, vectors = mini_vectors
    bare = tmp_path / "bare.jsonl"
    export_vectors(((d.id, v, d.text) for d, v in zip(docs, vectors)), bare, with_contents=False)
    with pytest.raises(VectorFormatError, match="pass --corpus"):
        import_vectors(bare, tmp_path / "idx")
    assert not (tmp_path / "idx").exists()  # nothing published
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "vector": [0.1, 0.2], "contents": "x"}\n{"id": "b", "vector": [0.1], "contents": "y"}\n')
    with pytest.raises(VectorFormatError, match="dimensions"):
        import_vectors(bad, tmp_path / "idx")
    bad.write_text('{"id": "a", "contents": "x"}\n')
    with pytest.raises(VectorFormatError, match="line 1"):
        import_vectors(bad, tmp_path / "idx")
    with pytest.raises(VectorFormatError, match="384"):  # the encoder's dimension is 384
        bad.write_text('{"id": "a", "vector": [0.6, 0.8], "contents": "x"}\n')
        import_vectors(bad, tmp_path / "idx", model="default")


@needs_shared(DL19_SLICE)
def test_slice_vectors_reimported_from_parquet_with_a_separate_corpus(dl19_index, encoder, tmp_path):
    """Export the slice's vectors as Anserini's Parquet (docid, vector), re-import them with the text
    from the slice corpus, and search both indexes with the 43 judged DL19 queries."""
    from lucerag.bench.query import all_vectors
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries
    from lucerag.index.reader import LuceneIndex

    index = LuceneIndex(dl19_index)
    try:
        vectors = all_vectors(index)
        ids = index.ids(range(len(vectors)))
    finally:
        index.close()
    path = tmp_path / "dl19.parquet"
    export_vectors(((i, v, "") for i, v in zip(ids, vectors)), path, with_contents=False, id_key="docid")
    report = import_vectors(path, tmp_path / "idx", corpus=DL19_SLICE / "corpus.jsonl", model="default")
    assert report.passages == 5000 and report.normalised == 0
    qrels = read_beir_qrels(DL19_SLICE)
    queries = [t for q, t in read_beir_queries(DL19_SLICE).items() if q in qrels]
    _same_rankings(dl19_index, tmp_path / "idx", encoder, queries, k=10)


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_an_all_zero_vector_is_refused_naming_file_line_and_id(tmp_path, suffix):
    """Issue 15 item 15: as a NaN is (no direction: it cannot be normalised for cosine search)."""
    rows = [("a", np.ones(4, np.float32), "first"), ("zero-id", np.zeros(4, np.float32), "second"),
            ("c", np.ones(4, np.float32), "third")]
    path = tmp_path / f"v.{suffix}"
    export_vectors(rows, path)
    where = "line 2" if suffix == "jsonl" else "row 2"
    with pytest.raises(VectorFormatError, match=rf"{path}: {where}: the vector of 'zero-id' is all zeros"):
        import_vectors(path, tmp_path / "idx")
    assert not (tmp_path / "idx").exists()
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"id": "n1", "vector": [1, 0], "contents": "x"}\n{"id": "n2", "vector": [NaN, 1], "contents": "y"}\n')
    with pytest.raises(VectorFormatError, match=rf"{nan}: line 2: 'vector' of 'n2'"):
        import_vectors(nan, tmp_path / "idx")
