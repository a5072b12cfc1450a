"""Ingestion: every connector reconciles, both views hold the same ids, upserts replace all chunks,
vanished documents can be deleted, the manifest pins the encoder, and bad input is reported."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINI_BEIR, mini_documents
from lucerag.connectors import Document, RejectsFile, read_documents
from lucerag.index.manifest import EncoderMismatchError, IndexManifest
from lucerag.index.reader import LuceneIndex
from lucerag.ingest.pipeline import build_index, chunk_words, estimate_total, view_ids
from lucerag.index.writer import recover


def _ids(path: Path) -> set[str]:
    bm25, dense = view_ids(path)
    return bm25


def _record(path: Path, pid: str) -> dict:
    index = LuceneIndex(path)
    try:
        return index.record(index.docnums([pid])[pid])
    finally:
        index.close()


# -- every connector, with bad records: read = indexed + skipped + rejected; views equal ----------

def _jsonl(tmp: Path) -> tuple[Path, dict]:
    lines = [json.dumps({"_id": d.id, "title": d.title, "text": d.text}).encode() for d in mini_documents()[:6]]
    lines += [b'{"_id": "bad-json", "text": "oops"', json.dumps({"text": "no id"}).encode(),
              json.dumps({"_id": "no-text"}).encode(), json.dumps({"_id": "p01", "text": "duplicate"}).encode(),
              json.dumps({"_id": "empty", "text": "   "}).encode(), b'{"_id": "utf8", "text": "caf\xe9"}']
    path = tmp / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, {}


def _tsv(tmp: Path) -> tuple[Path, dict]:
    path = tmp / "collection.tsv"
    rows = [f"{i}\tpassage number {i} about lucene indexes" for i in range(7)] + ["7\t  ", "8", "3\tdup"]
    path.write_text("\n".join(rows) + "\n")
    return path, {}


def _csv(tmp: Path) -> tuple[Path, dict]:
    path = tmp / "export.csv"
    path.write_text('id,title,text,author\n1,One,"first, quoted\nmultiline text",ann\n2,Two,second text,bob\n'
                    '3,Three,,cid\n,Four,no id here,dan\n2,Dup,again,eve\n')
    return path, {}


def _folder(tmp: Path) -> tuple[Path, dict]:
    root = tmp / "docs"
    (root / "guides").mkdir(parents=True)
    (root / "a.txt").write_text("plain text about espresso machines")
    (root / "guides" / "b.md").write_text("# Install\n\nrun make demo to install lucerag")
    (root / "c.html").write_text("<html><head><title>Tea</title></head><body><p>green tea leaves</p></body></html>")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (root / "empty.txt").write_text("   \n")
    return root, {}


def _sqlite(tmp: Path) -> tuple[Path, dict]:
    path = tmp / "kb.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE articles (id INTEGER, title TEXT, body TEXT, author TEXT)")
    con.executemany("INSERT INTO articles VALUES (?, ?, ?, ?)",
                    [(1, "Keys", "rotate the keys every month", "ann"), (2, "Backups", "nightly backups to s3", "bob"),
                     (3, "Empty", "", "cid"), (None, "No id", "text without id", "dan")])
    con.commit()
    con.close()
    return path, {"query": "SELECT id, title, body AS text, author FROM articles"}


@pytest.mark.parametrize("make, read, indexed", [
    (_jsonl, 12, 6), (_tsv, 10, 7), (_csv, 5, 2), (_folder, 5, 3), (_sqlite, 4, 2),
], ids=["jsonl", "tsv", "csv", "folder", "sqlite"])
def test_every_connector_reconciles_and_both_views_agree(tmp_path, encoder, make, read, indexed):
    source, options = make(tmp_path)
    rejects = tmp_path / "rejects.jsonl"
    with RejectsFile(rejects) as sink:
        stream = read_documents(source, on_error="skip", rejects=sink, **options)
        report = build_index(stream, tmp_path / "idx", encoder=encoder, progress=False, on_error="skip",
                             on_reject=sink)
    assert report.read == report.indexed + report.skipped + report.rejected
    assert (report.read, report.indexed) == (read, indexed)
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(rejected) == report.rejected == read - indexed
    for r in rejected:  # each names the file (or database) and the line / row / path
        assert Path(r["source"]).name == source.name and r["location"] and r["reason"]
    bm25, dense = view_ids(tmp_path / "idx")
    assert bm25 == dense and len(bm25) == report.passages
    assert IndexManifest.read(tmp_path / "idx").passages == report.passages


def test_bad_records_name_file_and_line_and_fail_mode_changes_nothing(tmp_path, encoder, mini_index):
    source, _ = _jsonl(tmp_path)
    index = tmp_path / "idx"
    build_index(mini_documents(), index, encoder=encoder, progress=False)
    before = _ids(index)
    from lucerag.connectors import ConnectorError

    with pytest.raises(ConnectorError, match=r"corpus\.jsonl: line 7: malformed JSON"):
        build_index(read_documents(source), index, encoder=encoder, mode="append", progress=False)
    assert _ids(index) == before  # nothing already indexed is lost, nothing half-added is visible
    lines = {r.location: r.reason for r in _collect_rejects(source)}
    assert lines["line 8"] == "missing id" and lines["line 9"].startswith("missing text")
    assert "duplicate id 'p01'" in lines["line 10"] and "empty text" in lines["line 11"]
    assert "invalid UTF-8" in lines["line 12"]


def _collect_rejects(source):
    out: list = []
    for _ in read_documents(source, on_error="skip", rejects=out):
        pass
    return out


# -- upserts, deletes ----------------------------------------------------------------------------

def _long(doc_id: str, words: int, tag: str) -> Document:
    return Document(id=doc_id, title="Long", text=" ".join(f"{tag}{i % 50}" for i in range(words)),
                    metadata={"source": "test"})


def test_upsert_replaces_all_chunks_in_both_views(tmp_path, encoder):
    index = tmp_path / "idx"
    docs = [_long("big", 120, "alpha"), *mini_documents()[:3]]
    report = build_index(docs, index, encoder=encoder, max_tokens=40, progress=False)
    old_chunks = {i for i in _ids(index) if i.startswith("big#")}
    assert len(old_chunks) >= 4 and report.passages == len(old_chunks) + 3
    # the document shrinks to one passage; another one changes text
    changed = [Document(id="big", text="now a short text about zebras"),
               Document(id="p01", title="New", text="completely new text about giraffes")]
    report = build_index(changed, index, encoder=encoder, mode="append", max_tokens=40, progress=False)
    assert report.indexed == 2 and report.index_passages == 4
    bm25, dense = view_ids(index)
    assert bm25 == dense == {"big", "p01", *(d.id for d in mini_documents()[1:3])}
    assert _record(index, "p01")["contents"] == "completely new text about giraffes"
    assert _record(index, "big")["metadata"]["parent_id"] == "big"
    from lucerag.search.retriever import Retriever

    with Retriever.from_index(index, encoder=encoder) as r:
        assert r.rank("giraffes", "dense", 1).ids == ["p01"]
        assert r.rank("alpha7", "bm25", 5).ids == []  # old chunks are gone from BM25 too
    assert IndexManifest.read(index).updates == 1


def test_delete_missing_and_its_refusal_after_rejections(tmp_path):
    index = tmp_path / "idx"
    docs = [_long("big", 300, "w"), Document(id="a", text="apple"), Document(id="b", text="banana")]
    build_index(docs, index, dense=False, max_words=50, overlap_words=10, progress=False)
    assert len(_ids(index)) == 8 + 2
    keep = tmp_path / "keep.jsonl"
    keep.write_text(json.dumps({"id": "a", "contents": "apple pie"}) + "\n")
    report = build_index(read_documents(keep), index, dense=False, mode="append", delete_missing=True,
                         progress=False)
    assert report.deleted == 2 and _ids(index) == {"a"}  # every chunk of "big" went too
    # with a rejected record, a missing document may only be unreadable: nothing is deleted
    build_index(docs, index, dense=False, max_words=50, overlap_words=10, progress=False)
    keep.write_text(json.dumps({"id": "a", "contents": "apple"}) + "\n{broken\n")
    report = build_index(read_documents(keep, on_error="skip", rejects=[]), index, dense=False, mode="append",
                         delete_missing=True, progress=False)
    assert report.deleted == 0 and report.rejected == 1 and "nothing was deleted" in report.warnings[0]
    assert len(_ids(index)) == 10


def test_word_chunker_matches_the_chunk_contract():
    doc = _long("d", 500, "x")
    chunks = chunk_words(doc, max_words=100, overlap=20)
    assert [c[0] for c in chunks] == [f"d#{i}" for i in range(len(chunks))] and len(chunks) == 6
    for pid, parent, title, text, meta in chunks:
        m = json.loads(meta)
        assert parent == "d" and title == "Long" and m["source"] == "test"
        assert doc.text[m["char_start"]:m["char_end"]] == text and len(text.split()) <= 100
    first, second = chunks[0][3].split(), chunks[1][3].split()
    assert first[-20:] == second[:20]  # overlap
    assert chunk_words(Document(id="s", text="short text"))[0][0] == "s"


def test_ten_megabyte_document_bm25(tmp_path):
    words = [f"word{i % 997}" for i in range(1_400_000)] + ["needleword"]
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"id": "huge", "contents": " ".join(words)}) + "\n"
                   + json.dumps({"id": "small", "contents": "tiny"}) + "\n")
    assert big.stat().st_size > 10_000_000
    report = build_index(read_documents(big), tmp_path / "idx", dense=False, progress=False)
    assert report.indexed == 2 and report.passages > 7000
    from lucerag.search.retriever import Retriever

    with Retriever.from_index(tmp_path / "idx") as r:
        ranking = r.rank("needleword", "bm25", 1)
        index, docnum = ranking.refs[0]
        record = index.record(docnum)
    assert ranking.ids[0].startswith("huge#") and record["metadata"]["parent_id"] == "huge"
    assert record["contents"].endswith("needleword")


# -- the manifest pins the encoder -------------------------------------------------------------

def _other(encoder, **update):
    other = copy.copy(encoder)
    other.manifest = encoder.manifest.model_copy(update=update)
    return other


def test_manifest_records_the_build(mini_index, encoder):
    m = IndexManifest.read(mini_index)
    e = encoder.manifest
    assert (m.encoder, m.encoder_sha256, m.dim) == (e.name, e.weights_sha256, e.dim)
    assert (m.query_prefix, m.passage_prefix, m.similarity) == (e.query_prefix, e.passage_prefix, "DOT_PRODUCT")
    assert m.passages == 25 and m.settings["chunker"] == "tokens" and m.settings["max_tokens"] == e.max_length - 2


def test_different_encoder_fails_clearly_on_append_and_search(tmp_path, encoder, mini_index):
    index = tmp_path / "idx"
    build_index(mini_documents()[:3], index, encoder=encoder, progress=False)
    other = _other(encoder, weights_sha256="f" * 64, name="other-model")
    with pytest.raises(EncoderMismatchError, match=r"name 'all-MiniLM-L6-v2' vs 'other-model'.*weights sha256"):
        build_index(mini_documents()[3:], index, encoder=other, mode="append", progress=False)
    with pytest.raises(EncoderMismatchError, match="without an encoder"):
        build_index(mini_documents()[3:], index, dense=False, mode="append", progress=False)
    assert len(_ids(index)) == 3
    from lucerag.search.retriever import Retriever

    with Retriever.from_index(index, encoder=_other(encoder, query_prefix="query: ")) as r:
        with pytest.raises(EncoderMismatchError, match="query prefix '' vs 'query: '"):
            r.rank("espresso", "hybrid", 5)
        assert r.rank("photosynthesis", "bm25", 5).ids  # BM25 needs no encoder
    bm25_index = tmp_path / "bm25"
    build_index(mini_documents()[:3], bm25_index, dense=False, progress=False)
    with pytest.raises(EncoderMismatchError, match="built without vectors"):
        build_index(mini_documents()[3:], bm25_index, encoder=encoder, mode="append", progress=False)


# -- leftovers of killed builds, progress totals, the CLI and the benchmark -----------------------

def test_recover_cleans_dead_builds_and_restores_a_swapped_out_index(tmp_path):
    dead = tmp_path / ".idx.building-999999999-abc"
    dead.mkdir()
    (tmp_path / ".idx.old-999999999").mkdir()
    (tmp_path / ".idx.old-999999999" / "segments_1").write_text("x")
    recover(tmp_path / "idx")
    assert not dead.exists() and (tmp_path / "idx" / "segments_1").exists()


def test_estimate_total(tmp_path):
    assert estimate_total(MINI_BEIR / "corpus.jsonl") == 25 == estimate_total(MINI_BEIR, "beir")
    (tmp_path / "x.tsv").write_text("1\ta\n2\tb")
    assert estimate_total(tmp_path / "x.tsv") == 2 and estimate_total(tmp_path, "folder") is None


def _run(*args, check=True):
    out = subprocess.run([sys.executable, "-m", "lucerag", *map(str, args)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COLUMNS": "200"})
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_cli_append_delete_missing_and_rejects(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "contents": f"document {i} text"}) + "\n" for i in range(5)))
    index = tmp_path / "idx"
    _run("index", "--input", src, "--index", index, "--bm25-only", "--no-progress")
    src.write_text(json.dumps({"id": "d1", "contents": "changed"}) + "\n" + "not json\n"
                   + json.dumps({"id": "d9", "contents": "new"}) + "\n")
    out = _run("index", "--input", src, "--index", index, "--bm25-only", "--append", "--on-error", "skip",
               "--rejects", tmp_path / "rej.jsonl", "--json", "--no-progress")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert (report["read"], report["indexed"], report["rejected"], report["index_passages"]) == (3, 2, 1, 6)
    assert json.loads((tmp_path / "rej.jsonl").read_text())["location"] == "line 2"
    src.write_text(json.dumps({"id": "d1", "contents": "changed"}) + "\n")
    out = _run("index", "--input", src, "--index", index, "--bm25-only", "--append", "--delete-missing",
               "--no-progress")
    assert "deleted 5" in out.stdout and _ids(index) == {"d1"}
    out = _run("index", "--input", src, "--index", tmp_path / "nowhere", "--bm25-only", "--append", check=False)
    assert out.returncode != 0 and "no index at" in out.stderr


def test_bench_ingest_command(tmp_path):
    out = _run("bench", "ingest", "--input", MINI_BEIR / "corpus.jsonl", "--bm25-only", "--repeat", "2", "--json")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bm25"]["passages"] == 25 and len(result["bm25"]["passages_per_s"]) == 2
    assert result["read"]["documents"] == 25 and len(result["machine"]["load_before"]) == 3


def test_threaded_writer_adds_after_deletes_in_order(tmp_path):
    from lucerag.index.writer import IndexWriter

    with IndexWriter(tmp_path / "idx", threads=2) as w:
        w.add_batch(["a", "b"], ["alpha", "beta"])
        w.delete(["a"])
        w.add_batch(["c"], ["gamma"])
        w.add_batch(["a"], ["alpha again"])
    assert _ids(tmp_path / "idx") == {"a", "b", "c"}
    assert _record(tmp_path / "idx", "a")["contents"] == "alpha again"


def test_reading_thread_stops_when_the_build_stops_even_with_a_full_queue_and_a_failing_source():
    # The documents are read on a producer thread ahead of the writer (a queue of 4 batches). When the
    # build stops early (an error downstream, Ctrl-C) while the queue is full and the source then fails,
    # the producer's last hand-over must give up instead of waiting on a queue nobody reads again.
    import threading
    import time

    from lucerag.ingest.pipeline import _in_thread

    def source():
        for i in range(5):
            yield i
        raise OSError("source failed after 5 items")

    consumer = _in_thread(source(), depth=4)
    assert next(consumer) == 0
    time.sleep(0.5)  # the producer fills the queue (items 1-4) and then waits to hand over the failure
    t = time.monotonic()
    consumer.close()
    assert time.monotonic() - t < 1.0
    assert not [t for t in threading.enumerate() if t.name == "lucerag-ingest-producer" and t.is_alive()]
