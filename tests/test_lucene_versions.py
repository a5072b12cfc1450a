"""Indexes from other Lucene versions and writers, opened by lucerag on Lucene 10.

* a lucerag index written by Lucene 9.9.1 (committed fixture, tests/data/lucene9): same results;
* Anserini 2.x indexes built here by Anserini's own indexers (IndexCollection for BM25,
  IndexHnswDenseVectors for float and int8 HNSW), searched through lucerag: BM25, dense, hybrid;
* an index from a future Lucene: a typed error naming both versions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, MINI_BEIR

LUCENE9 = DATA / "lucene9"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("write.lock"))
    return dst


def _exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(vectors @ query), kind="stable")[:k].tolist()


# ---------------------------------------------------------------- Lucene 9.9.1 lucerag index

def test_lucene9_index_gives_the_results_lucene9_gave(tmp_path):
    from lucerag.index.reader import LuceneIndex, segments_versions
    from lucerag.search.searchers import BM25Searcher, DenseSearcher

    path = _copy(LUCENE9 / "index", tmp_path / "lucene9")
    expected = json.loads((LUCENE9 / "expected.json").read_text())
    assert expected["lucene"] == "9.9.1"
    assert segments_versions(path) == ((9, 9, 1), 9)
    index = LuceneIndex(path)
    assert index.manifest.vector_format == "float"  # written before the option existed
    bm25, dense = BM25Searcher(index), DenseSearcher(index, ef_search=50, exact=False)
    for query, hits in expected["bm25"].items():
        got = bm25.search(query, 5)
        assert got.ids == [h[0] for h in hits], query
        np.testing.assert_allclose(got.scores, [h[1] for h in hits], rtol=1e-6)
    for case in expected["dense"]:
        got = dense.search(np.asarray(case["vector"], np.float32), 5)
        assert got.ids == [h[0] for h in case["hits"]]
        np.testing.assert_allclose(got.scores, [h[1] for h in case["hits"]], atol=1e-6)
    assert index.record(index.docnums(["p05"])["p05"])["title"] == "Sourdough"
    index.close()


def test_lucene9_index_through_the_retriever(tmp_path):
    from lucerag.search.retriever import Retriever

    path = _copy(LUCENE9 / "index", tmp_path / "lucene9")
    with Retriever.from_index(path) as retriever:
        passages = retriever.search("why does a volcano erupt", k=2, method="bm25")
    assert [p.id for p in passages] == ["p03", "p25"]


# ---------------------------------------------------------------- future Lucene

def _future_copy(src: Path, dst: Path, major: int) -> Path:
    """A copy of ``src`` whose commit claims to be written and created by Lucene ``major``.0.0
    (the header's version vInts patched, the checksum footer recomputed)."""
    from lucerag.index.reader import segments_versions

    path = _copy(src, dst)
    segments = max(path.glob("segments_*"))
    data = bytearray(segments.read_bytes())
    (written, created) = segments_versions(path)
    pos = 4 + 1 + data[4] + 4 + 16
    pos += 1 + data[pos]
    assert list(data[pos:pos + 4]) == [*written, created] and max(written + (created,)) < 128
    data[pos:pos + 4] = bytes([major, 0, 0, major])
    data[-8:] = zlib.crc32(bytes(data[:-8])).to_bytes(8, "big")
    segments.write_bytes(bytes(data))
    assert segments_versions(path) == ((major, 0, 0), major)
    return path


def test_index_from_a_newer_lucene_names_both_versions(tmp_path):
    """Lucene answers an index created by a later major version with an IllegalArgumentException
    ("indexCreatedVersionMajor is in the future"); lucerag turns it into IndexTooNewError."""
    from lucerag.index.reader import IndexNotFoundError, IndexTooNewError, LuceneIndex
    from lucerag.lucene.classes import java

    path = _future_copy(LUCENE9 / "index", tmp_path / "future", 11)
    with pytest.raises(IndexTooNewError) as info:
        LuceneIndex(path)
    running = str(java.Bridge.luceneVersion())
    assert running.startswith("10.")
    assert info.value.index_version == "11.0.0" and info.value.running_version == running
    assert "Lucene 11.0.0" in str(info.value) and f"Lucene {running}" in str(info.value)
    assert isinstance(info.value, IndexNotFoundError)  # the CLI reports it like a missing index


# ---------------------------------------------------------------- Anserini 2.x indexes

def _anserini(main: str, *args: str) -> None:
    """Run one of the Anserini jar's own command-line tools (offline, in a separate JVM)."""
    from lucerag.lucene import jvm

    home = jvm.find_java_home()
    command = [str(home / "bin" / "java"), *jvm.jvm_options(home, "1g"), "-cp", str(jvm.anserini_jar()),
               main, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _mini_corpus() -> list[dict]:
    return [json.loads(line) for line in (MINI_BEIR / "corpus.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def anserini_indexes(tmp_path_factory, encoder):
    """BM25 (IndexCollection) and HNSW (IndexHnswDenseVectors: float, and int8 with -quantize.sqv)
    indexes of the mini corpus, built by Anserini 2.x; the vectors come from lucerag's encoder."""
    root = tmp_path_factory.mktemp("anserini")
    docs = _mini_corpus()
    texts = [f"{d['title']}\n{d['text']}" if d["title"] else d["text"] for d in docs]  # as lucerag indexes
    (root / "text").mkdir()
    with open(root / "text" / "docs.jsonl", "w") as f:
        for d, text in zip(docs, texts):
            f.write(json.dumps({"id": d["_id"], "contents": text}) + "\n")
    vectors = encoder.encode_passages(texts)
    (root / "vectors").mkdir()
    with open(root / "vectors" / "vectors.jsonl", "w") as f:
        for d, v in zip(docs, vectors):
            f.write(json.dumps({"docid": d["_id"], "vector": v.tolist()}) + "\n")
    _anserini("io.anserini.index.IndexCollection", "-collection", "JsonCollection", "-input", str(root / "text"),
              "-index", str(root / "bm25"), "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1",
              "-storePositions", "-storeDocvectors", "-storeRaw", "-quiet")
    for name, extra in (("hnsw", []), ("hnsw-int8", ["-quantize.sqv"])):
        _anserini("io.anserini.index.IndexHnswDenseVectors", "-collection", "JsonDenseVectorCollection",
                  "-input", str(root / "vectors"), "-index", str(root / name), "-M", "16", "-efC", "100",
                  "-threads", "1", "-quiet", *extra)
    return {"root": root, "ids": [d["_id"] for d in docs], "vectors": vectors}


def test_anserini_indexes_are_lucene_10(anserini_indexes):
    from lucerag.index.reader import segments_versions

    for name in ("bm25", "hnsw", "hnsw-int8"):
        (written, created) = segments_versions(anserini_indexes["root"] / name)
        assert written[0] == 10 and created == 10, name


def test_anserini_bm25_index_matches_lucerags_own(anserini_indexes, mini_index):
    """BM25 over Anserini's IndexCollection index gives the ids and scores of lucerag's own index
    (same analyzer, same text)."""
    from lucerag.index.reader import LuceneIndex
    from lucerag.search.searchers import BM25Searcher

    theirs = BM25Searcher(LuceneIndex(anserini_indexes["root"] / "bm25"))
    ours = BM25Searcher(LuceneIndex(mini_index))
    for query in ("why does a volcano erupt", "sourdough bread rises", "ocean tides and the moon"):
        a, b = theirs.search(query, 10), ours.search(query, 10)
        assert a.ids == b.ids, query
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    assert theirs.index.record(theirs.index.docnums(["p03"])["p03"])["contents"].startswith("Volcano")


@pytest.mark.parametrize("name", ["hnsw", "hnsw-int8"])
def test_anserini_hnsw_index_finds_the_exact_neighbours(anserini_indexes, encoder, name):
    from lucerag.index.reader import LuceneIndex
    from lucerag.search.searchers import DenseSearcher

    index = LuceneIndex(anserini_indexes["root"] / name)
    assert index.manifest is None and index.dim == encoder.dim
    assert index.vectors_format == ("Lucene99HnswVectorsFormat" if name == "hnsw"
                                    else "Lucene104HnswBinaryQuantizedVectorsFormat")
    vectors, ids = anserini_indexes["vectors"], anserini_indexes["ids"]
    for rescore in (False, True):
        searcher = DenseSearcher(index, ef_search=50, rescore=rescore, exact=False)
        for query in ("why does a volcano erupt", "how is bread made", "what causes the tides"):
            q = encoder.encode_query(query)
            hits = searcher.search(q, 5)
            exact = [ids[i] for i in _exact_top(vectors, q, 5)]
            if name == "hnsw" or rescore:
                assert hits.ids == exact, (name, rescore, query)
                np.testing.assert_allclose(hits.scores, np.sort(vectors @ q)[::-1][:5], atol=1e-5)
            else:  # int8 graph scores are estimates: the same top hit, most of the top 5
                assert hits.ids[0] == exact[0] and len(set(hits.ids) & set(exact)) >= 4, (query, hits.ids)


def test_hybrid_over_anserini_bm25_and_hnsw_indexes(anserini_indexes, encoder, tmp_path):
    """The two-index layout (``[index] bm25_path`` / ``dense_path``) over Anserini-built indexes."""
    from lucerag.search.retriever import Retriever

    root = anserini_indexes["root"]
    config = tmp_path / "lucerag.toml"
    config.write_text(f'[index]\nbm25_path = "{root / "bm25"}"\ndense_path = "{root / "hnsw"}"\n'
                      "[filter]\nenabled = false\n")
    with Retriever.from_config(config, encoder=encoder) as two:
        for method in ("bm25", "dense", "hybrid"):
            got = two.search("why does a volcano erupt", k=3, method=method)
            assert got and got[0].id == "p03", method
        hybrid = two.search("how do vaccines train the immune system", k=5, method="hybrid")
    assert hybrid[0].id == "p19"
    assert hybrid[0].text.startswith("Vaccine") or "vaccin" in hybrid[0].text.lower()


def test_anserini_hnsw_index_of_another_dimension_is_refused_by_name(anserini_indexes, encoder, tmp_path):
    """An Anserini HNSW index has no lucerag manifest: a vector dimension other than the encoder's
    is read from Lucene's field info and refused with both dimensions named (it used to fail deep in
    numpy with "operands could not be broadcast together")."""
    from lucerag.errors import EncoderMismatchError
    from lucerag.search.retriever import Retriever

    rng = np.random.default_rng(0)
    (tmp_path / "vectors").mkdir()
    with open(tmp_path / "vectors" / "v.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"docid": f"d{i}", "vector": rng.standard_normal(64).tolist()}) + "\n")
    _anserini("io.anserini.index.IndexHnswDenseVectors", "-collection", "JsonDenseVectorCollection",
              "-input", str(tmp_path / "vectors"), "-index", str(tmp_path / "hnsw64"), "-threads", "1", "-quiet")
    config = tmp_path / "lucerag.toml"
    config.write_text(f'[index]\nbm25_path = "{anserini_indexes["root"] / "bm25"}"\n'
                      f'dense_path = "{tmp_path / "hnsw64"}"\n')
    with Retriever.from_config(config, encoder=encoder) as two:
        for method in ("dense", "hybrid"):
            with pytest.raises(EncoderMismatchError) as info:
                two.search("why does a volcano erupt", k=3, method=method)
            message = str(info.value)
            assert "64-dimensional" in message and f"{encoder.dim}-dimensional" in message
            assert str(tmp_path / "hnsw64") in message
        assert two.search("why does a volcano erupt", k=3, method="bm25")[0].id == "p03"


def test_bm25_ties_are_ordered_as_anserini_orders_them(tmp_path):
    """Equal BM25 scores come in Anserini's order (the id, ascending), and the hits that make the
    cut-off are Anserini's, even when more are tied than lucerag asks Lucene for beyond k. Lucene's
    own order (doc number) gave other ids at the cut on 17 of the 43 DL19 queries."""
    from lucerag.lucene import jvm
    from lucerag.search.retriever import Retriever

    rng = np.random.default_rng(1)
    ids = [f"d{n:03d}" for n in rng.permutation(60)]  # indexed in an order unlike the ids'
    (tmp_path / "text").mkdir()
    with open(tmp_path / "text" / "docs.jsonl", "w") as f:
        for i, pid in enumerate(ids):
            text = "volcano magma ash" if i < 45 else f"volcano lava flows {i}"
            f.write(json.dumps({"id": pid, "contents": text}) + "\n")
    _anserini("io.anserini.index.IndexCollection", "-collection", "JsonCollection", "-input", str(tmp_path / "text"),
              "-index", str(tmp_path / "bm25"), "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1",
              "-storeRaw", "-quiet")
    simple = jvm.jclass("io.anserini.search.SimpleSearcher")(str(tmp_path / "bm25"))
    simple.set_bm25(0.9, 0.4)
    with Retriever.from_index(tmp_path / "bm25") as lucerag:
        for query in ("magma", "volcano", "lava"):
            for k in (1, 3, 10, 50):
                # SimpleSearcher rounds scores to 4 decimals and lowers each tie by 1e-6 (its
                # ScoreTiesAdjusterReranker); the order and the ids are what must agree
                theirs = simple.search(query, k)
                ours = lucerag.search(query, k=k, method="bm25")
                assert [p.id for p in ours] == [h.docid for h in theirs], (query, k)
                np.testing.assert_allclose([p.bm25_score for p in ours], [h.score for h in theirs], atol=1e-4)
    simple.close()


def test_anserini_index_without_stored_text_says_so(anserini_indexes, encoder, tmp_path):
    """An IndexCollection index built without -storeRaw / -storeContents has no passage text: the
    passages come back with empty text and one NoStoredTextWarning names the index and the flags
    (they used to come back empty without a word: empty RAG contexts). Indexes that store text,
    and an HNSW index whose passages are read from the BM25 index by id, give no warning."""
    import warnings

    from lucerag.errors import NoStoredTextWarning
    from lucerag.search.retriever import Retriever

    root = anserini_indexes["root"]
    _anserini("io.anserini.index.IndexCollection", "-collection", "JsonCollection", "-input", str(root / "text"),
              "-index", str(tmp_path / "bm25-noraw"), "-generator", "DefaultLuceneDocumentGenerator",
              "-threads", "1", "-quiet")
    config = tmp_path / "noraw.toml"
    config.write_text(f'[index]\nbm25_path = "{tmp_path / "bm25-noraw"}"\n')
    with Retriever.from_config(config) as bare:
        with pytest.warns(NoStoredTextWarning, match="-storeRaw") as caught:
            got = bare.search("why does a volcano erupt", k=3, method="bm25")
        assert got[0].id == "p03" and all(p.text == "" for p in got)
        assert str(tmp_path / "bm25-noraw") in str(caught[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error", NoStoredTextWarning)  # once per index
            bare.search("sourdough bread", k=3, method="bm25")
    config = tmp_path / "two.toml"
    config.write_text(f'[index]\nbm25_path = "{root / "bm25"}"\ndense_path = "{root / "hnsw"}"\n'
                      "[filter]\nenabled = false\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoStoredTextWarning)
        with Retriever.from_config(config, encoder=encoder) as two:
            for method in ("bm25", "dense", "hybrid"):
                assert two.search("why does a volcano erupt", k=3, method=method)[0].text.startswith("Volcano")


def test_bm25_over_an_index_without_contents_is_refused_by_name(anserini_indexes, encoder, tmp_path):
    """An HNSW index given as the BM25 index (or as the one index) has no ``contents`` field: BM25
    and hybrid searches say so, naming the index, instead of finding nothing ("no passages found")
    or passing dense-only results off as hybrid; dense search still works."""
    from lucerag.errors import UnsupportedError
    from lucerag.search.retriever import Retriever

    hnsw = anserini_indexes["root"] / "hnsw"
    for body in (f'bm25_path = "{hnsw}"\ndense_path = "{hnsw}"', f'path = "{hnsw}"', f'bm25_path = "{hnsw}"'):
        config = tmp_path / "lucerag.toml"
        config.write_text(f"[index]\n{body}\n[filter]\nenabled = false\n")
        with Retriever.from_config(config, encoder=encoder) as retriever:
            for method in ("bm25", "hybrid"):
                with pytest.raises(UnsupportedError, match="has no 'contents' field") as info:
                    retriever.search("why does a volcano erupt", k=3, method=method)
                assert str(hnsw) in str(info.value), body
            if "dense_path" in body or "path =" in body and "bm25_path" not in body:
                assert retriever.search("why does a volcano erupt", k=3, method="dense")[0].id == "p03"


def test_index_folder_still_being_written_is_named_as_such(anserini_indexes, tmp_path):
    """A folder another process is writing (Anserini's IndexCollection before its first commit: a
    write.lock and segment files, no segments_N) is reported as not committed yet, rather than with
    the advice to build an index there with `lucerag index`; nothing in it is touched."""
    from lucerag.errors import IndexNotFoundError
    from lucerag.index.reader import LuceneIndex

    folder = tmp_path / "writing"
    shutil.copytree(anserini_indexes["root"] / "bm25", folder)
    for segments in folder.glob("segments_*"):
        segments.unlink()
    (folder / "write.lock").touch()
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}
    with pytest.raises(IndexNotFoundError, match="no committed Lucene index") as info:
        LuceneIndex(folder)
    assert str(folder) in str(info.value) and "lucerag index" not in str(info.value)
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()} == before


def test_calibrate_writes_nothing_into_anserini_indexes(anserini_indexes, tmp_path):
    """`lucerag calibrate` over Anserini indexes used to write lucerag-calibrator.json into the user's
    HNSW index folder. Without --out it now refuses, naming the index and --out, and leaves both
    folders as they were; with --out the calibrator goes there and is used through filter.calibrator."""
    import os
    import subprocess
    import sys

    from conftest import MINI_BEIR

    root = anserini_indexes["root"]
    config = tmp_path / "lucerag.toml"
    config.write_text(f'[index]\nbm25_path = "{root / "bm25"}"\ndense_path = "{root / "hnsw"}"\n')

    def snapshot():
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for name in ("bm25", "hnsw")
                for p in [root / name, *(root / name).iterdir()]}

    def calibrate(*extra):
        return subprocess.run([sys.executable, "-m", "lucerag", "calibrate", "--config", str(config),
                               "--beir", str(MINI_BEIR), *extra], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "200"})

    before = snapshot()
    refused = calibrate()
    assert refused.returncode != 0
    assert "not a lucerag index" in refused.stderr and str(root / "hnsw") in refused.stderr
    assert "--out" in refused.stderr
    assert snapshot() == before
    done = calibrate("--out", str(tmp_path / "cal.json"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cal.json").is_file() and snapshot() == before


def test_no_writer_replaces_an_anserini_index(anserini_indexes, tmp_path):
    """`lucerag index` and `lucerag import-vectors` given the path of an Anserini index (say, the
    bm25_path of a configuration) used to replace it with a new lucerag index. A Lucene index
    without lucerag.json is now refused, naming it, before anything is written; every file stays."""
    import os
    import subprocess
    import sys

    from conftest import mini_documents
    from lucerag.errors import IndexTargetError
    from lucerag.ingest.pipeline import build_index

    root = anserini_indexes["root"]
    bm25, hnsw = _copy(root / "bm25", tmp_path / "bm25"), _copy(root / "hnsw", tmp_path / "hnsw")
    (bm25 / "write.lock").touch()  # Anserini leaves its (released) lock file behind
    vectors = next((root / "vectors").iterdir())

    def snapshot():
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for folder in (bm25, hnsw) for p in folder.iterdir()}

    def lucerag(*args):
        return subprocess.run([sys.executable, "-m", "lucerag", *map(str, args)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "COLUMNS": "200"})

    before = snapshot()
    for target, args in ((bm25, ("index", "--input", root / "text" / "docs.jsonl", "--bm25-only")),
                         (hnsw, ("import-vectors", "--input", vectors, "--limit", "3"))):
        out = lucerag(*args, "--index", target)
        assert out.returncode != 0 and "Lucene index lucerag did not write" in out.stderr, out.stderr
        assert str(target) in out.stderr
        assert snapshot() == before
    with pytest.raises(IndexTargetError, match="lucerag did not write"):
        build_index(mini_documents()[:2], bm25, dense=False, progress=False)
    assert snapshot() == before


def test_anserini_hnsw_index_of_vectors_not_of_unit_length_is_named_in_a_warning(anserini_indexes, tmp_path):
    """Anserini's HNSW indexer takes vectors of any length (lucerag's writer normalises them): a
    retriever over such an index warns once, naming the index and the norms it found, because fusion
    and the relevance filter read the dense score as a cosine; an index of unit vectors gives no warning."""
    import warnings

    from lucerag.errors import NonUnitVectorsWarning
    from lucerag.search.retriever import Retriever

    (tmp_path / "vectors").mkdir()
    with open(tmp_path / "vectors" / "v.jsonl", "w") as f:
        for pid, v in zip(anserini_indexes["ids"], anserini_indexes["vectors"]):
            f.write(json.dumps({"docid": pid, "vector": (2.0 * v).tolist()}) + "\n")
    _anserini("io.anserini.index.IndexHnswDenseVectors", "-collection", "JsonDenseVectorCollection",
              "-input", str(tmp_path / "vectors"), "-index", str(tmp_path / "hnsw-x2"), "-threads", "1", "-quiet")
    root = anserini_indexes["root"]
    for dense, expect in ((tmp_path / "hnsw-x2", True), (root / "hnsw", False)):
        config = tmp_path / f"{dense.name}.toml"
        config.write_text(f'[index]\nbm25_path = "{root / "bm25"}"\ndense_path = "{dense}"\n')
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Retriever.from_config(config).close()
        named = [w for w in caught if issubclass(w.category, NonUnitVectorsWarning)]
        assert bool(named) == expect, dense
        if expect:
            assert str(dense) in str(named[0].message) and "2-2" in str(named[0].message)
