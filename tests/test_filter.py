"""The relevance filter: features, calibration metrics, the shipped calibrator, and the
retriever returning nothing when nothing is relevant."""

import json

import numpy as np
import pytest

from conftest import DATA, DL19_SLICE, needs_shared
from lucerag.search.calibration import FEATURES, Calibrator, features
from lucerag.eval.filter import ece, gap_keeps, prf, read_query_lines
from lucerag.search.fusion import Candidates


def test_set_metrics_and_empty_set_conventions():
    labels = np.array([1, 0, 1, 0])
    assert prf(np.array([True, True, False, False]), labels) == (0.5, 0.5, 0.5)
    assert prf(np.zeros(4, bool), np.zeros(4, int)) == (1.0, 1.0, 1.0)   # nothing relevant, nothing returned
    assert prf(np.ones(4, bool), np.zeros(4, int))[2] == 0.0              # nothing relevant, something returned
    assert prf(np.zeros(4, bool), labels)[2] == 0.0                       # relevant passages missed


def test_ece_is_zero_when_calibrated_and_large_when_not():
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert ece(p, y) == pytest.approx(0.0)
    assert ece(np.array([0.9] * 4), np.array([0, 0, 0, 0])) == pytest.approx(0.9)


def test_gap_cut_stops_at_the_largest_drop():
    class Q:
        fused = np.array([0.9, 0.85, 0.3, 0.25])
        order = np.arange(4)
    assert gap_keeps([Q]).pop().tolist() == [True, True, False, False]


def test_features_describe_the_query_distribution():
    c = Candidates(["a", "b", "c"], np.array([12.0, 3.0, 0.0], np.float32), np.array([0.8, 0.5, 0.2], np.float32),
                   np.array([1, 2, 0]), np.array([1, 2, 3]))
    x = features(c, np.array([1.0, 0.5, 0.0]), "three word query")
    col = dict(zip(FEATURES, x.T))
    assert x.shape == (3, len(FEATURES))
    assert col["dense_top"].tolist() == pytest.approx([0.8] * 3)
    assert col["dense_gap"].tolist() == pytest.approx([0.0, 0.3, 0.6])
    assert col["bm25_rel"].tolist() == pytest.approx([1.0, 0.25, 0.0])
    assert np.isfinite(x).all()


def test_shipped_calibrator_loads_and_is_monotone_in_the_cosine():
    cal = Calibrator.default()
    assert cal.encoder == "all-MiniLM-L6-v2" and 0 < cal.threshold < 1
    dense = np.array([0.1, 0.3, 0.5, 0.7], np.float32)
    c = Candidates(list("abcd"), np.array([5.0] * 4, np.float32), dense, np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1]))
    # a query whose best match is weak vs one whose best match is strong
    weak = cal.predict(c, np.array([0.0, 0.3, 0.6, 1.0]), "some query")
    assert weak[-1] > weak[0]


def test_calibrator_round_trip_and_clear_errors(tmp_path):
    cal = Calibrator.default()
    path = cal.save(tmp_path)
    assert Calibrator.load(path) == cal
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a lucerag calibrator"):
        Calibrator.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="lucerag calibrate"):
        Calibrator.load(tmp_path / "missing.json")


def test_unanswerable_query_returns_nothing(retriever):
    assert retriever.calibrator is not None  # the shipped one fits the default encoder
    assert retriever.search("how do I set a rate limit annotation on a kubernetes ingress", k=5) == []
    unfiltered = retriever.search("how do I set a rate limit annotation on a kubernetes ingress", k=5,
                                  filter=False)
    # the filter off drops nothing but still shows how close each passage came
    assert len(unfiltered) == 5
    assert all(p.p_relevant is not None and p.p_relevant < retriever.calibrator.threshold for p in unfiltered)


def test_answerable_query_keeps_the_answer_with_its_probability(retriever):
    passages = retriever.search("why does a volcano erupt", k=5)
    assert passages and passages[0].id == "p03"
    assert all(p.p_relevant >= retriever.calibrator.threshold for p in passages)
    assert len(passages) < 5  # the unrelated passages are dropped


def test_filter_applies_to_hybrid_only(retriever):
    """One decision (Retriever.filter_applies): bm25 and dense lists are never filtered, whatever
    ``filter`` says; hybrid follows ``filter``, or [filter] enabled when it is None."""
    assert not retriever.filter_applies("bm25", True) and not retriever.filter_applies("dense", True)
    assert [p.id for p in retriever.search("tea", method="bm25", filter=True)] == \
        [p.id for p in retriever.search("tea", method="bm25", filter=False)]
    assert retriever.filter_applies("hybrid", True) and not retriever.filter_applies("hybrid", False)
    assert retriever.filter_applies("hybrid", None) == (retriever.config.filter.enabled
                                                        and retriever.calibrator is not None)


def test_ood_query_files_are_disjoint_and_large_enough():
    evaluation = set(read_query_lines(DATA / "ood_queries.txt").values())
    training = set(read_query_lines(DATA / "ood_train.txt").values())
    assert len(evaluation) >= 50 and len(training) >= 50
    assert not evaluation & training


@needs_shared(DL19_SLICE)
def test_filter_beats_baselines_on_the_dl19_slice(dl19_index):
    """The issue's targets, cross-validated over queries (the same code as `lucerag eval --filter`)."""
    from lucerag.cli.eval import _evaluate_filter
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries
    from lucerag.search.retriever import Retriever

    qrels = read_beir_qrels(DL19_SLICE)
    queries = {q: t for q, t in read_beir_queries(DL19_SLICE).items() if q in qrels}
    with Retriever.from_index(dl19_index) as r:
        report = _evaluate_filter(r, queries, qrels, 1, [DATA / "ood_train.txt"], DATA / "ood_queries.txt")
    print(json.dumps(report))
    best_baseline = max(b["f1"] for b in report["baselines"].values())
    assert report["f1"] >= best_baseline + 0.05
    assert report["ece"] <= 0.05
    assert report["ood_empty_rate"] >= 0.90
    assert report["in_domain_nonempty_rate"] >= 0.95


def test_probabilities_are_shown_with_the_filter_off_and_match_the_filtered_ones(retriever):
    query = "why does a volcano erupt"
    kept = retriever.search(query, k=5)
    shown = retriever.search(query, k=5, filter=False)
    assert [p.id for p in shown][:len(kept)] == [p.id for p in kept]
    assert [p.p_relevant for p in shown][:len(kept)] == pytest.approx([p.p_relevant for p in kept])
    assert any(p.p_relevant < retriever.calibrator.threshold for p in shown[len(kept):])
    assert all(p.p_relevant is None for p in retriever.search(query, k=5, method="dense"))


def test_calibrator_names_what_differs_from_its_fitting_setup(encoder):
    shipped = Calibrator.default()
    assert shipped.encoder == encoder.manifest.name and shipped.encoder_precision in ("fp32", "int8")
    cal = shipped.model_copy(update={"encoder_precision": encoder.manifest.precision,
                                     "encoder_recipe": encoder.manifest.recipe})
    fusion = dict(cal.fusion)
    assert cal.mismatches(fusion, encoder) == []
    other = "int8" if encoder.manifest.precision == "fp32" else "fp32"
    assert cal.model_copy(update={"encoder_precision": other}).mismatches(fusion, encoder) == [
        f"encoder precision {encoder.manifest.precision!r} (fitted with {other!r})"]
    changed = cal.mismatches({**fusion, "method": "rrf"}, encoder)
    assert changed == [f"fusion.method 'rrf' (fitted with {fusion['method']!r})"]
    other = cal.model_copy(update={"encoder": "bge-small", "encoder_recipe": encoder.manifest.recipe + 1})
    problems = other.mismatches(fusion, encoder)
    assert any("encoder 'all-MiniLM-L6-v2' (fitted with 'bge-small')" in p for p in problems)
    assert any("recipe" in p for p in problems)


def test_retriever_warns_once_under_other_fusion_and_refuses_another_encoder(mini_index, encoder, tmp_path):
    import warnings

    from lucerag.search.retriever import CalibratorMismatch, CalibratorWarning, Retriever

    with Retriever.from_index(mini_index, encoder=encoder, fusion={"method": "rrf"}) as r:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                r.search("why does a volcano erupt", k=3)
        mine = [w for w in caught if issubclass(w.category, CalibratorWarning)]
        assert len(mine) == 1 and "fusion.method 'rrf'" in str(mine[0].message)
    foreign = Calibrator.default().model_copy(update={"encoder": "bge-small"})
    path = foreign.save(tmp_path / "foreign.json")
    with Retriever.from_index(mini_index, encoder=encoder, filter={"calibrator": str(path)}) as r:
        with pytest.raises(CalibratorMismatch, match="fitted with 'bge-small'"):
            r.search("why does a volcano erupt", k=3)
