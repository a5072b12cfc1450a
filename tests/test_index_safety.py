"""Nothing of the user's is lost: a rebuild only replaces what lucerag (or Lucene) created, and every
writer takes the one write lock beside the index (issue 15, items 1-2)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import mini_documents
from lucerag.index.lock import IndexLockedError, WriteLock, lock_path
from lucerag.index.ownership import IndexTargetError, check_replaceable
from lucerag.index.writer import IndexWriter, recover
from lucerag.ingest.pipeline import build_index, view_ids
from lucerag.ingest.vectors import export_vectors, import_vectors


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (hidden ones too) with a hash of its content."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder) + "/"] = ""
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _handbook(tmp_path: Path) -> Path:
    book = tmp_path / "handbook"
    book.mkdir()
    (book / "keys.md").write_text("# Keys\n\nRotate the office keys every month; the spare is at reception.\n")
    (book / "vacation.txt").write_text("Vacation requests go to your manager two weeks ahead.\n")
    return book


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lucerag", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_rebuild_into_the_input_folder_refuses_and_keeps_every_file(tmp_path):
    book = _handbook(tmp_path)
    before = _snapshot(tmp_path)
    out = _cli("index", "--input", book, "--index", book, "--bm25-only", "--no-progress")
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(book) in out.stderr and "not a Lucene or lucerag index" in out.stderr
    assert "Traceback" not in out.stderr
    assert _snapshot(tmp_path) == before  # nothing deleted, renamed or added (no hidden build folder)


def test_cli_rebuild_onto_a_regular_file_refuses_and_leaves_it_in_place(tmp_path):
    book = _handbook(tmp_path)
    target = tmp_path / "notes.txt"
    target.write_text("my notes, not an index\n")
    before = _snapshot(tmp_path)
    out = _cli("index", "--input", book, "--index", target, "--bm25-only", "--no-progress")
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(target) in out.stderr and "is a file" in out.stderr
    assert _snapshot(tmp_path) == before
    assert target.read_text() == "my notes, not an index\n"


def test_cli_import_vectors_into_a_folder_of_documents_refuses(tmp_path, encoder):
    book = _handbook(tmp_path)
    vectors = tmp_path / "vectors.jsonl"
    docs = mini_documents()[:3]
    export_vectors(((d.id, v, d.text) for d, v in zip(docs, encoder.encode_passages([d.text for d in docs]))),
                   vectors)
    before = _snapshot(tmp_path)
    out = _cli("import-vectors", "--input", vectors, "--index", book, "--no-progress")
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(book) in out.stderr and "Traceback" not in out.stderr
    assert _snapshot(tmp_path) == before


def test_every_writer_refuses_what_lucerag_did_not_create(tmp_path, mini_index):
    book = _handbook(tmp_path)
    file = tmp_path / "data.bin"
    file.write_bytes(b"\x00\x01 user data")
    link = tmp_path / "link"
    link.symlink_to(book)
    index = tmp_path / "idx"
    shutil.copytree(mini_index, index)
    (index / "README.txt").write_text("a user's note kept inside the index folder\n")
    before = _snapshot(tmp_path)
    docs = mini_documents()[:2]
    for target, reason in ((book, "not a Lucene or lucerag index"), (file, "is a file"),
                           (link, "symbolic link"), (index, "README.txt")):
        with pytest.raises(IndexTargetError, match=reason) as info:
            build_index(docs, target, dense=False, progress=False)
        assert str(target) in str(info.value)
        with pytest.raises(IndexTargetError):
            IndexWriter(target)
    assert _snapshot(tmp_path) == before


def test_an_empty_folder_and_an_existing_index_may_be_rebuilt(tmp_path, mini_index):
    empty = tmp_path / "empty"
    empty.mkdir()
    build_index(mini_documents()[:3], empty, dense=False, progress=False)
    assert view_ids(empty)[0] == {d.id for d in mini_documents()[:3]}
    index = tmp_path / "idx"
    shutil.copytree(mini_index, index)
    check_replaceable(index)  # Lucene's files, lucerag.json (and a calibrator) only
    report = build_index(mini_documents()[:4], index, dense=False, progress=False)
    assert report.index_passages == 4 and view_ids(index)[0] == {d.id for d in mini_documents()[:4]}
    assert not [p for p in tmp_path.iterdir() if ".building-" in p.name or ".old-" in p.name]


def test_recover_never_removes_a_users_file_that_looks_like_a_build(tmp_path):
    index = tmp_path / "idx"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()                                         # a process id that is no longer alive
    decoy = tmp_path / f".idx.building-{gone.pid}-mine"  # a file of the user's, with a build-like name
    decoy.write_text("keep me")
    dead = tmp_path / f".idx.building-{gone.pid}-abc"    # a dead build's folder
    dead.mkdir()
    (dead / "segments_1").write_bytes(b"")
    recover(index)
    assert decoy.read_text() == "keep me" and not dead.exists()


def test_one_lock_for_every_writer_beside_the_index(tmp_path, mini_index, encoder):
    index = tmp_path / "idx"
    shutil.copytree(mini_index, index)
    assert lock_path(index) == tmp_path / ".idx.lucerag.lock"
    docs = mini_documents()
    vectors = tmp_path / "v.jsonl"
    export_vectors([("v1", encoder.encode_passages(["a vector"])[0], "a vector")], vectors)
    with IndexWriter(index, mode="append") as holder:
        for write in (lambda: build_index(docs[:2], index, encoder=encoder, progress=False),   # rebuild
                      lambda: build_index(docs[:2], index, encoder=encoder, mode="append", progress=False),
                      lambda: import_vectors(vectors, index),                                   # rebuild
                      lambda: import_vectors(vectors, index, append=True),
                      lambda: IndexWriter(index, mode="append")):                               # delete/upsert
            with pytest.raises(IndexLockedError, match=f"{index} is being written by another process"):
                write()
        holder.delete(["p01"])
        assert lock_path(index).exists()
    # nothing left beside the index: no lock file, no hidden build folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["idx", "v.jsonl"])
    # released on close: the next writer goes ahead, and the holder's delete is committed
    report = build_index(docs[:3], index, encoder=encoder, mode="append", progress=False)
    assert report.index_passages == 24 + 1  # 25 - p01 + p01 again
    with WriteLock(index):
        pass


def test_a_failed_writer_releases_the_lock(tmp_path):
    index = tmp_path / "idx"
    build_index(mini_documents()[:2], index, dense=False, progress=False)
    with pytest.raises(ValueError, match="vectors"):
        with IndexWriter(index, mode="append") as writer:
            writer.add_batch(["x"], ["text"], None)
            writer.add_batch(["y"], ["text"], __import__("numpy").ones((1, 4), "float32"))
    with WriteLock(index):  # not left held by the aborted writer
        pass
    assert not lock_path(index).exists()
    assert json.loads((index / "lucerag.json").read_text())["passages"] == 2


def test_the_lock_file_is_removed_and_never_held_twice(tmp_path):
    """The holder unlinks the lock file before letting go; a writer that locked the unlinked file
    notices and retries, so however the threads interleave at most one holds the lock."""
    import threading

    index = tmp_path / "idx"
    holders, most, errors = [0], [0], []
    guard = threading.Lock()

    def writer():
        for _ in range(300):
            try:
                lock = WriteLock(index).acquire()
            except IndexLockedError:
                continue
            with guard:
                holders[0] += 1
                most[0] = max(most[0], holders[0])
            with guard:
                holders[0] -= 1
            lock.release()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and most[0] == 1
    assert not lock_path(index).exists()


def test_a_rebuild_keeps_the_fitted_calibrator_and_the_folder_mode(tmp_path):
    """A rebuild swaps in a fresh folder: the relevance calibrator fitted into the old one is carried
    over (the report says so), and the folder keeps its permission bits (mkdtemp makes 0700)."""
    index = tmp_path / "idx"
    docs = mini_documents()[:12]
    build_index(iter(docs), index, encoder=None)
    os.chmod(index, 0o751)
    calibrator = index / "lucerag-calibrator.json"
    calibrator.write_text('{"fitted": "on my judgments"}')
    report = build_index(iter(docs[:8]), index, encoder=None)
    assert calibrator.read_text() == '{"fitted": "on my judgments"}'
    assert any("lucerag-calibrator.json" in w and "lucerag calibrate" in w for w in report.warnings)
    assert os.stat(index).st_mode & 0o777 == 0o751
    fresh = tmp_path / "fresh"
    build_index(iter(docs), fresh, encoder=None)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(fresh).st_mode & 0o777 == 0o777 & ~umask
    assert not build_index(iter(docs), fresh, encoder=None).warnings  # nothing to carry over


def test_a_bad_file_in_a_folder_build_points_to_on_error_skip(tmp_path):
    book = _handbook(tmp_path)
    (book / "empty.md").write_text("")
    out = _cli("index", "--input", book, "--index", tmp_path / "idx")
    assert out.returncode != 0
    assert "empty.md" in out.stderr and "--on-error skip" in out.stderr
    assert not (tmp_path / "idx").exists()


def test_an_empty_rebuild_never_replaces_an_index_that_holds_passages(tmp_path):
    # An empty file, a folder of nothing readable, every record rejected: each adds no passage, and
    # a rebuild from it would have swapped the user's index for an empty one.
    book = _handbook(tmp_path)
    index = tmp_path / "idx"
    assert _cli("index", "--input", book, "--index", index, "--bm25-only", "--no-progress").returncode == 0
    before = _snapshot(index)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a"}\n{"text": "no id"}\n')
    for source, extra in ((empty, ()), (bad, ("--on-error", "skip", "--rejects", tmp_path / "rej.jsonl"))):
        out = _cli("index", "--input", source, "--index", index, "--bm25-only", "--no-progress", *extra)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"refusing to replace the index at {index} (2 passages) with an empty build" in out.stderr
        assert "Traceback" not in out.stderr
        assert _snapshot(index) == before  # not one file of the index changed
        assert not [p for p in tmp_path.iterdir() if ".building-" in p.name]  # and no build left beside it
    assert sorted(view_ids(index)[0]) == ["keys.md", "vacation.txt"]
    # From Python, the same refusal; a new path may still be built empty (nothing to lose there).
    from lucerag.errors import EmptyBuildError

    with pytest.raises(EmptyBuildError):
        build_index([], index, dense=False, progress=False)
    assert sorted(view_ids(index)[0]) == ["keys.md", "vacation.txt"]
    report = build_index([], tmp_path / "fresh", dense=False, progress=False)
    assert report.index_passages == 0


def test_a_missing_input_is_named_without_the_bad_record_hint(tmp_path):
    out = _cli("index", "--input", tmp_path / "nonexistent.jsonl", "--index", tmp_path / "idx", "--bm25-only")
    assert out.returncode == 2
    assert "nonexistent.jsonl: no such file or folder" in out.stderr
    assert "--on-error skip" not in out.stderr  # skipping records cannot help a source that is not there
    assert not (tmp_path / "idx").exists()


def test_the_on_error_skip_hint_comes_only_with_a_bad_record(tmp_path):
    import sqlite3

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "fine"}\n{"text": "no id"}\n')
    csv = tmp_path / "cols.csv"
    csv.write_text("a,b\n1,2\n")
    db = tmp_path / "docs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE docs (id TEXT, text TEXT)")
    cases = [(("--input", bad), "line 2: missing id", True),
             (("--input", csv), "missing column(s)", False),
             (("--input", db, "--format", "sqlite", "--query", "SELECT id, text FROM nosuch"), "no such table", False)]
    for args, reason, hinted in cases:
        out = _cli("index", *args, "--index", tmp_path / "idx", "--bm25-only", "--no-progress")
        assert out.returncode == 2 and reason in out.stderr, out.stderr
        assert ("--on-error skip" in out.stderr) == hinted, out.stderr  # skipping can't fix a whole source
