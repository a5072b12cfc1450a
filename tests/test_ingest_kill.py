"""SIGKILL mid-ingest: the previous index stays readable and answers every query identically.

Real processes: ``python -m lucerag index ...`` on a generated input big enough to be killed
part-way (the progress bar on stderr tells how far it got), then ``kill -9``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


from conftest import MINI_BEIR
from lucerag.index.manifest import IndexManifest
from lucerag.ingest.pipeline import view_ids

QUERIES = [json.loads(line)["text"] for line in (MINI_BEIR / "queries.jsonl").read_text().splitlines()]
WORDS = ("lucene index passage vector search query volcano bread marathon espresso tea keys backup "
         "river mountain planet galaxy music violin harbour engine turbine glacier desert").split()


def _answers(index: Path, encoder, methods=("bm25", "dense", "hybrid")) -> list:
    from lucerag.search.retriever import Retriever

    out = []
    with Retriever.from_index(index, encoder=encoder) as r:
        for q in QUERIES:
            for m in methods:
                ranking = r.rank(q, m, 10)
                out.append((q, m, ranking.ids, [round(float(s), 5) for s in ranking.scores]))
    return out


def _write_input(path: Path, n: int, words: int) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] + str(j % 13) for j in range(words))
            f.write(json.dumps({"id": f"gen{i}", "contents": text}) + "\n")
    return path


class _Run:
    """A ``lucerag index`` process whose progress bar (stderr) is followed on a thread."""

    def __init__(self, args: list):
        # stderr is a pipe, not a terminal: progress comes as log lines, asked for often here
        self.proc = subprocess.Popen([sys.executable, "-m", "lucerag", "index", *map(str, args),
                                      "--progress-every", "0.1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "COLUMNS": "200"})
        self.seen = 0
        self.err = bytearray()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            self.err.extend(chunk)
            # "ingest: 16,500/40,000 documents, ..." (log line) or "16500/40000 [" (a terminal's bar)
            found = re.findall(rb"([\d,]+)/([\d,]+) (?:documents|\[)", chunk)
            if found:
                self.seen = int(found[-1][0].replace(b",", b""))

    def wait_for(self, at_least: int, index_dir: Path, need_new_files: bool = False, timeout: float = 120) -> int:
        """Wait until the progress bar shows >= at_least documents (and, with need_new_files, until
        the process has written files into index_dir); returns the count seen."""
        before = set(os.listdir(index_dir)) if index_dir.exists() else set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the ingest ended too early:\n{self.err.decode()[-2000:]}"
            new_files = set(os.listdir(index_dir)) - before if index_dir.exists() else set()
            if self.seen >= at_least and (new_files or not need_new_files):
                return self.seen
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"no progress to {at_least} within {timeout}s:\n{self.err.decode()[-2000:]}")


def _kill_when(args: list, at_least: int, index_dir: Path, need_new_files: bool = False,
               timeout: float = 120) -> int:
    """Start ``lucerag index``; SIGKILL it once its progress bar shows >= at_least documents
    (and, with need_new_files, once it has written files into index_dir). Returns the count seen."""
    run = _Run(args)
    try:
        seen = run.wait_for(at_least, index_dir, need_new_files, timeout)
        run.proc.send_signal(signal.SIGKILL)
        assert run.proc.wait(30) == -signal.SIGKILL
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    return seen


def _index_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lucerag", "index", *map(str, args), "--json", "--no-progress"],
                          capture_output=True, text=True, timeout=300)


def test_sigkill_during_a_rebuild_leaves_the_old_index_answering_identically(tmp_path, mini_index, encoder):
    index = tmp_path / "idx"
    shutil.copytree(mini_index, index)
    before, files = _answers(index, encoder), sorted(os.listdir(index))
    big = _write_input(tmp_path / "big.jsonl", 40_000, 30)
    done = _kill_when(["--input", big, "--index", index, "--bm25-only", "--batch-size", "500"], 16_000,
                      tmp_path)
    assert 16_000 <= done < 40_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx.building-")]  # killed mid-build
    assert sorted(os.listdir(index)) == files
    assert _answers(index, encoder) == before
    bm25, dense = view_ids(index)
    assert bm25 == dense and len(bm25) == 25
    # the next build of this index first removes the dead build's temporary directory
    from lucerag.index.writer import recover

    recover(index)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx.building-")]
    # the killed rebuild's write lock died with it: an append goes ahead at once
    out = _index_cli("--input", _write_input(tmp_path / "small.jsonl", 20, 10), "--index", index, "--append")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["index_passages"] == 45


def test_sigkill_during_an_append_leaves_the_last_commit_answering_identically(tmp_path, mini_index, encoder):
    index = tmp_path / "idx"
    shutil.copytree(mini_index, index)
    before, manifest = _answers(index, encoder), IndexManifest.read(index)
    data = _write_input(tmp_path / "more.jsonl", 1_500, 6)
    # a 1 MB buffer makes Lucene flush segments into the live index before the kill:
    # they are on disk but no commit names them
    done = _kill_when(["--input", data, "--index", index, "--append", "--batch-size", "32",
                       "--ram-buffer-mb", "1"], 600, index, need_new_files=True)
    assert 600 <= done < 1_500
    assert _answers(index, encoder) == before
    assert IndexManifest.read(index) == manifest
    bm25, dense = view_ids(index)
    assert bm25 == dense and len(bm25) == 25
    # the index is still writable (lock released, orphaned files cleaned) and the append completes
    small = _write_input(tmp_path / "small.jsonl", 20, 10)
    out = subprocess.run([sys.executable, "-m", "lucerag", "index", "--input", small, "--index", index,
                          "--append", "--json", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["index_passages"] == 45
    bm25, dense = view_ids(index)
    assert bm25 == dense and len(bm25) == 45


def test_a_rebuild_refuses_while_an_append_holds_the_lock_and_the_append_completes(tmp_path, mini_index):
    """Issue 15 item 2: rebuild vs append, two real processes. The rebuild must neither swap its index
    in under the append (which then failed with 'Underlying file changed by an external force') nor
    replace the append's result; it stops at once, naming the index, and changes nothing."""
    index = tmp_path / "idx"
    shutil.copytree(mini_index, index)
    data = _write_input(tmp_path / "more.jsonl", 1000, 6)
    append = _Run(["--input", data, "--index", index, "--append", "--batch-size", "16", "--json"])
    try:
        append.wait_for(32, index)
        rebuild = _index_cli("--input", _write_input(tmp_path / "other.jsonl", 5, 5), "--index", index,
                             "--bm25-only")
        assert append.proc.poll() is None, "the append finished before the rebuild was tried: make it longer"
        assert rebuild.returncode == 2, rebuild.stdout + rebuild.stderr
        assert f"{index} is being written by another process" in rebuild.stderr
        assert "Traceback" not in rebuild.stderr
        out, _ = append.proc.communicate(timeout=600)
    finally:
        if append.proc.poll() is None:
            append.proc.kill()
    assert append.proc.returncode == 0, append.err.decode()[-2000:]
    assert json.loads(out.decode().strip().splitlines()[-1])["index_passages"] == 1025
    bm25, dense = view_ids(index)
    assert bm25 == dense and len(bm25) == 1025 and "gen999" in bm25
    assert not [p for p in tmp_path.iterdir() if ".building-" in p.name or ".old-" in p.name]
