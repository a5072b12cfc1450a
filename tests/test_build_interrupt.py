"""Ctrl-C (SIGINT) and SIGTERM during an index build: one line on stderr naming the index and the stage,
exit status 130 / 143, the previous index still answering, and no build folder left behind.

Real processes (``lucerag`` run by a small launcher that lowers the graph threshold, as
test_merge_kill does, so that a small build reaches the close-time HNSW merge), a real JVM (started
with -Xrs, so the signal reaches Python) and real Lucene indexes. ``lucerag serve`` keeps its own
graceful shutdown on SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import numpy as np
import pytest

from lucerag.index.reader import LuceneIndex
from lucerag.index.writer import IndexWriter
from lucerag.search.searchers import BM25Searcher

# The launcher: every segment gets a graph (GRAPH_FROM 0), built by one thread with a wide beam, so the
# close-time merge of a few thousand vectors outlasts the test's wait on any CPU.
LAUNCHER = textwrap.dedent("""
    import sys
    import lucerag.index.hnsw as hnsw
    hnsw.GRAPH_FROM = 0
    import lucerag.index.writer as writer
    writer.default_merge_workers = lambda: 1
    from lucerag.cli import main
    sys.argv = ["lucerag", *sys.argv[1:]]
    main()
""")


def _building(folder):
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name)


def _old_index(index):
    vectors = np.eye(32, dtype=np.float32)[:20]
    with IndexWriter(index, dim=32) as w:
        w.add_batch([f"o{i}" for i in range(20)], [f"old text {i}" for i in range(20)], vectors)
    return sorted(os.listdir(index))


def _writing(folder) -> bool:
    """A build folder beside the index holds Lucene's write.lock: the JVM runs and the build is open."""
    return any((folder / name / "write.lock").exists() for name in _building(folder))


def _default_signals() -> None:
    """The child starts with the stop signals at their defaults, as from a terminal, whatever this
    test process inherited (under nohup SIGHUP is ignored, and lucerag rightly keeps it ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _interrupt(args, index, folders: int, sig, preexec_fn=None, then=None) -> tuple[int, str]:
    """Run ``lucerag *args``, send ``sig`` once ``folders`` build folders of ``index`` exist and Lucene
    writes into one (``then``: (a second signal, seconds after the first)); (status, stderr).
    ``preexec_fn`` runs in the child after :func:`_default_signals`."""

    def start() -> None:
        _default_signals()
        if preexec_fn is not None:
            preexec_fn()

    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=start)
    try:
        end = time.monotonic() + 120
        while ((len(_building(index.parent)) < folders or not _writing(index.parent))
               and time.monotonic() < end and proc.poll() is None):
            time.sleep(0.02)
        assert proc.poll() is None and len(_building(index.parent)) == folders, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(sig)
        if then is not None:
            time.sleep(then[1])
            if proc.poll() is None:
                proc.send_signal(then[0])
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode()


def _check_old_index_and_next_build(index, files):
    assert sorted(os.listdir(index)) == files
    reader = LuceneIndex(index)
    try:
        assert reader.manifest.passages == 20
        hits = BM25Searcher(reader).search("old text 7", k=3)
        assert hits.ids[0] == "o7"
    finally:
        reader.close()
    with IndexWriter(index, mode="append") as w:  # the next writer goes ahead: no lock left
        w.add_batch(["o20"], ["one more"], np.eye(32, dtype=np.float32)[:1])
    assert _building(index.parent) == [] and LuceneIndex(index).manifest.passages == 21


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_graph_merge_says_so_and_removes_the_build(tmp_path, sig, status):
    from lucerag.ingest.vectors import export_vectors

    index = tmp_path / "idx"
    files = _old_index(index)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    source = tmp_path / "vectors.jsonl"
    export_vectors(((f"n{i}", vectors[i], f"new passage {i}") for i in range(len(vectors))), source)
    rc, err = _interrupt(["import-vectors", "-i", source, "--index", index, "--hnsw-beam", "3200", "--no-progress"],
                         index, 2, sig)
    lines = [line for line in err.splitlines() if line.startswith("lucerag:")]
    assert rc == status and len(lines) == 1, err[-2000:]
    assert f"{sig.name} while building {index} (graph merge," in lines[0]
    assert "previous index there is unchanged" in lines[0] and "partial build was removed" in lines[0]
    assert "Traceback" not in err and _building(tmp_path) == []  # removed now, as the line says
    _check_old_index_and_next_build(index, files)


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_ctrl_c_during_ingest_says_so_and_leaves_the_previous_index(tmp_path, sig, status):
    """Ctrl-C, and SIGHUP (the terminal closed): the build was killed before, leaving its folder."""
    index = tmp_path / "idx"
    files = _old_index(index)
    source = _write_docs(tmp_path / "docs.jsonl", 60_000)
    rc, err = _interrupt(["index", "-i", source, "--index", index, "--bm25-only", "--no-progress"], index, 1, sig)
    assert rc == status and "Traceback" not in err, err[-2000:]
    assert f"lucerag: stopped by {sig.name} while building {index} (ingest," in err
    assert "previous index there is unchanged; the partial build was removed" in err
    assert _building(tmp_path) == []
    _check_old_index_and_next_build(index, files)


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_sigterm_after_ctrl_c_does_not_change_the_reported_stop(tmp_path, delay):
    """A second signal while the first one's clean-up and exit run (an impatient user, a supervisor's
    SIGTERM) is only noted: status 130 and one line, not a death by SIGTERM or a traceback."""
    index = tmp_path / "idx"
    files = _old_index(index)
    source = _write_docs(tmp_path / "docs.jsonl", 60_000)
    rc, err = _interrupt(["index", "-i", source, "--index", index, "--bm25-only", "--no-progress"], index, 1,
                         signal.SIGINT, then=(signal.SIGTERM, delay))
    lines = [line for line in err.splitlines() if line.startswith("lucerag:")]
    assert rc == 130 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert lines[0].startswith(f"lucerag: stopped by SIGINT while building {index} (ingest,")
    assert _building(tmp_path) == []
    _check_old_index_and_next_build(index, files)


def _write_docs(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "text": f"new document {i} about topic {i % 97}"}) + "\n")
    return path


def test_a_build_started_with_sigint_ignored_keeps_ignoring_it(tmp_path):
    """A shell's background job (or nohup) starts with SIGINT ignored: the terminal's Ctrl-C is not
    for it, and the build goes on to the end."""
    index = tmp_path / "idx"
    _old_index(index)
    source = _write_docs(tmp_path / "docs.jsonl", 5000)
    rc, err = _interrupt(["index", "-i", source, "--index", index, "--bm25-only", "--no-progress"], index, 1,
                         signal.SIGINT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert rc == 0 and "lucerag:" not in err, err[-2000:]
    assert _building(tmp_path) == [] and LuceneIndex(index).manifest.passages == 5000


def test_an_interrupted_java_call_raises_keyboard_interrupt_at_once(tmp_path):
    """Library use: -Xrs leaves SIGINT to Python, and a long Java call made through run_interruptibly
    gives way to KeyboardInterrupt (the JVM used to exit the process, status 130, without a word)."""
    script = textwrap.dedent("""
        import time
        from lucerag.lucene.interruptible import abandoned, run_interruptibly
        from lucerag.lucene.jvm import jclass
        sleep = jclass("java.lang.Thread").sleep
        print("ready", flush=True)
        start = time.monotonic()
        try:
            run_interruptibly(sleep, 30000)
        except KeyboardInterrupt:
            print(f"interrupted {time.monotonic() - start:.2f} {abandoned()}", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    word, seconds, left = out.split()
    assert word == "interrupted" and float(seconds) < 5 and left == "True"


def test_serve_still_shuts_down_gracefully_on_ctrl_c(mini_index):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lucerag", "serve", "--index", str(mini_index), "--port",
                             str(port), "--log-level", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_signals)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/retrieve", json={"query": "espresso", "k": 2,
                                                                         "method": "bm25"}, timeout=30)
        assert answer.status_code == 200 and answer.json()["passages"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # uvicorn shuts down gracefully, then re-raises the signal it caught: Python's own exit on SIGINT
    assert "Application shutdown complete" in err and "Traceback" not in err, err[-2000:]
    assert proc.returncode == 130, err[-2000:]


def test_a_signal_once_the_build_is_publishing_lets_it_finish_and_says_so(tmp_path):
    """The signal comes while the finished build is swapped in (sent from inside the writer's _publish):
    the swap completes, the command reports its build, and the line says the new index is in place."""
    index = tmp_path / "idx"
    _old_index(index)
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"new document {i}"}) + "\n" for i in range(50)))
    launcher = LAUNCHER.replace("from lucerag.cli import main", textwrap.dedent("""
        import os, signal
        real = writer._publish
        def publish(built, target):
            os.kill(os.getpid(), signal.SIGINT)
            real(built, target)
        writer._publish = publish
        from lucerag.cli import main"""))
    out = subprocess.run([sys.executable, "-c", launcher, "index", "-i", str(source), "--index", str(index),
                          "--bm25-only", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 130 and "indexed 50 documents" in out.stdout, out.stderr[-2000:]
    assert f"lucerag: stopped by SIGINT while building {index} (publish," in out.stderr
    assert "too late to stop: the new index is in place" in out.stderr
    assert _building(tmp_path) == [] and LuceneIndex(index).manifest.passages == 50


WINDOWS = textwrap.dedent("""
    # Ctrl-C (a real SIGINT to this process) at a chosen step of IndexWriter.close(), from Python.
    import json, os, signal, sys
    from pathlib import Path
    import numpy as np
    import lucerag.index.writer as writer
    from lucerag.index.manifest import IndexManifest
    from lucerag.index.reader import LuceneIndex
    from lucerag.index.writer import IndexWriter

    folder = Path(sys.argv[1])
    index = folder / "idx"

    def build(ids, mode="create"):
        with IndexWriter(index, dim=8, mode=mode) as w:
            w.add_batch(ids, [f"text {i}" for i in ids], np.eye(8, dtype=np.float32)[np.arange(len(ids)) % 8])

    def signalled_before(owner, name):  # the real step runs, a SIGINT arriving just before it
        real = getattr(owner, name)
        def step(*args, **kwargs):
            signal.raise_signal(signal.SIGINT)
            return real(*args, **kwargs)
        setattr(owner, name, step)
        return lambda: setattr(owner, name, real)

    def state():
        lucene = LuceneIndex(index)
        out = {"lucene": lucene.size,
               "manifest": IndexManifest.read(index).passages,
               "building": sorted(p.name for p in folder.iterdir() if ".building-" in p.name)}
        lucene.close()
        return out

    build([f"o{i}" for i in range(20)])
    report = {}
    for case, owner, name, mode in (("create, before the carry-over", writer, "_carry_over", "create"),
                                    ("create, at the swap", writer, "_publish", "create"),
                                    ("append, at the manifest", IndexManifest, "write", "append")):
        undo = signalled_before(owner, name)
        try:
            build([f"n{case[:6]}{i}" for i in range(30)], mode)
            raised = False
        except KeyboardInterrupt:
            raised = True
        finally:
            undo()
        report[case] = {"raised": raised, **state()}
        with IndexWriter(index, dim=8, mode="append"):  # the lock was released
            pass
    print(json.dumps(report))
""")


def test_ctrl_c_after_the_commit_from_python_never_leaves_a_half_published_index(tmp_path):
    """From Python, Ctrl-C between a build's commit and its swap removes the build; once the swap or
    an append's commit has begun, the signal is held until the index and its manifest are in place,
    then raised. (Before: the build folder stayed beside the index, and an append's manifest kept the
    old passage count.)"""
    out = subprocess.run([sys.executable, "-c", WINDOWS, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    before_swap, at_swap, append = report.values()
    assert before_swap["raised"] and before_swap["building"] == [] and before_swap["manifest"] == 20
    assert at_swap["raised"] and at_swap["building"] == [] and at_swap["manifest"] == 30
    assert append["raised"] and append["building"] == [] and append["manifest"] == 60
    assert all(case["lucene"] == case["manifest"] for case in report.values()), report


SWEEP = textwrap.dedent("""
    # A real SIGINT at every line IndexWriter.close() runs (in lucerag's writer and progress modules),
    # one close per line: after each, the index is the old one or the new one, whole.
    import json, os, signal, sys
    from pathlib import Path
    import numpy as np
    import lucerag.index.writer as writer_module
    import lucerag.progress as progress_module
    from lucerag.index.manifest import IndexManifest
    from lucerag.index.reader import LuceneIndex
    from lucerag.index.writer import IndexWriter

    folder, mode, graph_from = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ours = {writer_module.__file__, progress_module.__file__}
    seen = {"lines": 0, "at": None}

    def tracer(frame, event, arg):
        if frame.f_code.co_filename not in ours:
            return None
        def on_line(frame, event, arg):
            if event == "line":
                seen["lines"] += 1
                if seen["lines"] == seen["at"]:
                    os.kill(os.getpid(), signal.SIGINT)
            return on_line
        return on_line

    def close_with_sigint_at(index, at):
        seen["lines"], seen["at"] = 0, at
        w = IndexWriter(index, dim=8, mode=mode, graph_from=graph_from)
        ids = [f"{mode}{i}" for i in range(30)]
        w.add_batch(ids, [f"text {i}" for i in ids], np.eye(8, dtype=np.float32)[np.arange(30) % 8])
        sys.settrace(tracer)
        try:
            w.close()
            raised = False
        except KeyboardInterrupt:
            raised = True
        finally:
            sys.settrace(None)
        return raised, seen["lines"]

    def fresh(index):
        with IndexWriter(index, dim=8) as w:
            w.add_batch([f"o{i}" for i in range(20)], ["old"] * 20, np.eye(8, dtype=np.float32)[np.arange(20) % 8])

    fresh(folder / "probe")
    _, total = close_with_sigint_at(folder / "probe", None)
    bad = []
    for at in range(2, total + 1):  # 1: the line that enters close(), guarded by the caller (__exit__)
        index = folder / f"i{at}"
        fresh(index)
        raised, _ = close_with_sigint_at(index, at)
        reader = LuceneIndex(index)
        lucene, manifest = reader.size, IndexManifest.read(index).passages
        reader.close()
        left = [p.name for p in folder.iterdir() if ".building-" in p.name]
        try:
            with IndexWriter(index, mode="append"):  # the lock was released
                locked = False
        except Exception:
            locked = True
        if not raised or lucene != manifest or lucene not in (20, 30 if mode == "create" else 50) or left or locked:
            bad.append({"at": at, "raised": raised, "lucene": lucene, "manifest": manifest, "left": left,
                        "locked": locked})
    print(json.dumps({"lines": total, "bad": bad}))
""")


@pytest.mark.parametrize(("mode", "graph_from"), [("create", 10**9), ("append", 10**9), ("create", 0)])
def test_ctrl_c_at_any_line_of_close_leaves_the_old_or_the_new_index_whole(tmp_path, mode, graph_from):
    """From Python, a KeyboardInterrupt may land between any two lines. Whatever line of close() it
    hits (the commit, the graph merge for graph_from 0, the manifest, the swap): the index is the old
    one or the new one, Lucene and lucerag.json agree, no build folder is left and the lock is free."""
    out = subprocess.run([sys.executable, "-c", SWEEP, str(tmp_path), mode, str(graph_from)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["lines"] > 40 and report["bad"] == [], report
