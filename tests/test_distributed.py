"""Distributed ingest on a real local Ray cluster: the index equals a single-process build.

Real parts throughout: ``ray.init(num_cpus=2)`` (raylet, object store, worker processes), encoder
actors running the real ONNX model, shard writers with their own JVMs writing real Lucene indexes,
merged by Lucene's ``addIndexes`` on the driver.  Killed workers are real process exits
(``os._exit`` in the worker, once, guarded by a marker file).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DL19_SLICE, MINI_BEIR, mini_documents

pytest.importorskip("ray")

from lucerag.errors import DuplicateIdError, InputError  # noqa: E402
from lucerag.index.manifest import IndexManifest  # noqa: E402
from lucerag.ingest.distributed import (  # noqa: E402
    DistributedIngestError, RayNotInstalledError, RayOptions, jvm_safe_ray)

ray = jvm_safe_ray()  # this process hosts the JVM too: Ray's crash handler must stay off
from lucerag.ingest.pipeline import build_index  # noqa: E402

BATCH = 32        # passages per batch: several batches per shard
SHARD = 64        # passages per shard: several shards for a few hundred passages


def _corpus() -> tuple[list, list[str]]:
    """300 passages and 20 queries: the DL19 slice when the shared data is there, else 300
    overlapping 40-word windows of the mini BEIR corpus (its 10 queries plus 10 document titles):
    the tests need several shards, whichever corpus they get."""
    from lucerag.connectors import Document

    if DL19_SLICE.exists():
        with open(DL19_SLICE / "corpus.jsonl") as f:
            docs = []
            for line in f:
                o = json.loads(line)
                docs.append(Document(id=o["_id"], title=o.get("title", ""), text=o["text"]))
                if len(docs) == 300:
                    break
        queries = [json.loads(line)["text"] for line in (DL19_SLICE / "queries.jsonl").read_text().splitlines()]
        return docs, queries[:20]
    mini = mini_documents()
    words = " ".join(d.text for d in mini).split()
    docs = [Document(id=f"w{i}", title=mini[i % len(mini)].title,
                     text=" ".join(words[(7 * i + j) % len(words)] for j in range(40))) for i in range(300)]
    queries = [json.loads(line)["text"] for line in (MINI_BEIR / "queries.jsonl").read_text().splitlines()]
    return docs, (queries + [d.title for d in mini if d.title])[:20]


DOCS, QUERIES = _corpus()


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=300 << 20, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def _options(**kw) -> RayOptions:
    return RayOptions(shard_passages=SHARD, progress_every_s=0, **kw)


@pytest.fixture(scope="module")
def single(tmp_path_factory, encoder) -> Path:
    path = tmp_path_factory.mktemp("single") / "index"
    build_index(DOCS, path, encoder=encoder, batch_size=BATCH, progress=False)
    return path


def _contents(path: Path) -> tuple[list[str], np.ndarray, list[dict]]:
    """Every live passage of an index in doc order: ids, stored vectors, stored records."""
    from lucerag.index.reader import LuceneIndex

    index = LuceneIndex(path)
    try:
        live = [d for d in range(int(index.reader.maxDoc()))]
        bits = index.reader.numDocs() == index.reader.maxDoc()
        assert bits, "a freshly built index has no deleted passages"
        ids = index.ids(live)
        vectors = index.vectors(live) if index.has_vectors() else np.zeros((len(ids), 0), np.float32)
        records = [index.record(d) for d in live]
        return ids, vectors, records
    finally:
        index.close()


def _answers(path: Path, encoder, methods=("bm25", "dense", "hybrid")) -> dict:
    from lucerag.search.retriever import Retriever

    out = {}
    with Retriever.from_index(path, encoder=encoder) as r:
        for q in QUERIES:
            for m in methods:
                ranking = r.rank(q, m, 10)
                out[(q, m)] = (ranking.ids, np.asarray(ranking.scores, np.float64))
    return out


def _assert_same_index(built: Path, reference: Path, encoder) -> None:
    ids, vectors, records = _contents(built)
    ref_ids, ref_vectors, ref_records = _contents(reference)
    assert len(ids) == len(set(ids)), "duplicate passages"
    assert ids == ref_ids  # same passages, same order
    assert records == ref_records
    cos = np.einsum("ij,ij->i", vectors, ref_vectors) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(ref_vectors, axis=1))
    assert cos.min() >= 0.9999, f"min cosine {cos.min()}"
    got, want = _answers(built, encoder), _answers(reference, encoder)
    for (q, m), (ref_ids_q, ref_scores) in want.items():
        ids_q, scores = got[(q, m)]
        assert ids_q == ref_ids_q, f"{m} ranking differs for {q!r}"
        if m == "bm25":
            assert np.array_equal(scores, ref_scores), f"BM25 scores differ for {q!r}"
        else:
            np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-4)


def test_ray_build_equals_single_process_build(cluster, single, encoder, tmp_path, caplog):
    path = tmp_path / "index"
    with caplog.at_level(logging.INFO, logger="lucerag.ingest.distributed"):
        report = build_index(DOCS, path, encoder=encoder, batch_size=BATCH, progress=False, total=len(DOCS),
                             ray=_options())
    assert report.encoders == 2 and report.shards >= 3, report
    assert report.shard_attempts == report.shards and report.encoder_restarts == 0
    assert report.passages == report.index_passages == IndexManifest.read(single).passages
    _assert_same_index(path, single, encoder)
    # the same manifest: everything but the build time and the record of the cluster
    mine, theirs = IndexManifest.read(path).model_dump(), IndexManifest.read(single).model_dump()
    assert mine["settings"].pop("ray") == {"encoders": 2, "shards": report.shards, "shard_passages": SHARD}
    for m in (mine, theirs):
        m.pop("built_at")
    assert mine == theirs
    # progress: passages/s and ETA in plain log lines
    lines = [r.getMessage() for r in caplog.records if "passages/s" in r.getMessage()]
    assert lines and any("ETA" in line for line in lines), lines
    assert not list(tmp_path.glob(".index.*")), "work folders left behind"



def test_a_new_ray_index_of_graph_from_passages_is_one_segment_with_one_graph(cluster, single, encoder, tmp_path):
    """With shards below graph_from, a Ray build of graph_from passages or more ends as a
    single-process build does: one segment whose HNSW graph holds every passage (the driver builds
    it when it closes), with the same answers. Shards of graph_from passages or more build their own
    graphs and stay segments of their own (every passage in a graph)."""
    from lucerag.index.reader import LuceneIndex
    from lucerag.ingest.options import HnswOptions

    passages = IndexManifest.read(single).passages
    hnsw = HnswOptions(m=8, beam=32, graph_from=passages // 2)
    local = tmp_path / "local"
    build_index(DOCS, local, encoder=encoder, batch_size=BATCH, progress=False, hnsw=hnsw)
    report = build_index(DOCS, tmp_path / "ray", encoder=encoder, batch_size=BATCH, progress=False, ray=_options(),
                         hnsw=hnsw)
    assert report.shards >= 3
    for path in (local, tmp_path / "ray"):
        index = LuceneIndex(path)
        try:
            assert int(index.reader.leaves().size()) == 1 and index.graph_nodes() == passages
        finally:
            index.close()
    _assert_same_index(tmp_path / "ray", local, encoder)
    build_index(DOCS, tmp_path / "shards", encoder=encoder, batch_size=BATCH, progress=False, ray=_options(),
                hnsw=HnswOptions(m=8, beam=32, graph_from=SHARD // 2))
    index = LuceneIndex(tmp_path / "shards")
    try:
        # every shard but a last one under graph_from brings its graph
        assert int(index.reader.leaves().size()) >= 3 and passages - SHARD // 2 < index.graph_nodes() <= passages
    finally:
        index.close()

def test_bm25_only_ray_build_equals_single_process(cluster, tmp_path, encoder):
    single = tmp_path / "single"
    build_index(DOCS, single, dense=False, batch_size=BATCH, progress=False)
    build_index(DOCS, tmp_path / "ray", dense=False, batch_size=BATCH, progress=False, ray=_options())
    ids, _, records = _contents(tmp_path / "ray")
    assert (ids, records) == _contents(single)[::2]
    got = _answers(tmp_path / "ray", None, ("bm25",))
    want = _answers(single, None, ("bm25",))
    assert all(got[k][0] == want[k][0] and np.array_equal(got[k][1], want[k][1]) for k in want)


def test_killed_workers_are_retried_without_duplicates(cluster, single, encoder, tmp_path):
    """An encoder actor and a shard writer each die once (os._exit mid-batch / mid-shard): Ray
    restarts the actor and re-runs the shard task; the index equals the single-process one."""
    encode, write = tmp_path / "encode-crashed", tmp_path / "write-crashed"
    report = build_index(DOCS, tmp_path / "index", encoder=encoder, batch_size=BATCH, progress=False,
                         ray=_options(crash_once={"encode": str(encode), "write": str(write)}))
    assert encode.exists() and write.exists(), "no worker was killed"
    assert report.encoder_restarts == 1
    assert report.shard_attempts == report.shards + 1  # the half-written attempt was not merged
    _assert_same_index(tmp_path / "index", single, encoder)


def test_failure_after_retries_publishes_nothing(cluster, single, encoder, tmp_path):
    import shutil

    path = tmp_path / "index"
    shutil.copytree(single, path)
    before = sorted(p.name for p in path.iterdir())
    marker = tmp_path / "encode-crashed"
    with pytest.raises(DistributedIngestError, match="nothing was published"):
        build_index(DOCS[:50], path, encoder=encoder, batch_size=BATCH, progress=False,
                    ray=_options(max_retries=0, crash_once={"encode": str(marker)}))
    assert marker.exists()
    assert sorted(p.name for p in path.iterdir()) == before
    assert _contents(path)[0] == _contents(single)[0]  # the previous index answers as before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encode-crashed", "index"]


def test_ray_append_upserts_like_a_single_process_append(cluster, encoder, tmp_path):
    from lucerag.connectors import Document

    base, changes = DOCS[:120], DOCS[100:140]
    changes = [Document(id=d.id, title=d.title, text=d.text + " volcano espresso") if i % 2 else d
               for i, d in enumerate(changes)]
    for name, ray_options in (("single", None), ("ray", _options())):
        build_index(base, tmp_path / name, encoder=encoder, batch_size=BATCH, progress=False)
        build_index(changes, tmp_path / name, encoder=encoder, mode="append", batch_size=BATCH,
                    progress=False, ray=ray_options)
    from lucerag.ingest.pipeline import view_ids

    ray_ids, single_ids = view_ids(tmp_path / "ray"), view_ids(tmp_path / "single")
    assert ray_ids == single_ids and ray_ids[0] == {d.id for d in DOCS[:140]}
    assert IndexManifest.read(tmp_path / "ray").passages == 140
    a = _answers(tmp_path / "ray", encoder, ("bm25", "hybrid"))
    b = _answers(tmp_path / "single", encoder, ("bm25", "hybrid"))
    for key in b:
        assert a[key][0] == b[key][0], key
        np.testing.assert_allclose(a[key][1], b[key][1], rtol=0, atol=1e-4)


def test_missing_ray_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayNotInstalledError, match=r"lucerag\[ray\]"):
        build_index(DOCS[:3], tmp_path / "x", dense=False, progress=False, ray=True)
    assert not (tmp_path / "x").exists()


_HANDLER_PROBE = r"""
import ctypes, signal
def handler_library():
    action = ctypes.create_string_buffer(256)       # struct sigaction: the handler comes first
    ctypes.CDLL(None).sigaction(signal.SIGSEGV, None, action)
    address = int.from_bytes(action.raw[:8], "little")
    for line in open("/proc/self/maps"):
        span, *rest = line.split()
        lo, hi = (int(x, 16) for x in span.split("-"))
        if lo <= address < hi:
            return rest[-1].rsplit("/", 1)[-1]
    return hex(address)
from lucerag.lucene.classes import java
java.analyzer                                       # the JVM runs first, as after a search
from lucerag.ingest.distributed import RayOptions, _connect, _import_ray
ray = _import_ray()
before = handler_library()
_connect(ray, RayOptions(num_cpus=1, object_store_mb=100))
print(before, handler_library())
ray.shutdown()
"""


def test_joining_ray_keeps_the_jvm_signal_handler():
    """The JVM raises SIGSEGV on purpose and must see it first: a process whose JVM is running when
    it joins Ray keeps the JVM's handler (Ray's crash handlers over it killed Lucene's HNSW builder)."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = subprocess.run([sys.executable, "-c", _HANDLER_PROBE], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = out.stdout.split()[-2:]
    assert before == "libjvm.so" and after == "libjvm.so", (before, after)


def test_cli_index_ray_joins_a_cluster(cluster, tmp_path):
    """`lucerag index --ray ADDRESS` in another process joins the running cluster and builds the
    index a plain `lucerag index` builds; progress lines go to stderr."""
    import os
    import subprocess

    address = ray.get_runtime_context().gcs_address
    common = ["--input", str(MINI_BEIR), "--bm25-only", "--batch-size", "4", "--no-progress", "--json"]
    out = {}
    for name, extra in (("plain", []), ("ray", ["--ray", address, "--ray-shard-passages", "8"])):
        proc = subprocess.run([sys.executable, "-m", "lucerag", "index", *common, "--index", str(tmp_path / name),
                               *extra], capture_output=True, text=True, timeout=600, env=dict(os.environ))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = (json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr)
    assert out["ray"][0]["shards"] >= 3 and out["ray"][0]["passages"] == out["plain"][0]["passages"]
    assert "passages/s" in out["ray"][1]
    assert _contents(tmp_path / "ray")[::2] == _contents(tmp_path / "plain")[::2]


def _titled_corpus(n: int = 36) -> list:
    """Documents with titles and metadata (strings, numbers, lists, dates, nesting); some long
    enough to be cut into several passages."""
    from lucerag.connectors import Document

    topics = ["volcano", "espresso", "glacier", "violin", "harbour", "orchard"]
    docs = []
    for i in range(n):
        topic = topics[i % len(topics)]
        words = " ".join(f"{topic} note {j} about item {i} and its {topics[(i + j) % len(topics)]}" for j in range(
            4 if i % 3 else 60))
        docs.append(Document(id=f"doc-{i}", title=f"The {topic} report {i}", text=words,
                             metadata={"lang": "en" if i % 2 else "de", "year": 2000 + i, "tags": [topic, "x"],
                                       "published": f"2024-01-{1 + i % 28:02d}", "source": {"kind": topic}}))
    return docs


@pytest.mark.parametrize("dense_text, chunk", [("title+text", True), ("text", False)])
def test_ray_build_with_titles_and_metadata_equals_single_process(cluster, encoder, tmp_path, dense_text, chunk,
                                                                  caplog):
    """dense_text, chunk=False, metadata filter fields and progress_every: the same index both ways."""
    from lucerag.search.retriever import Retriever

    docs = _titled_corpus()
    common = dict(encoder=encoder, batch_size=8, progress=False, dense_text=dense_text, chunk=chunk)
    build_index(docs, tmp_path / "single", **common)
    with caplog.at_level(logging.INFO, logger="lucerag.ingest.distributed"):
        report = build_index(docs, tmp_path / "ray", ray=RayOptions(shard_passages=16, progress_every_s=3600),
                             progress_every=0, **common)
    assert report.shards >= 3, report
    assert any("passages/s" in r.getMessage() for r in caplog.records)  # progress_every=0 beat the option's hour
    mine, theirs = IndexManifest.read(tmp_path / "ray").model_dump(), IndexManifest.read(tmp_path / "single").model_dump()
    mine["settings"].pop("ray")
    for m in (mine, theirs):
        m.pop("built_at")
    assert mine == theirs
    assert mine["dense_text"] == dense_text and (mine["settings"]["chunker"] == "none") != chunk
    assert {"lang", "year", "tags", "published", "source.kind"} <= set(mine["metadata_fields"])
    ids, vectors, records = _contents(tmp_path / "ray")
    ref_ids, ref_vectors, ref_records = _contents(tmp_path / "single")
    assert ids == ref_ids and records == ref_records
    assert (len(ids) > len(docs)) == chunk  # chunk=False: one passage per document
    cos = np.einsum("ij,ij->i", vectors, ref_vectors) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(ref_vectors, axis=1))
    assert cos.min() >= 0.9999, f"min cosine {cos.min()}"
    where = {"and": [{"term": {"lang": "en"}}, {"range": {"year": {"gte": 2010}}}, {"term": {"source.kind": "violin"}}]}
    results = []
    for name in ("ray", "single"):
        with Retriever.from_index(tmp_path / name, encoder=encoder) as r:
            results.append([r.rank(q, m, 10, where=where).ids for q in ("violin report", "harbour") for m in
                            ("bm25", "dense", "hybrid")])
    assert results[0] == results[1] and all(results[0]) and all(
        i.split("#")[0] in {"doc-15", "doc-21", "doc-27", "doc-33"} for r in results[0] for i in r)


def test_ray_append_keeps_the_index_dense_text(cluster, encoder, tmp_path):
    docs = _titled_corpus(6)
    build_index(docs, tmp_path / "index", encoder=encoder, progress=False, dense_text="text", chunk=False)
    with pytest.raises(InputError, match="encoded from 'text'"):
        build_index(docs, tmp_path / "index", encoder=encoder, progress=False, mode="append",
                    dense_text="title+text", ray=_options())
    build_index(docs[:2], tmp_path / "index", encoder=encoder, progress=False, mode="append", chunk=False,
                ray=_options())
    assert IndexManifest.read(tmp_path / "index").dense_text == "text"


def test_duplicate_id_in_another_shard_is_named_and_nothing_published(cluster, tmp_path):
    """A chunk id ('d3#1') that is also a later document's id, batches and shards apart: refused on
    the driver like the single-process build (file and line), nothing written."""
    from lucerag.connectors import read_documents

    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "text": f"text number {i} " * (60 if i == 3 else 5)}) for i in range(40)]
    lines.append(json.dumps({"_id": "d3#1", "text": "my own document named d3#1"}))
    source.write_text("\n".join(lines) + "\n")
    messages = []
    for name, ray_options in (("single", None), ("ray", RayOptions(shard_passages=8, progress_every_s=0))):
        with pytest.raises(DuplicateIdError) as info:
            build_index(read_documents(source), tmp_path / name, dense=False, batch_size=4, progress=False,
                        max_words=40, overlap_words=5, ray=ray_options)
        messages.append(str(info.value))
    assert f"{source}: line 41: passage id 'd3#1' (document 'd3#1')" in messages[1]
    assert messages[0] == messages[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl"]
