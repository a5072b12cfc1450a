"""Ingest for evaluation: whole documents (the published BEIR protocol), the title+text dense view
recorded in the manifest, and progress lines when stderr is not a terminal."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from conftest import mini_documents


def _vectors(index_dir, ids):
    from lucerag.index.reader import LuceneIndex

    index = LuceneIndex(index_dir)
    try:
        found = index.docnums(ids)
        return index.vectors([found[i] for i in ids])
    finally:
        index.close()


def _cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def _long_document():
    from lucerag.connectors import Document

    words = " ".join(f"cell{i % 97} membrane protein transport" for i in range(200))
    return Document(id="long", title="Membrane transport", text=words)


def test_whole_documents_keep_their_ids_and_encode_title_plus_text(tmp_path, encoder):
    from lucerag.index.manifest import IndexManifest
    from lucerag.ingest.pipeline import build_index, view_ids

    docs = mini_documents() + [_long_document()]
    report = build_index(docs, tmp_path / "idx", encoder=encoder, chunk=False, progress=False)
    assert report.passages == len(docs)
    bm25, dense = view_ids(tmp_path / "idx")
    assert bm25 == dense == {d.id for d in docs}
    manifest = IndexManifest.read(tmp_path / "idx")
    assert manifest.settings["chunker"] == "none" and manifest.dense_text == "title+text"
    # The encoder's own truncation: the long document is one vector of its (truncated) title + text.
    assert encoder.token_lengths([docs[-1].text])[0] == encoder.manifest.max_length
    stored = _vectors(tmp_path / "idx", [docs[0].id, "long"])
    expected = encoder.encode_passages([f"{d.title} {d.text}" for d in (docs[0], docs[-1])])
    text_only = encoder.encode_passages([docs[0].text])[0]
    assert _cos(stored[0], expected[0]) > 0.999 and _cos(stored[1], expected[1]) > 0.999
    assert _cos(stored[0], text_only) < _cos(stored[0], expected[0]) - 0.005


def test_text_only_dense_view_and_appends_keep_the_recorded_choice(tmp_path, encoder):
    from lucerag.index.manifest import IndexManifest
    from lucerag.ingest.pipeline import build_index

    docs = mini_documents()
    build_index(docs[:5], tmp_path / "idx", encoder=encoder, dense_text="text", progress=False)
    with pytest.raises(ValueError, match="encoded from 'text', not 'title\\+text'"):
        build_index(docs[5:], tmp_path / "idx", encoder=encoder, mode="append", dense_text="title+text",
                    progress=False)
    build_index(docs[5:], tmp_path / "idx", encoder=encoder, mode="append", progress=False)
    assert IndexManifest.read(tmp_path / "idx").dense_text == "text"
    stored = _vectors(tmp_path / "idx", [docs[7].id])[0]
    assert _cos(stored, encoder.encode_passages([docs[7].text])[0]) > 0.999
    with pytest.raises(ValueError, match="dense_text must be one of"):
        build_index(docs, tmp_path / "other", encoder=encoder, dense_text="title", progress=False)


def test_a_manifest_without_dense_text_reads_as_text(tmp_path):
    from lucerag.index.manifest import IndexManifest

    (tmp_path / IndexManifest.FILENAME).write_text(json.dumps({"format": 2, "encoder": "m", "dim": 3}))
    assert IndexManifest.read(tmp_path).dense_text == "text"


def test_chunks_leave_room_for_the_title(encoder):
    from lucerag.connectors import Document
    from lucerag.ingest.chunking import chunk_documents, load_tokenizer

    tok = load_tokenizer(encoder.model_dir / "tokenizer.json")
    doc = _long_document()
    doc = Document(id=doc.id, title="A rather long title about membranes, transport and cell proteins",
                   text=doc.text)
    plain = list(chunk_documents([doc], tok, max_tokens=100, overlap=10))
    titled = list(chunk_documents([doc], tok, max_tokens=100, overlap=10, with_title=True))
    assert len(titled) > len(plain)
    title_tokens = len(tok.encode(doc.title, add_special_tokens=False).ids)
    for c in titled:
        assert len(tok.encode(f"{c.title} {c.text}", add_special_tokens=False).ids) <= 100 + 1
        assert len(tok.encode(c.text, add_special_tokens=False).ids) <= 100 - title_tokens - 1


def test_progress_log_lines_have_rate_and_eta_and_never_zero_rates():
    from lucerag.ingest.pipeline import ProgressLog, rate_text

    assert rate_text(0, 5.0) == "" and rate_text(3, 10.0) == "0.30 passages/s" and rate_text(300, 2.0) == "150 passages/s"

    now = [0.0]
    log = ProgressLog(total=1000, every=10, clock=lambda: now[0])
    log.tick(0, 0)                      # nothing written yet, too early: no line
    now[0] = 10.0
    log.tick(0, 0)
    now[0] = 15.0
    log.tick(100, 150)                  # only 5 s since the last line
    now[0] = 20.0
    log.tick(250, 400)
    now[0] = 25.0
    log.done(1000, 1600)
    assert log.lines[0] == "ingest: 0/1,000 documents, 0 passages"
    assert log.lines[1] == "ingest: 250/1,000 documents, 400 passages, 20 passages/s, ETA 1m00s"
    assert log.lines[2] == "ingest: 1,000/1,000 documents, 1,600 passages, 64 passages/s, done in 0m25s"
    assert not any("0 passages/s" in line.replace("20 passages/s", "").replace("64 passages/s", "")
                   for line in log.lines)


def test_build_without_a_terminal_logs_progress(tmp_path, caplog):
    from lucerag.ingest.pipeline import build_index

    with caplog.at_level(logging.INFO, logger="lucerag.ingest.progress"):
        build_index(mini_documents(), tmp_path / "idx", dense=False, progress=True, progress_every=0)
    lines = [r.getMessage() for r in caplog.records if r.name == "lucerag.ingest.progress"]
    assert lines and lines[-1].startswith(f"ingest: {len(mini_documents())} documents")
    assert "done in" in lines[-1] and "passages/s" in lines[-1]


def test_progress_log_keeps_logging_while_a_slow_batch_runs():
    import time

    from lucerag.ingest.pipeline import ProgressLog

    log = ProgressLog(total=10, every=0.2).start()
    log.tick(5, 7)          # the last batch's counts; then nothing for a while (a slow encoder)
    time.sleep(1.0)
    log.stop()
    assert len(log.lines) >= 2 and all(line.startswith("ingest: 5/10 documents, 7 passages") for line in log.lines)
    count = len(log.lines)
    time.sleep(0.5)
    assert len(log.lines) == count  # stopped
