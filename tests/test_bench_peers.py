"""lucerag bench peers: every system runs on the same passages, vectors and query vectors.

Each peer is skipped when its package is absent (they are the optional ``peers`` extra)."""

import importlib.util
import math

import pytest

from conftest import mini_documents
from lucerag.bench import peers


def _corpus(encoder):
    docs = mini_documents()
    ids = [d.id for d in docs]
    texts = [f"{d.title} {d.text}".strip() for d in docs]
    return ids, texts, encoder.encode_passages(texts)


@pytest.mark.parametrize("name", ["lucerag", "lucerag-graph", "lucerag-scan", "bm25s+numpy", "txtai", "lancedb", "chroma",
                                  "langchain"])
def test_system_returns_k_passages_with_text(name, encoder, tmp_path):
    missing = [m for m in peers.NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} (make peers)")
    ids, texts, vectors = _corpus(encoder)
    qe = peers.QueryEncoder(encoder)
    system = peers.FACTORIES[name](qe)
    (tmp_path / name).mkdir()
    system.build(ids, texts, vectors, tmp_path / name)
    by_id = dict(zip(ids, texts))
    try:
        for i in (0, len(ids) // 2, len(ids) - 1):
            query = texts[i][:200]
            hits = system.search(query, 5)
            assert len(hits) == 5 and all(by_id[pid] == text for pid, text in hits)
            assert ids[i] in [pid for pid, _ in hits[:3]], (name, query)  # its own text finds it
        # the query encoder the benchmark switches is the one the system calls
        calls = []
        qe.use(lambda text: calls.append(text) or encoder.encode_query(text))
        system.search("what does the passage say", 3)
        assert calls == ["what does the passage say"]
        if name.startswith("lucerag"):  # the graph variant has an HNSW graph, the others none (small index)
            assert (system.retriever.dense_index.graph_nodes() > 0) == (name == "lucerag-graph")
    finally:
        system.close()


def test_quality_measures():
    judged = {"a": 2, "b": 1, "c": 0}
    assert peers.ndcg_at(["a", "b", "x"], judged) == pytest.approx(1.0)
    swapped = (1 / math.log2(2) + 2 / math.log2(3)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert peers.ndcg_at(["b", "a"], judged) == pytest.approx(swapped)
    assert peers.recall_at(["x", "a"] + ["y"] * 200, judged, k=100) == 0.5
    assert peers.recall_at(["x"] * 100 + ["a", "b"], judged, k=100) == 0.0


def test_qrels_reader_takes_both_layouts(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\n1\tA\t2\n1 0 B 1\n")
    assert peers.read_qrels(tmp_path / "q.tsv") == {"1": {"A": 2, "B": 1}}


def test_table_lists_peers_not_run():
    res = {"size": 5000, "systems": {
        "lucerag": {"quality": {"retrieval": {"ndcg@10": 0.8, "r@100": 0.9}},
                    "latency": {"retrieval": {"p50_ms": 1.0, "p99_ms": 2.0},
                                "lucerag-encoder": {"p50_ms": 3.0, "p99_ms": 4.0}},
                    "build_s": 1.0, "build_cpu_s": 2.0, "rss_added_mb": 10.0},
        "chroma": {"not_run": "not installed: chromadb"}}}
    text = peers.table([res])
    assert "| 5,000 | lucerag | 0.8000 | 0.9000 | 3.00 / 4.00 ms | 1.00 / 2.00 ms |" in text
    assert "not run: not installed: chromadb" in text


def test_run_peers_interleaves_systems_on_a_small_data_folder(tmp_path):
    """The whole run on a data folder laid out like the shared one (the mini BEIR corpus as the
    slice, its queries as dev topics): quality for each system, latency for each mode, a missing
    peer reported as not run, and the table/plot made from the result."""
    import json
    import shutil

    from conftest import MINI_BEIR

    root = tmp_path / "data"
    shutil.copytree(MINI_BEIR, root / "msmarco-dl19-5k")
    topics = root / "topics-and-qrels" / "topics.msmarco-passage.dev-subset.txt"
    topics.parent.mkdir()
    extra = [f"{i}\tquestion number {i} about passages" for i in range(30)]
    topics.write_text("\n".join(extra) + "\n")
    names = ["lucerag", "bm25s+numpy", "no-such-peer"]
    peers.FACTORIES["no-such-peer"] = peers.FACTORIES["chroma"]
    peers.NEEDS["no-such-peer"] = ("lucerag_no_such_module",)
    try:
        res = peers.run_peers(25, work=tmp_path / "work", systems=names, n_queries=12, rounds=3, data=root)
    finally:
        del peers.FACTORIES["no-such-peer"], peers.NEEDS["no-such-peer"]
    json.dumps(res)
    assert res["size"] == 25 and res["latency_queries"] == 12
    # the warm-up takes the dev queries the timed rounds do not: 30 written, 12 timed
    assert res["warmup_queries"] == 18
    timed = peers.latency_queries(12, set(peers.read_slice_queries(root / "msmarco-dl19-5k").values()), root)
    warm = peers.warmup_queries(200, set(timed), root)
    assert len(warm) == 18 and not set(warm) & set(timed)
    assert "not installed" in res["systems"]["no-such-peer"]["not_run"]
    for name in names[:2]:
        e = res["systems"].get(name, {})
        if "not_run" in e:
            assert name != "lucerag", e["not_run"]
            continue
        assert 0 < e["quality"]["retrieval"]["ndcg@10"] <= 1
        for mode in ("retrieval", "lucerag-encoder"):
            assert e["latency"][mode]["n"] == 12 and e["latency"][mode]["p50_ms"] > 0
        assert e["build_cpu_s"] >= 0
    assert "| 25 | lucerag |" in peers.table([res])
    assert peers.plot([res], tmp_path / "p.png").stat().st_size > 0


def test_cli_names_the_missing_data(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lucerag.cli import app

    monkeypatch.delenv("LUCERAG_DATA", raising=False)
    out = CliRunner().invoke(app, ["bench", "peers", "--sizes", "200", "--work", str(tmp_path)])
    assert out.exit_code != 0
    assert "msmarco-dl19-5k" in (out.output + str(out.exception)) and "LUCERAG_DATA" in (out.output + str(out.exception))


def test_lucerag_system_encodes_every_timed_query(tmp_path, encoder):
    """The latency rounds ask each text once per mode; lucerag's query-vector cache must not turn the
    second ("lucerag-encoder") asking into a cache hit that skips the encoder."""
    from conftest import mini_documents

    docs = mini_documents()[:30]
    ids, texts = [d.id for d in docs], [d.text for d in docs]
    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(encoder, name)

        def encode_query(self, text):
            calls.append(text)
            return encoder.encode_query(text)

    wrapped = peers.QueryEncoder(Counting())
    system = peers.LuceragSystem(wrapped)
    system.build(ids, texts, encoder.encode_passages(texts), tmp_path)
    try:
        system.search("how is espresso made", 5)
        before = calls.count("how is espresso made")
        system.search("how is espresso made", 5)
        assert calls.count("how is espresso made") == before + 1
    finally:
        system.close()
