"""Evaluation: per-query scores, paired significance tests, markdown tables, TREC topics."""

import json

import numpy as np
import pytest
from conftest import DL19_SLICE, MINI_BEIR, SHARED, needs_shared
from lucerag.eval.runs import (
    compare_methods,
    markdown_table,
    paired_test,
    per_query_scores,
    read_trec_run,
    score_run,
    write_trec_run,
)
from typer.testing import CliRunner

TOPICS = SHARED / "topics-and-qrels"


def test_per_query_scores_and_means_agree():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}, "q3": {"d": 1}}
    run = {"q1": {"a": 3.0, "x": 2.0, "b": 1.0}, "q2": {"x": 1.0, "c": 0.5}}  # q3 missed: scores 0
    pq = per_query_scores(run, qrels, ["MRR@10", "R@100", "nDCG@10"])
    assert pq["MRR@10"] == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    assert pq["R@100"] == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    assert score_run(run, qrels, ["MRR@10", "R@100"]) == {"MRR@10": 0.5, "R@100": 0.6667}
    # --rel 2: only grade >= 2 counts for binary metrics
    assert per_query_scores(run, qrels, ["R@100"], rel=2)["R@100"]["q1"] == 1.0


def test_paired_tests():
    rng = np.random.default_rng(1)
    a = {f"q{i}": float(x) for i, x in enumerate(rng.uniform(0.2, 0.6, 40))}
    better = {q: v + 0.1 + rng.normal(0, 0.02) for q, v in a.items()}
    same = paired_test(a, dict(a))
    assert same["p_ttest"] == 1.0 and same["p_permutation"] == 1.0 and same["mean_diff"] == 0.0
    sig = paired_test(a, better, permutations=2000)
    assert sig["p_permutation"] < 0.01 and sig["p_ttest"] < 1e-6 and sig["mean_diff"] == pytest.approx(0.1, abs=0.02)
    from scipy import stats

    qs = sorted(a)
    assert sig["p_ttest"] == pytest.approx(stats.ttest_rel([better[q] for q in qs], [a[q] for q in qs]).pvalue,
                                           abs=1e-6)
    noise = {q: v + rng.normal(0, 0.05) for q, v in a.items()}
    assert paired_test(a, noise)["p_permutation"] > 0.05
    assert paired_test(a, better, seed=3) == paired_test(a, better, seed=3)  # fixed seed: reproducible


def test_markdown_table_marks_significant_cells():
    results = {"bm25": {"nDCG@10": 0.5, "R@100": 0.7}, "hybrid": {"nDCG@10": 0.6, "R@100": 0.7}}
    by_query = {"bm25": {"nDCG@10": {f"q{i}": 0.5 for i in range(20)}, "R@100": {f"q{i}": 0.7 for i in range(20)}},
                "hybrid": {"nDCG@10": {f"q{i}": 0.6 + 0.01 * (i % 3) for i in range(20)},
                           "R@100": {f"q{i}": 0.7 for i in range(20)}}}
    tests = compare_methods(by_query, "bm25")
    table = markdown_table(results, tests, "bm25", queries=20)
    lines = table.splitlines()
    assert lines[0] == "| method | nDCG@10 | R@100 |" and lines[1] == "| --- | --- | --- |"
    assert lines[3] == "| hybrid | 0.6000 † | 0.7000 |"
    assert "significantly different from bm25" in table and "20 queries" in table


def test_trec_run_round_trip(tmp_path):
    run = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"c": 0.5}}
    write_trec_run(run, tmp_path / "run.txt", "t")
    assert read_trec_run(tmp_path / "run.txt") == run
    assert (tmp_path / "run.txt").read_text().splitlines()[0] == "q1 Q0 a 1 2.000000 t"


def _eval(*args):
    from lucerag.cli import app

    out = CliRunner().invoke(app, ["eval", *map(str, args)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


def test_eval_markdown_significance_and_per_query(mini_index, tmp_path):
    out = _eval("--beir", MINI_BEIR, "--index", mini_index, "--methods", "bm25,hybrid,hybrid-rrf", "--markdown",
                "--significance", "--json", "--per-query", tmp_path / "pq.json")
    lines = out.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"bm25", "hybrid", "hybrid-rrf", "significance", "queries", "protocol"}
    assert result["significance"]["reference"] == "bm25"
    test = result["significance"]["tests"]["hybrid"]["nDCG@10"]
    assert set(test) == {"n", "mean_diff", "t", "p_ttest", "p_permutation"} and test["n"] == 10
    assert lines[0].startswith("| method | nDCG@10 | MRR@10 | R@100 | R@1000 | MAP |")
    assert any(line.startswith("| hybrid-rrf | ") for line in lines)
    per_query = json.loads((tmp_path / "pq.json").read_text())
    assert len(per_query["hybrid"]["nDCG@10"]) == 10
    assert np.mean(list(per_query["hybrid"]["nDCG@10"].values())) == pytest.approx(result["hybrid"]["nDCG@10"],
                                                                                   abs=1e-4)


@needs_shared(TOPICS)
def test_eval_dl19_trec_topics_on_the_slice(dl19_index, tmp_path):
    """DL19 topics and qrels (graded 0..3, --rel 2) against the slice: all 43 judged queries have
    their relevant passages in the slice, so the numbers are high and hybrid beats BM25."""
    out = _eval("--topics", TOPICS / "topics.dl19-passage.txt", "--qrels", TOPICS / "qrels.dl19-passage.txt",
                "--rel", "2", "--index", dl19_index, "--methods", "bm25,hybrid", "--json", "--significance",
                "--run-dir", tmp_path / "runs")
    result = json.loads(out.strip().splitlines()[-1])
    for method in ("bm25", "hybrid"):
        assert set(result[method]) == {"nDCG@10", "MRR@10", "R@100", "R@1000", "MAP"}
    assert result["bm25"]["nDCG@10"] >= 0.6 and result["hybrid"]["nDCG@10"] > result["bm25"]["nDCG@10"]
    assert result["hybrid"]["R@1000"] >= result["hybrid"]["R@100"] > 0.7
    assert result["significance"]["tests"]["hybrid"]["nDCG@10"]["n"] == 43
    run = read_trec_run(tmp_path / "runs" / "run.hybrid.txt")
    assert len(run) == 43 and all(len(docs) == 1000 for docs in run.values())
    assert DL19_SLICE.exists()


def test_missing_eval_extra_is_one_clear_error():
    """The eval extra (ir-measures, scikit-learn, scipy) is optional: without it, evaluation says what to install."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['ir_measures'] = None; sys.modules['sklearn'] = None\n"
            "from lucerag.eval.runs import per_query_scores\n"
            "from lucerag.search.calibration import fit\n"
            "import numpy as np\n"
            "for call in (lambda: per_query_scores({'q': {'d': 1.0}}, {'q': {'d': 1}}),\n"
            "             lambda: fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))):\n"
            "    try:\n        call()\n    except ImportError as e:\n        print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = [line for line in out.stdout.splitlines() if line.startswith("ERR")]
    assert len(lines) == 2 and all("pip install 'lucerag[eval]'" in line for line in lines), out.stderr[-2000:]


def test_eval_warns_about_run_ids_of_no_corpus_document_and_strict_fails(mini_index, tmp_path):
    """An index that holds documents the BEIR corpus lacks: their ids are a warning (in --json and
    on stderr), an error under --strict; queries without judgments are counted as skipped."""
    from lucerag.cli import app

    folder = tmp_path / "beir"
    folder.mkdir()
    lines = (MINI_BEIR / "corpus.jsonl").read_text().splitlines()
    (folder / "corpus.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    queries = (MINI_BEIR / "queries.jsonl").read_text().splitlines()
    extra = json.dumps({"_id": "unjudged-1", "text": "a query nobody judged"})
    (folder / "queries.jsonl").write_text("\n".join(queries + [extra]) + "\n")
    (folder / "qrels.tsv").write_text((MINI_BEIR / "qrels.tsv").read_text())
    result = json.loads(_eval("--beir", folder, "--index", mini_index, "--methods", "bm25", "--json",
                              "--run-dir", tmp_path / "runs").strip().splitlines()[-1])
    assert len(result["warnings"]) == 1 and "neither corpus ids nor chunks of one" in result["warnings"][0]
    kept = {json.loads(line)["_id"] for line in lines[: len(lines) // 2]}
    assert {r.split()[2] for r in (tmp_path / "runs" / "run.bm25.txt").read_text().splitlines()} <= kept
    assert result["queries"]["skipped_reasons"]["no judgments"] == 1
    assert result["queries"]["evaluated"] == result["queries"]["judged"] == 10
    out = CliRunner().invoke(app, ["eval", "--beir", str(folder), "--index", str(mini_index), "--methods", "bm25",
                                   "--strict"])
    assert out.exit_code == 2 and "--strict" in out.output and "neither corpus ids" in out.output


def test_eval_reports_no_recall_cut_deeper_than_its_runs(mini_index):
    """`lucerag eval --depth 100` used to report R@1000 of 100-deep runs (R@100 under another name,
    shown as if measured at 1000); metrics cut deeper than --depth are now left out."""
    result = json.loads(_eval("--beir", MINI_BEIR, "--index", mini_index, "--methods", "bm25", "--depth", "20",
                              "--json").strip().splitlines()[-1])
    assert set(result["bm25"]) == {"nDCG@10", "MRR@10", "MAP"}
    result = json.loads(_eval("--beir", MINI_BEIR, "--index", mini_index, "--methods", "bm25", "--depth", "100",
                              "--json").strip().splitlines()[-1])
    assert set(result["bm25"]) == {"nDCG@10", "MRR@10", "R@100", "MAP"}


def test_eval_scores_the_ranking_as_returned_when_scores_tie(tmp_path):
    """Tied BM25 scores come back ordered by id (Anserini's order), but trec_eval (pytrec_eval, behind
    ir-measures' nDCG and MAP) breaks ties by id descending: eval used to score that reordering (here
    the relevant passage, first of 30 tied, counted at rank 10: nDCG@10 0.289, while ir-measures' own
    MRR counted it at rank 1). Runs are now scored, and written, in the returned order."""
    from lucerag.connectors import Document
    from lucerag.ingest.pipeline import build_index

    docs = [Document(id=f"d{n:02d}", text="magma ash cloud") for n in range(30)]
    build_index(docs + [Document(id="x", text="tides and the moon")], tmp_path / "idx", dense=False, progress=False)
    (tmp_path / "topics.tsv").write_text("q1\tmagma\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d00 1\n")
    out = _eval("--topics", tmp_path / "topics.tsv", "--qrels", tmp_path / "qrels.txt", "--index", tmp_path / "idx",
                "--methods", "bm25", "--depth", "10", "--json", "--run-dir", tmp_path / "runs")
    result = json.loads(out.strip().splitlines()[-1])["bm25"]
    assert result["nDCG@10"] == 1.0 and result["MRR@10"] == 1.0
    lines = (tmp_path / "runs" / "run.bm25.txt").read_text().splitlines()
    assert [line.split()[2] for line in lines] == [f"d{n:02d}" for n in range(10)]
    scores = [float(line.split()[4]) for line in lines]
    assert all(a > b for a, b in zip(scores, scores[1:]))  # strictly falling: trec_eval keeps this order
