"""SIGKILL during the close-time HNSW merge of a fresh build (IndexWriter._merge_graph): the index it
was replacing still answers, no lock is left, and the next writer of the index, an append as well as a
rebuild, removes both of the dead build's folders (its flushed build and its half-merged one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from lucerag.index.reader import LuceneIndex
from lucerag.index.writer import IndexWriter

BUILD = textwrap.dedent("""
    import sys
    import numpy as np
    from lucerag.index.writer import IndexWriter
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with IndexWriter(sys.argv[1], dim=32, graph_from=0, hnsw_m=16, hnsw_beam=200, merge_workers=1) as w:
        for a in range(0, 30000, 5000):
            w.add_batch([f"n{i}" for i in range(a, a + 5000)], [f"new {i}" for i in range(a, a + 5000)],
                        v[a:a + 5000])
""")


def _building(folder):
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name)


def test_sigkill_during_the_graph_merge_leaves_the_old_index_and_the_next_writer_cleans_up(tmp_path):
    index = tmp_path / "idx"
    rng = np.random.default_rng(1)
    old = rng.normal(size=(20, 32)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    with IndexWriter(index, dim=32) as w:
        w.add_batch([f"o{i}" for i in range(20)], [f"old text {i}" for i in range(20)], old)
    files = sorted(os.listdir(index))
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(index)], stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        while len(_building(tmp_path)) < 2 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)  # two build folders: the flushed build and the merge it is being written into
        assert len(_building(tmp_path)) == 2, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sorted(os.listdir(index)) == files
    reader = LuceneIndex(index)
    assert reader.manifest.passages == 20 and reader.ids(list(range(20))) == [f"o{i}" for i in range(20)]
    reader.close()
    # an append is the next writer: it goes ahead at once (no lock left) and removes the dead folders
    with IndexWriter(index, mode="append") as w:
        w.add_batch(["o20"], ["one more"], old[:1])
    assert _building(tmp_path) == [] and LuceneIndex(index).manifest.passages == 21
