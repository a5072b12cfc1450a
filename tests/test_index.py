"""The one-index layout: both views, written in one commit, readable by Anserini's own searchers."""

import json

import numpy as np
import pytest

from conftest import mini_documents
from lucerag.index.reader import IndexNotFoundError, IndexTooNewError, LuceneIndex
from lucerag.index.writer import IndexWriter


def _all_ids(index: LuceneIndex) -> set[str]:
    return set(index.ids(range(index.reader.maxDoc())))


def test_both_views_hold_the_same_ids(mini_index, encoder):
    index = LuceneIndex(mini_index)
    expected = {d.id for d in mini_documents()}
    assert _all_ids(index) == expected
    assert index.dim == encoder.dim == index.manifest.dim
    docnums = list(range(index.reader.maxDoc()))
    vectors = index.vectors(docnums)  # raises if any passage lacks a vector
    assert vectors.shape == (len(expected), encoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert index.manifest.encoder == encoder.manifest.name
    assert index.manifest.passages == len(expected)


def test_stored_vectors_are_the_encoder_output(mini_index, encoder):
    index = LuceneIndex(mini_index)
    doc = mini_documents()[0]
    docnum = index.docnums([doc.id])[doc.id]
    from lucerag.ingest.pipeline import dense_passage_text

    # a new index encodes title + text, as BEIR/MTEB do (its manifest says so)
    assert index.manifest.dense_text == "title+text"
    expected = encoder.encode_passages([dense_passage_text(doc.title, doc.text)])[0]
    assert float(index.vectors([docnum])[0] @ expected) > 0.9999


def test_anserini_searchers_read_the_index(mini_index, encoder):
    """Anserini's BM25 searcher reads lucerag's index; the dense view is read with Lucene's own
    KnnFloatVectorQuery on Anserini's field name ("vector"). Anserini 2.3's HnswDenseSearcher is
    not used: its constructor looks the path up among prebuilt indexes over the network, even
    for a local index."""
    from lucerag.lucene import jvm
    from lucerag.lucene.classes import java

    simple = jvm.jclass("io.anserini.search.SimpleSearcher")(str(mini_index))
    hits = simple.search("volcano magma erupts", 3)
    assert hits[0].docid == "p03"
    simple.close()
    index = LuceneIndex(mini_index)
    vector = encoder.encode_query("why does a volcano erupt")
    query = java.KnnFloatVectorQuery("vector", [float(x) for x in vector], 3)
    top = index.searcher.search(query, 3)
    assert index.ids([top.scoreDocs[0].doc]) == ["p03"]
    assert top.totalHits.value() >= 3  # TotalHits.value is a method in Lucene 10
    index.close()


def test_record_keeps_title_and_text(mini_index):
    index = LuceneIndex(mini_index)
    record = index.record(index.docnums(["p05"])["p05"])
    assert record["title"] == "Sourdough"
    assert record["contents"].startswith("Sourdough bread rises")


def test_failed_build_leaves_previous_index_untouched(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add_batch(["a", "b"], ["first text", "second text"])
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(RuntimeError):
        with IndexWriter(path) as w:
            w.add_batch(["c"], ["replacement"])
            raise RuntimeError("crash mid-build")
    assert sorted(p.name for p in path.iterdir()) == before
    assert _all_ids(LuceneIndex(path)) == {"a", "b"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx.")]  # no leftovers


def test_append_upserts_by_id(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add_batch(["a", "b"], ["old text about cats", "text about dogs"])
    with IndexWriter(path, mode="append") as w:
        w.add_batch(["a", "c"], ["new text about birds", "text about fish"])
        w.delete(["b"])
    index = LuceneIndex(path)
    assert _all_ids(index) == {"a", "c"} and index.size == 2
    assert index.record(index.docnums(["a"])["a"])["contents"] == "new text about birds"


def test_vector_dimension_mismatch_is_named(tmp_path):
    with IndexWriter(tmp_path / "idx", dim=4) as w:
        with pytest.raises(ValueError, match=r"expected \(1, 4\)"):
            w.add_batch(["a"], ["x"], np.ones((1, 3), np.float32))
        w.add_batch(["b"], ["y"], np.ones((1, 4), np.float32) / 2)


def test_empty_id_is_rejected(tmp_path):
    with IndexWriter(tmp_path / "idx") as w:
        with pytest.raises(ValueError, match="non-empty string"):
            w.add_batch([""], ["text"])


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="no Lucene index at"):
        LuceneIndex(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match="no Lucene index at"):
        LuceneIndex(tmp_path / "empty")


def test_corrupt_index_is_a_clear_error(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add_batch(["a"], ["text"])
    for f in path.glob("segments_*"):
        f.write_bytes(b"garbage")
    with pytest.raises(IndexNotFoundError, match="cannot open Lucene index"):
        LuceneIndex(path)


def test_newer_lucene_index_is_explained(tmp_path):
    """A segments file from a newer Lucene (as Anserini >= 2 writes) gets a clear message."""
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add_batch(["a"], ["text"])
    segments = next(path.glob("segments_*"))
    data = bytearray(segments.read_bytes())
    # codec header: magic (4 bytes), name length (1) + "segments" (8), then the format version (4)
    assert data[5:13] == b"segments"
    data[13:17] = (99).to_bytes(4, "big")
    segments.write_bytes(bytes(data))
    with pytest.raises(IndexTooNewError, match="newer than the Lucene 10"):
        LuceneIndex(path)


def test_segments_below_graph_from_get_no_graph_and_are_searched_exactly(tmp_path):
    """graph_from: a smaller segment is written without an HNSW graph (no graph-building time) and
    Lucene's kNN search scores all of its vectors; graph_from=0 builds a graph for any segment."""
    from lucerag.search.searchers import DenseSearcher

    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(400, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(400)]
    for name, graph_from in (("flat", 10_000), ("graph", 0)):
        with IndexWriter(tmp_path / name, dim=16, hnsw_m=4, hnsw_beam=8, graph_from=graph_from) as w:
            w.add_batch(ids, [f"text {i}" for i in range(400)], vecs)
    flat, graph = LuceneIndex(tmp_path / "flat"), LuceneIndex(tmp_path / "graph")
    assert (flat.graph_nodes(), graph.graph_nodes()) == (0, 400)
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        truth = [ids[i] for i in np.argsort(-(vecs @ q), kind="stable")[:20]]
        assert DenseSearcher(flat, exact=False).search(q, 20).ids == truth
    with pytest.raises(ValueError, match="graph_from"):
        IndexWriter(tmp_path / "bad", graph_from=-1)
    flat.close()
    graph.close()


def test_fresh_build_is_merged_into_one_segment_whose_graph_merge_workers_build(tmp_path):
    """A fresh build of at least graph_from passages ends as one segment holding one HNSW graph,
    built at close by merge_workers threads (several flushed segments included); the commit keeps
    its manifest, the graph finds every passage, and no build folder is left behind. Fewer passages
    than graph_from keep their segments, without a graph."""
    from lucerag.search.searchers import DenseSearcher

    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(600, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(600)]
    for name, workers, graph_from in (("two", 2, 500), ("one", 1, 500), ("few", 2, 601)):
        with IndexWriter(tmp_path / name, dim=16, hnsw_m=8, hnsw_beam=32, graph_from=graph_from,
                         merge_workers=workers, ram_buffer_mb=0.2) as w:
            for a in range(0, 600, 100):  # a small RAM buffer: Lucene flushes several segments
                w.add_batch(ids[a:a + 100], [f"text {i}" for i in range(a, a + 100)], vecs[a:a + 100])
        assert w.merge_workers == workers
        index = LuceneIndex(tmp_path / name)
        segments = int(index.reader.leaves().size())
        if name == "few":
            assert segments > 1 and index.graph_nodes() == 0
        else:
            assert segments == 1 and index.graph_nodes() == 600
            data = index.reader.getIndexCommit().getUserData()
            assert json.loads(str(data.get("lucerag.manifest")))["dim"] == 16
            searcher = DenseSearcher(index, exact=False)
            for i in (0, 299, 599):
                assert searcher.search(vecs[i], 3).ids[0] == ids[i]
        assert index.manifest.passages == 600
        index.close()
    # a build above segment_max: consecutive segments merged up to that many passages each, every
    # one with its graph, in the order the passages were added
    with IndexWriter(tmp_path / "capped", dim=16, hnsw_m=8, hnsw_beam=32, graph_from=50, segment_max=250,
                     ram_buffer_mb=0.2) as w:
        for a in range(0, 600, 100):
            w.add_batch(ids[a:a + 100], [f"text {i}" for i in range(a, a + 100)], vecs[a:a + 100])
    assert w.segment_max == 250
    index = LuceneIndex(tmp_path / "capped")
    sizes = [int(leaf.reader().maxDoc()) for leaf in index.reader.leaves()]
    assert len(sizes) > 1 and sum(sizes) == 600 and index.graph_nodes() == 600
    assert index.ids(list(range(600))) == ids
    index.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capped", "few", "one", "two"]
    with pytest.raises(ValueError, match="merge_workers"):
        IndexWriter(tmp_path / "bad", merge_workers=0)
    with pytest.raises(ValueError, match="segment_max"):
        IndexWriter(tmp_path / "bad", segment_max=0)


def test_hnsw_graph_settings_and_default_beam(tmp_path):
    """The writer builds the HNSW graph with the given M / beam width; any reader opens it, and a
    searcher without a configured beam width picks one from the index size."""
    from lucerag.search.searchers import DenseSearcher, auto_ef_search

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(300)]
    with IndexWriter(tmp_path / "idx", dim=16, hnsw_m=4, hnsw_beam=8) as w:
        w.add_batch(ids, [f"text {i}" for i in range(300)], vecs)
    searcher = DenseSearcher(LuceneIndex(tmp_path / "idx"), exact=False)
    assert searcher.ef_search == auto_ef_search(300) == 400
    assert auto_ef_search(100_000) == 800
    # the beam follows k as well as the index size: never under 2k, a configured one never under k
    assert searcher.beam(10) == 400 and searcher.beam(1000) == auto_ef_search(300, 1000) == 2000
    assert DenseSearcher(LuceneIndex(tmp_path / "idx"), ef_search=50, exact=False).beam(80) == 80
    for i in (0, 150, 299):
        hits = searcher.search(vecs[i], 5)
        assert hits.ids[0] == ids[i] and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="hnsw_m"):
        IndexWriter(tmp_path / "bad", hnsw_m=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # nothing left behind


def test_records_in_one_bridge_call_match_record(mini_index):
    """A result page's stored records come back in one call, in the order asked, equal to one-by-one reads."""
    index = LuceneIndex(mini_index)
    docnums = [3, 0, 2, 3]
    assert index.records(docnums) == [index.record(d) for d in docnums]
    assert [r["id"] for r in index.records(docnums)] == index.ids(docnums)
    assert index.records([]) == []


def test_merge_into_groups_consecutive_segments_up_to_max_docs(tmp_path):
    """Bridge.mergeInto: consecutive segments merged together while they hold at most maxDocs
    documents (a larger one alone), each new segment with its graph, order and commit data kept."""
    from lucerag.index.writer import _hnsw_codec
    from lucerag.lucene.classes import java

    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(600, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(600)]
    src = tmp_path / "src"
    sizes = [100, 100, 100, 300]  # one commit per batch: four segments (too few for Lucene to merge)
    start = 0
    for i, n in enumerate(sizes):
        with IndexWriter(src, mode="create" if i == 0 else "append", dim=8, graph_from=10_000,
                         single_segment=False) as w:
            w.add_batch(ids[start:start + n], [f"t {j}" for j in range(start, start + n)], vecs[start:start + n])
        start += n
    before = LuceneIndex(src)
    assert [int(leaf.reader().maxDoc()) for leaf in before.reader.leaves()] == sizes
    before.close()
    dirs = [java.FSDirectory.open(java.File(str(p)).toPath()) for p in (src, tmp_path / "dst")]
    groups = java.Bridge.mergeInto(dirs[0], dirs[1], _hnsw_codec(4, 16, graph_from=0), 250)
    for d in dirs:
        d.close()
    merged = LuceneIndex(tmp_path / "dst")
    assert groups == 3 and [int(leaf.reader().maxDoc()) for leaf in merged.reader.leaves()] == [200, 100, 300]
    assert merged.graph_nodes() == 600 and merged.ids(list(range(600))) == ids
    data = merged.reader.getIndexCommit().getUserData()
    assert json.loads(str(data.get("lucerag.manifest")))["dim"] == 8
    merged.close()


def test_merged_build_of_many_groups_keeps_every_segment_within_segment_max(tmp_path):
    """A fresh build of many more than ten groups of segment_max passages: Lucene's merge policy must
    not merge the groups back together (one segment above segment_max is a graph larger than the heap
    was sized for)."""
    rng = np.random.default_rng(4)
    n = 3000
    vecs = rng.normal(size=(n, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(n)]
    with IndexWriter(tmp_path / "many", dim=8, hnsw_m=4, hnsw_beam=16, graph_from=50, segment_max=200,
                     ram_buffer_mb=0.1) as w:
        for a in range(0, n, 50):
            w.add_batch(ids[a:a + 50], [f"t {i}" for i in range(a, a + 50)], vecs[a:a + 50])
    index = LuceneIndex(tmp_path / "many")
    sizes = [int(leaf.reader().maxDoc()) for leaf in index.reader.leaves()]
    assert len(sizes) >= 10 and sum(sizes) == n and max(sizes) <= 200, sizes
    assert index.ids(list(range(n))) == ids and index.graph_nodes() == n
    index.close()
    with IndexWriter(tmp_path / "huge", dim=8, segment_max=2**40) as w:  # more than Lucene's int counts
        w.add_batch(["a"], ["t"], vecs[:1])
    assert LuceneIndex(tmp_path / "huge").manifest.passages == 1


def test_graph_build_heartbeat_says_what_runs_and_for_how_long(caplog):
    """A long graph build is never silent: a line every `every` seconds while it runs, one when it
    ends; a call shorter than `every` prints nothing."""
    import time

    import logging

    from lucerag.progress import Heartbeat

    caplog.set_level("INFO", logger="lucerag.index")
    with Heartbeat("HNSW graph of 9 passages", logging.getLogger("lucerag.index"), every=0.05) as beat:
        time.sleep(0.18)
    assert len(beat.lines) >= 3 and all(line.startswith("HNSW graph of 9 passages: ") for line in beat.lines)
    assert "building" in beat.lines[0] and "built in" in beat.lines[-1]
    assert [r.getMessage() for r in caplog.records if r.name == "lucerag.index"] == beat.lines
    with Heartbeat("quick", logging.getLogger("lucerag.index"), every=5.0) as quick:
        pass
    assert quick.lines == []
