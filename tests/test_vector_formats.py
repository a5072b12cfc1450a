"""Vectors formats as an index option: float HNSW, int8 scalar-quantised HNSW, 1-bit (BBQ) HNSW
with exact rescoring. Real Lucene indexes of seeded clustered unit vectors (no encoder needed)."""

from __future__ import annotations

import numpy as np
import pytest

N, DIM, K = 2000, 128, 10


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    """Clustered unit vectors (closer to text embeddings than uniform noise) and queries near them.
    1-bit graph scores rank these poorly (recall@10 ~0.3); exact rescoring of 300 candidates restores it."""
    rng = np.random.default_rng(13)
    centres = rng.standard_normal((40, DIM))
    vectors = _unit(centres[rng.integers(0, 40, N)] + 0.9 * rng.standard_normal((N, DIM)))
    queries = _unit(vectors[rng.integers(0, N, 30)] + 0.5 * rng.standard_normal((30, DIM)))
    return [f"v{i}" for i in range(N)], vectors, queries


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, data):
    from lucerag.index.writer import IndexWriter

    ids, vectors, _ = data
    root = tmp_path_factory.mktemp("formats")
    for fmt in ("float", "int8", "bbq"):
        with IndexWriter(root / fmt, dim=DIM, vector_format=fmt, hnsw_m=16, hnsw_beam=100, graph_from=0) as writer:
            writer.add_batch(ids, [f"passage {i}" for i in range(N)], vectors)
    return root


def _recall(searcher, vectors, queries) -> float:
    found = []
    for q in queries:
        exact = {f"v{i}" for i in np.argsort(-(vectors @ q))[:K]}
        found.append(len(exact & set(searcher.search(q, K).ids)) / K)
    return float(np.mean(found))


def test_format_is_recorded_and_written(indexes):
    from lucerag.index.reader import LuceneIndex

    names = {}
    for fmt in ("float", "int8", "bbq"):
        index = LuceneIndex(indexes / fmt)
        assert index.manifest.vector_format == fmt
        names[fmt] = index.vectors_format
        index.close()
    assert names["float"] == "Lucene99HnswVectorsFormat"
    # Lucene 10.4+ writes int8 and 1-bit vectors with one format (encoding kept in its metadata)
    assert names["int8"] == names["bbq"] == "Lucene104HnswBinaryQuantizedVectorsFormat"


@pytest.mark.parametrize("fmt", ["float", "int8", "bbq"])
def test_quantised_formats_keep_the_float_vectors(indexes, data, fmt):
    from lucerag.index.reader import LuceneIndex

    ids, vectors, _ = data
    index = LuceneIndex(indexes / fmt)
    docnums = index.docnums(["v0", "v7", "v1999"])
    stored = index.vectors([docnums["v0"], docnums["v7"], docnums["v1999"]])
    np.testing.assert_array_equal(stored, vectors[[0, 7, 1999]])
    index.close()


def test_recall_per_format_and_bbq_rescoring(indexes, data):
    from lucerag.index.reader import LuceneIndex
    from lucerag.search.searchers import DenseSearcher

    _, vectors, queries = data
    recall = {}
    for fmt in ("float", "int8", "bbq"):
        index = LuceneIndex(indexes / fmt)
        searcher = DenseSearcher(index, ef_search=300, exact=False)  # the graph of each format
        assert searcher.rescore == (fmt != "float")  # on by default for quantised vectors
        recall[fmt] = _recall(searcher, vectors, queries)
        if fmt == "bbq":
            recall["bbq-raw"] = _recall(DenseSearcher(index, ef_search=300, rescore=False, exact=False), vectors, queries)
            hits = searcher.search(queries[0], K)  # rescored scores are exact cosines
            exact = vectors[[int(i[1:]) for i in hits.ids]] @ queries[0]
            np.testing.assert_allclose(hits.scores, exact, atol=1e-5)
            assert np.all(np.diff(hits.scores) <= 1e-7)
    assert recall["float"] >= 0.95 and recall["int8"] >= 0.9, recall
    assert recall["bbq"] >= 0.9 and recall["bbq"] > recall["bbq-raw"] + 0.1, recall


def test_append_keeps_the_format_and_refuses_another(indexes, data, tmp_path):
    import shutil

    from lucerag.index.reader import LuceneIndex
    from lucerag.index.writer import IndexWriter

    _, vectors, _ = data
    path = tmp_path / "bbq"
    shutil.copytree(indexes / "bbq", path)
    with pytest.raises(ValueError, match="holds bbq vectors"):
        IndexWriter(path, mode="append", vector_format="float")
    with IndexWriter(path, mode="append") as writer:
        writer.add_batch(["new"], ["a new passage"], vectors[:1])
    index = LuceneIndex(path)
    assert index.manifest.vector_format == "bbq" and index.size == N + 1
    assert index.vectors_format == "Lucene104HnswBinaryQuantizedVectorsFormat"
    index.close()


def test_unknown_format_is_refused(tmp_path):
    from lucerag.index.writer import IndexWriter

    with pytest.raises(ValueError, match="vector_format must be one of float, int8, bbq"):
        IndexWriter(tmp_path / "x", vector_format="int4")
