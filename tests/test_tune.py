"""``lucerag tune``: cross-validated choice of the fusion, the default (anchored) fusion included."""

from __future__ import annotations

import pytest

from conftest import MINI_BEIR


def test_tune_scores_the_current_fusion_as_the_retriever_ranks(retriever):
    """The report's current setting is the configured one (anchored by default), and its score is
    the metric of the retriever's own hybrid rankings: tune fuses and orders as the retriever does."""
    from lucerag.eval.runs import per_query
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries
    from lucerag.eval.tune import grid, tune

    queries, qrels = read_beir_queries(MINI_BEIR), read_beir_qrels(MINI_BEIR)
    queries = {q: t for q, t in queries.items() if q in qrels}
    report = tune(retriever, queries, qrels, "nDCG@10", folds=2)
    fusion = retriever.config.fusion
    assert report["current"] == {"method": "anchored", "bm25_weight": fusion.bm25_weight}
    run = {}
    for qid, text in queries.items():
        ranking = retriever.rank(text, "hybrid", 100)
        run[qid] = {pid: float(len(ranking.ids) - r) for r, pid in enumerate(ranking.ids)}
    own = per_query(run, qrels, "nDCG@10")
    assert report["current_score"] == pytest.approx(sum(own.values()) / len(own), abs=1e-4)
    assert {s["method"] for s in grid()} == {"anchored", "rrf", "convex"}
    assert report["best"] in grid() and report["best_in_sample"] >= report["current_score"] - 1e-9


def test_tune_writes_a_configuration_with_the_chosen_fusion(tmp_path, mini_index):
    from lucerag.config import Config
    from test_cli import run

    out = tmp_path / "tuned.toml"
    done = run("tune", "--index", mini_index, "--beir", MINI_BEIR, "--folds", "2", "--write", out, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    fusion = Config.load(out).fusion
    assert fusion.method == report["best"]["method"]
    for key, value in report["best"].items():
        assert getattr(fusion, key) == value
