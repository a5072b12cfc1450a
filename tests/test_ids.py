"""Passage ids are unique per index at every entry, clashes name file and line, and the query path
joins the two views by Lucene doc number (issue 15, items 3-4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lucerag.connectors import read_documents
from lucerag.index.manifest import IndexManifest
from lucerag.index.writer import DuplicateIdError
from lucerag.ingest.pipeline import build_index, view_ids
from lucerag.ingest.vectors import export_vectors, import_vectors

GUIDE = " ".join(f"step {i} of the guide explains how the lucene index rotates its segment files" for i in range(12))


def _vectors(tmp_path: Path, encoder, ids: list[str], name: str = "v.jsonl") -> Path:
    texts = [f"passage {pid} about volcanoes number {i}" for i, pid in enumerate(ids)]
    export_vectors(zip(ids, encoder.encode_passages(texts), texts), tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("batch_size", [1024, 2], ids=["one-batch", "across-batches"])
def test_import_vectors_refuses_a_repeated_id_naming_file_and_line(tmp_path, encoder, batch_size):
    path = _vectors(tmp_path, encoder, ["p1", "p2", "p1"])
    with pytest.raises(DuplicateIdError, match=rf"{path}: line 3: passage id 'p1' appears twice"):
        import_vectors(path, tmp_path / "idx", batch_size=batch_size)
    assert not (tmp_path / "idx").exists()
    assert not [p for p in tmp_path.iterdir() if ".building-" in p.name]


def test_cli_import_vectors_duplicate_is_exit_2_and_keeps_the_old_index(tmp_path, encoder):
    good = _vectors(tmp_path, encoder, ["p1", "p2"], "good.jsonl")
    index = tmp_path / "idx"
    import_vectors(good, index)
    bad = _vectors(tmp_path, encoder, ["a", "b", "c", "b"], "bad.jsonl")
    out = subprocess.run([sys.executable, "-m", "lucerag", "import-vectors", "--input", str(bad), "--index",
                          str(index), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert f"{bad}: line 4: passage id 'b' appears twice" in out.stderr and "Traceback" not in out.stderr
    assert view_ids(index) == ({"p1", "p2"}, {"p1", "p2"})


def _corpus(path: Path, docs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    return path


@pytest.mark.parametrize("order", ["chunked-first", "document-first"])
def test_a_chunk_id_equal_to_another_documents_id_is_refused(tmp_path, order):
    docs = [("guide", GUIDE), ("other", "a short note"), ("guide#1", "my own document named guide#1")]
    if order == "document-first":
        docs = [docs[2], docs[1], docs[0]]
    source = _corpus(tmp_path / "corpus.jsonl", docs)
    index = tmp_path / "idx"
    with pytest.raises(DuplicateIdError) as info:
        build_index(read_documents(source), index, dense=False, progress=False, max_words=40, overlap_words=5)
    message = str(info.value)
    assert f"{source}: line 3: passage id 'guide#1'" in message
    assert ("(document 'guide#1')" if order == "chunked-first" else "(a chunk of document 'guide')") in message
    assert not index.exists()


def test_append_refuses_an_id_held_by_a_passage_it_does_not_replace(tmp_path):
    index = tmp_path / "idx"
    first = _corpus(tmp_path / "first.jsonl", [("guide", GUIDE), ("note", "a short note")])
    build_index(read_documents(first), index, dense=False, progress=False, max_words=40, overlap_words=5)
    before = view_ids(index)[0]
    assert {"guide#0", "guide#1", "note"} <= before
    clash = _corpus(tmp_path / "clash.jsonl", [("fine", "another note"), ("guide#1", "my own guide#1")])
    with pytest.raises(DuplicateIdError, match=rf"{clash}: line 2: passage id 'guide#1' \(document 'guide#1'\) "
                                               r"is already in .* as a passage of document 'guide'"):
        build_index(read_documents(clash), index, dense=False, mode="append", progress=False, max_words=40)
    assert view_ids(index)[0] == before
    # the other way round: the index holds a document 'x#0'; appending 'x' in chunks would repeat it
    _corpus(tmp_path / "x.jsonl", [("x#0", "a document with a hash in its id")])
    build_index(read_documents(tmp_path / "x.jsonl"), index, dense=False, mode="append", progress=False)
    long_x = _corpus(tmp_path / "long.jsonl", [("x", GUIDE)])
    with pytest.raises(DuplicateIdError, match=rf"{long_x}: line 1: passage id 'x#0' \(a chunk of document 'x'\)"):
        build_index(read_documents(long_x), index, dense=False, mode="append", progress=False, max_words=40)
    # re-ingesting 'guide' itself (an upsert of its chunks) is no clash
    again = _corpus(tmp_path / "again.jsonl", [("guide", GUIDE + " one more step")])
    report = build_index(read_documents(again), index, dense=False, mode="append", progress=False, max_words=40,
                         overlap_words=5)
    assert report.indexed == 1 and {"guide#0", "guide#1", "note", "x#0"} <= view_ids(index)[0]


def _lucene_index(path: Path, rows: list[tuple[str, str | None, np.ndarray | None]], manifest_from: Path) -> Path:
    """An index written with plain Lucene (as another tool would): ``(id, text or None, vector or None)``.
    Ids may repeat; a row without text stores no ``raw`` (Anserini's HNSW indexes store none)."""
    from lucerag.lucene.classes import java

    path.mkdir(parents=True)
    directory = java.FSDirectory.open(java.File(str(path)).toPath())
    writer = java.IndexWriter(directory, java.IndexWriterConfig(java.analyzer))
    for pid, text, vector in rows:
        doc = java.Document()
        doc.add(java.StringField("id", pid, java.FieldStore.YES))
        doc.add(java.BinaryDocValuesField("id", java.BytesRef(pid.encode("utf-8"))))
        if text is not None:
            doc.add(java.TextField("contents", text, java.FieldStore.NO))
            doc.add(java.StoredField("raw", json.dumps({"id": pid, "contents": text})))
        if vector is not None:
            doc.add(java.KnnFloatVectorField("vector", [float(x) for x in vector],
                                             java.VectorSimilarityFunction.DOT_PRODUCT))
        writer.addDocument(doc)
    writer.commit()
    writer.close()
    directory.close()
    shutil.copy(manifest_from / IndexManifest.FILENAME, path / IndexManifest.FILENAME)
    return path


def test_hybrid_joins_the_views_by_doc_number_not_by_id(tmp_path, encoder, mini_index):
    """An index from another tool may repeat an id: each Lucene document keeps its own scores."""
    from lucerag.search.retriever import Retriever

    texts = ["a volcano erupts when magma rises through the crust", "sourdough bread rises with wild yeast",
             "tides follow the pull of the moon"]
    vectors = encoder.encode_passages(texts)
    index = _lucene_index(tmp_path / "dup", [("x", texts[0], vectors[0]), ("x", texts[1], vectors[1]),
                                             ("t", texts[2], vectors[2])], mini_index)
    query = "why does a volcano erupt"
    q = encoder.encode_query(query)
    with Retriever.from_index(index, encoder=encoder) as r:
        passages = r.search(query, k=3, method="hybrid", filter=False)
        bm25 = {p.text: p.score for p in r.search(query, k=3, method="bm25")}
    assert sorted(p.text for p in passages) == sorted(texts)
    for p in passages:
        assert p.dense_score == pytest.approx(float(vectors[texts.index(p.text)] @ q), abs=1e-4)
        assert p.bm25_score == pytest.approx(bm25.get(p.text, 0.0), abs=1e-5)
    assert passages[0].text == texts[0]


def test_import_vectors_append_refuses_a_repeated_id_too(tmp_path, encoder):
    """Appending, the writer takes a repeated id for an update of that passage: the import refuses it."""
    index = tmp_path / "idx"
    import_vectors(_vectors(tmp_path, encoder, ["p1", "p2"], "first.jsonl"), index)
    again = _vectors(tmp_path, encoder, ["p3", "p1", "p3"], "again.jsonl")
    with pytest.raises(DuplicateIdError, match=rf"{again}: line 3: passage id 'p3' appears twice"):
        import_vectors(again, index, append=True)
    assert view_ids(index) == ({"p1", "p2"}, {"p1", "p2"})
    import_vectors(_vectors(tmp_path, encoder, ["p1", "p4"], "update.jsonl"), index, append=True)  # an update
    assert view_ids(index) == ({"p1", "p2", "p4"}, {"p1", "p2", "p4"})


def test_a_writer_may_write_an_id_again_after_deleting_it_or_replacing_its_document(tmp_path):
    from lucerag.index.writer import IndexWriter

    with IndexWriter(tmp_path / "idx") as w:
        w.add_batch(["a", "b"], ["alpha", "beta"])
        w.delete(["a"])
        w.add_batch(["a"], ["alpha again"])
        with pytest.raises(DuplicateIdError, match="passage id 'b' appears twice"):
            w.add_batch(["b"], ["beta again"])
    assert view_ids(tmp_path / "idx")[0] == {"a", "b"}
    with IndexWriter(tmp_path / "idx", mode="append") as w:
        w.add_batch(["d#0", "d#1"], ["one", "two"], parents=["d", "d"])
        w.add_batch(["d#0"], ["one, updated"], parents=["d"])   # replaces document d's passages
        with pytest.raises(DuplicateIdError, match="passage id 'e' appears twice"):
            w.add_batch(["e", "e"], ["x", "y"])
    assert view_ids(tmp_path / "idx")[0] == {"a", "b", "d#0"}
