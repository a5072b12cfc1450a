"""BEIR SciFact through `lucerag eval --beir` as a user runs it: the published protocol reproduces
Anserini's BM25 "flat" figure, and the chunked index is reported beside it as document runs.

Published (shared data README, Anserini BEIR regressions): BM25 flat nDCG@10 0.6789, R@100 0.9253,
R@1000 0.9767. BM25 only, so that the build takes seconds (a dense SciFact build takes minutes on
two cores; its figures are in docs/results.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SHARED, needs_shared

SCIFACT = SHARED / "beir-scifact"


@needs_shared(SCIFACT)
def test_scifact_bm25_flat_reproduces_anserini_and_reports_chunked_maxp(tmp_path):
    index = tmp_path / "scifact"
    cmd = [sys.executable, "-m", "lucerag", "eval", "--beir", str(SCIFACT), "--index", str(index),
           "--methods", "bm25", "--chunked", "--json", "--run-dir", str(tmp_path / "runs"), "--strict"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    bm25 = result["bm25"]
    assert bm25["nDCG@10"] == pytest.approx(0.6789, abs=0.0005)
    assert bm25["R@100"] == pytest.approx(0.9253, abs=0.0010)
    assert bm25["R@1000"] == pytest.approx(0.9767, abs=0.0010)
    assert result["protocol"]["chunker"] == "none" and result["protocol"]["aggregate"] == "maxp"
    assert result["queries"] == {"queries": 1109, "judged": 300, "evaluated": 300, "skipped": 809,
                                 "skipped_reasons": {"no judgments": 809,
                                                     "judged but absent from the queries/topics": 0},
                                 "without_relevant": 0}
    # The chunked index (what RAG serves), scored as documents with MaxP: comparable, not equal.
    chunked = result["chunked"]
    assert chunked["protocol"]["chunker"] == "words"
    assert abs(chunked["bm25"]["nDCG@10"] - bm25["nDCG@10"]) < 0.03
    assert "warnings" not in result
    # Both run files are document runs: every id is a corpus id, at most `depth` per query.
    corpus = {json.loads(line)["_id"] for line in (SCIFACT / "corpus.jsonl").open()}
    for name in ("run.bm25.txt", "run.chunked.bm25.txt"):
        rows = [line.split() for line in (tmp_path / "runs" / name).read_text().splitlines()]
        assert rows and all(r[2] in corpus and r[1] == "Q0" for r in rows)
        assert len({r[0] for r in rows}) == 300
    # Progress without a terminal: the build logged lines with a rate (stderr is a pipe here).
    assert "ingest: 5,183/5,183 documents, 5,183 passages" in out.stderr
    assert "(0 passages/s)" not in out.stderr and "building" in out.stderr
