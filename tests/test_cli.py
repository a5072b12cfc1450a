"""The ``lucerag`` command, run as a user runs it: a real process, real files, real index."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINI_BEIR

LUCERAG = [sys.executable, "-m", "lucerag"]


def run(*args, check=True, timeout=300):
    out = subprocess.run([*LUCERAG, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "COLUMNS": "200"})
    if check and out.returncode != 0:
        raise AssertionError(f"lucerag {args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "idx"
    out = run("index", "--input", MINI_BEIR / "corpus.jsonl", "--index", path, "--json")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["read"] == report["indexed"] + report["skipped"] + report["rejected"] == 25
    assert report["passages"] == 25
    return path


def test_search_prints_ranked_passages(cli_index):
    out = run("search", "--index", cli_index, "how is espresso made", "--k", "3")
    lines = out.stdout.splitlines()
    assert lines[0].lstrip().startswith("1. p14")
    assert "bm25" in lines[0] and "dense" in lines[0]
    assert "nine bars of pressure" in out.stdout


def test_index_with_fp32_passages_and_graph_settings(tmp_path):
    """The exact passage encoder (fp32; int8 is the default) and a smaller HNSW graph find the answer."""
    path = tmp_path / "idx32"
    run("index", "--input", MINI_BEIR / "corpus.jsonl", "--index", path, "--precision", "fp32",
        "--hnsw-m", "8", "--hnsw-beam", "50", "--no-progress")
    out = run("search", "--index", path, "how is espresso made", "--k", "3")
    assert out.stdout.splitlines()[0].lstrip().startswith("1. p14")


def test_search_json(cli_index):
    out = run("search", "--index", cli_index, "sourdough starter", "--k", "2", "--json", "--method", "bm25")
    passages = [json.loads(line) for line in out.stdout.splitlines()]
    assert passages[0]["id"] == "p05" and passages[0]["rank"] == 1 and passages[0]["bm25_score"] > 0
    out = run("search", "--index", cli_index, "zzqxv", "--json", "--method", "bm25")
    assert out.stdout == "" and "no passages found" in out.stderr  # zero JSON lines, and why on stderr


def test_eval_beir_builds_then_reuses_the_index(tmp_path):
    index = tmp_path / "beir-idx"
    out = run("eval", "--beir", MINI_BEIR, "--index", index, "--methods", "bm25,dense,hybrid", "--json",
              "--run-dir", tmp_path / "runs")
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(results) == {"bm25", "dense", "hybrid", "queries", "protocol"}
    assert results["queries"]["evaluated"] == results["queries"]["judged"] > 0
    assert results["protocol"]["chunker"] == "none" and results["protocol"]["dense_text"] == "title+text"
    for metrics in (results[m] for m in ("bm25", "dense", "hybrid")):
        assert set(metrics) >= {"nDCG@10", "MRR@10", "R@100"}
        assert 0.0 <= metrics["nDCG@10"] <= 1.0
    assert results["hybrid"]["nDCG@10"] > 0.8
    assert (tmp_path / "runs" / "run.hybrid.txt").read_text().split()[1] == "Q0"
    stamp = index.stat().st_mtime
    again = json.loads(run("eval", "--beir", MINI_BEIR, "--index", index, "--methods", "bm25",
                           "--json").stdout.strip().splitlines()[-1])
    assert again["bm25"] == results["bm25"] and index.stat().st_mtime == stamp


def test_eval_trec_topics_and_qrels(tmp_path, cli_index):
    topics, qrels = tmp_path / "topics.tsv", tmp_path / "qrels.txt"
    topics.write_text("1\twhat causes tides in the ocean\n2\thow do plants make sugar from light\n")
    qrels.write_text("1 0 p18 2\n1 0 p17 1\n2 0 p01 2\n2 0 p02 1\n2 0 p15 0\n")
    out = run("eval", "--topics", topics, "--qrels", qrels, "--index", cli_index, "--methods", "hybrid", "--json")
    assert json.loads(out.stdout.strip().splitlines()[-1])["hybrid"]["MRR@10"] == 1.0


@pytest.mark.parametrize("args, message", [
    (["search", "--index", "{missing}", "hello"], "no Lucene index at"),
    (["search", "--index", "{index}", "   "], "query is empty"),
    (["search", "--index", "{index}", "tea", "--method", "magic"], "unknown method 'magic'"),
    (["search", "--config", "{bad_config}", "tea"], "unknown key 'fusion.wieght'"),
    (["eval", "--index", "{index}", "--methods", "bm25,magic", "--beir", str(MINI_BEIR)], "unknown method 'magic'"),
    (["index", "--input", "{bad_jsonl}", "--index", "{index}"], "bad.jsonl: line 2"),
    (["index", "--input", "{bad_jsonl}", "--index", "{missing}", "--precision", "fp16"], "--precision must be fp32 or int8"),
    (["index", "--input", "{bad_jsonl}", "--index", "{missing}", "--hnsw-m", "1"], "--hnsw-m"),
])
def test_bad_input_is_one_clear_line(tmp_path, cli_index, args, message):
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text(f'[index]\npath = "{cli_index}"\n[fusion]\nwieght = 0.3\n')
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"id": "x", "contents": "fine"}\n{"id": "y", "contents": \n')
    names = dict(missing=tmp_path / "missing", index=cli_index, bad_config=bad_config, bad_jsonl=bad_jsonl)
    out = run(*[a.format(**names) for a in args], check=False)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr and "java." not in out.stderr


def test_failed_ingest_keeps_the_existing_index(tmp_path, cli_index):
    """A bad record stops the build; the index already there still answers the same way."""
    index = tmp_path / "idx"
    shutil.copytree(cli_index, index)
    before = run("search", "--index", index, "espresso", "--k", "3", "--json").stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "n1", "contents": "new text"}\nnot json\n')
    assert run("index", "--input", bad, "--index", index, check=False).returncode != 0
    assert run("search", "--index", index, "espresso", "--k", "3", "--json").stdout == before


def test_calibrate_writes_a_calibrator_the_index_then_uses(tmp_path, cli_index):
    index = tmp_path / "idx"
    shutil.copytree(cli_index, index)
    out = run("calibrate", "--beir", MINI_BEIR, "--index", index,
              "--negatives", MINI_BEIR.parent / "ood_train.txt")
    assert "written to" in out.stdout
    saved = json.loads((index / "lucerag-calibrator.json").read_text())
    assert saved["queries"] == 10 + 51 and saved["relevant_grade"] == 1
    hits = [json.loads(x) for x in run("search", "--index", index, "how is espresso made", "--json").stdout.splitlines()]
    assert hits and hits[0]["id"] == "p14" and hits[0]["p_relevant"] >= saved["threshold"]
    empty = run("search", "--index", index, "how do I configure a terraform backend in s3")
    assert "no relevant passages" in empty.stdout


def test_calibrate_mixture_sets_the_gate_on_the_index_without_judgments(tmp_path, cli_index):
    index = tmp_path / "idx"
    shutil.copytree(cli_index, index)
    out = run("calibrate", "--model", "mixture", "--index", index)
    assert "written to" in out.stdout and "gate" in out.stdout
    saved = json.loads((index / "lucerag-calibrator.json").read_text())
    assert saved["model"] == "mixture" and 0 < saved["gate"] < 1 and saved["queries"] >= 50
    hits = [json.loads(x) for x in run("search", "--index", index, "how is espresso made", "--json").stdout.splitlines()]
    assert hits and hits[0]["id"] == "p14" and hits[0]["p_relevant"] > 0.5
    assert "no relevant passages" in run("search", "--index", index, "how do I configure a terraform backend in s3").stdout


def test_calibrate_without_judgments_uses_pseudo_queries_from_the_index(tmp_path, cli_index):
    index = tmp_path / "idx"
    shutil.copytree(cli_index, index)
    out = run("calibrate", "--pseudo", "20", "--index", index, "--negatives", MINI_BEIR.parent / "ood_train.txt")
    assert "written to" in out.stdout
    saved = json.loads((index / "lucerag-calibrator.json").read_text())
    assert "pseudo-queries from the index" in saved["trained_on"] and saved["queries"] > 51
    assert saved["encoder_precision"] in ("fp32", "int8") and saved["fusion"]["method"] == "anchored"
    hits = [json.loads(x) for x in run("search", "--index", index, "how is espresso made", "--json").stdout.splitlines()]
    assert hits and hits[0]["id"] == "p14"
