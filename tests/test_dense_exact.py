"""The dense view's exact scan (small indexes) against the HNSW graph and numpy brute force."""

import numpy as np

from lucerag.index.reader import LuceneIndex
from lucerag.index.writer import IndexWriter
from lucerag.search.searchers import EXACT_BELOW, DenseSearcher, auto_exact


def _index(tmp_path, n=600, dim=24, delete=()):
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(n)]
    with IndexWriter(tmp_path / "idx", dim=dim, hnsw_m=4, hnsw_beam=8) as w:
        w.add_batch(ids, [f"text {i}" for i in range(n)], vecs)
    if delete:
        with IndexWriter(tmp_path / "idx", mode="append") as w:
            w.delete([ids[i] for i in delete])
    return LuceneIndex(tmp_path / "idx"), ids, vecs


def test_exact_scan_is_numpy_brute_force(tmp_path):
    """Below the threshold the scan is chosen; its top k and scores are numpy's, to float precision,
    and the fill-in scores of candidates come from the same matrix."""
    index, ids, vecs = _index(tmp_path)
    exact = DenseSearcher(index)
    assert exact.exact is True and auto_exact(EXACT_BELOW - 1) and not auto_exact(EXACT_BELOW)
    rng = np.random.default_rng(9)
    for _ in range(20):
        q = rng.normal(size=vecs.shape[1]).astype(np.float32)
        q /= np.linalg.norm(q)
        truth = np.argsort(-(vecs @ q), kind="stable")[:50]
        hits = exact.search(q, 50)
        assert hits.ids == [ids[i] for i in truth]
        assert np.allclose(hits.scores, (vecs @ q)[truth], atol=1e-5)
        assert np.allclose(exact.score(q, hits.docnums[:5]), hits.scores[:5], atol=1e-5)


def test_exact_scan_skips_deleted_passages(tmp_path):
    index, ids, vecs = _index(tmp_path, delete=(0, 1, 2))
    searcher = DenseSearcher(index, exact=True)
    hits = searcher.search(vecs[0], 10)
    assert not {"d0", "d1", "d2"} & set(hits.ids)
    assert len(searcher.search(vecs[5], 10_000)) == len(ids) - 3
    assert searcher.search(vecs[5], 1).ids == ["d5"]


def test_exact_configurable(tmp_path):
    from lucerag.config import Config

    index, _, _ = _index(tmp_path, n=50)
    index.close()
    assert Config.for_index(tmp_path / "idx").dense.exact is None
    from lucerag.search.retriever import Retriever

    with Retriever.from_index(tmp_path / "idx", dense={"exact": False}) as r:
        assert r.dense.exact is False
    with Retriever.from_index(tmp_path / "idx") as r:
        assert r.dense.exact is True
