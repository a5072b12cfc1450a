"""The per-query score-distribution model and the mixture calibrator built on it (issue 17)."""

from pathlib import Path

import numpy as np
import pytest

from lucerag.search.calibration import Calibrator, gate_from_negatives, mixture_calibrator
from lucerag.search.fusion import Candidates, fuse
from lucerag.search.scoredist import fit_mixture


def _scores(rng, n_rel, n_non, mu=3.0, sd=0.5, rate=2.0):
    return np.concatenate([rng.normal(mu, sd, n_rel), rng.exponential(1.0 / rate, n_non)])


def test_mixture_recovers_known_parameters_on_synthetic_scores():
    rng = np.random.default_rng(0)
    s = _scores(rng, 300, 1700)
    m = fit_mixture(s, sd_floor=0.1)  # a low floor: the true relevant sd (0.5) is below the list's spread
    assert m.weight == pytest.approx(0.15, abs=0.02)
    assert m.mean + m.shift == pytest.approx(3.0, abs=0.1)
    assert m.sd == pytest.approx(0.5, abs=0.1)
    assert m.rate == pytest.approx(2.0, rel=0.15)
    assert m.expected_relevant == pytest.approx(300, rel=0.15)


def test_expected_relevant_follows_each_list_not_a_base_rate():
    """One outlier above a tail -> about one relevant; a broad high cluster -> many (default floor)."""
    rng = np.random.default_rng(1)
    one = fit_mixture(np.r_[4.0, rng.exponential(0.5, 99)])
    many = fit_mixture(_scores(rng, 60, 40, mu=2.5, sd=0.3, rate=3.0))
    assert one.expected_relevant < 4
    assert 40 <= many.expected_relevant <= 80
    assert one.posterior(np.array([4.0]))[0] > 0.9


def test_posterior_is_scale_free_and_monotone():
    rng = np.random.default_rng(2)
    for _ in range(20):
        s = _scores(rng, int(rng.integers(1, 40)), 100, mu=float(rng.uniform(1, 4)))
        p = fit_mixture(s).posterior(s)
        q = fit_mixture(0.01 * s + 0.3).posterior(0.01 * s + 0.3)  # cosine-like scale, shifted
        assert np.allclose(p, q, atol=1e-6)
        up = np.argsort(s)
        assert (np.diff(p[up]) >= -1e-12).all()
        assert ((p >= 0) & (p <= 1)).all()


def test_mixture_rejects_unusable_scores():
    with pytest.raises(ValueError, match="at least 2 finite"):
        fit_mixture(np.array([1.0]))
    with pytest.raises(ValueError, match="at least 2 finite"):
        fit_mixture(np.array([1.0, np.nan, 2.0]))
    assert fit_mixture(np.full(5, 0.4)).weight == 0.5  # all tied: no evidence either way


def _candidates(rng, n=120, top=None):
    dense = rng.uniform(0.05, 0.5, n)
    if top is not None:
        dense[int(rng.integers(n))] = top
    bm25 = rng.exponential(3.0, n) * rng.integers(0, 2, n)
    rb, rd = np.empty(n, int), np.empty(n, int)
    rb[np.argsort(-bm25, kind="stable")] = np.arange(1, n + 1)
    rd[np.argsort(-dense, kind="stable")] = np.arange(1, n + 1)
    return Candidates([f"d{i}" for i in range(n)], bm25, dense, np.where(rb <= 100, rb, 0), np.where(rd <= 100, rd, 0))


def test_an_answerable_query_is_never_returned_empty_and_an_unanswerable_one_always_is():
    """The two decisions: above the gate the query keeps at least its most probable passage, whatever
    its score list looks like; below it nothing is kept and every P(relevant) is small."""
    rng = np.random.default_rng(3)
    cal = mixture_calibrator(0.55, fusion={"depth": 100})
    for _ in range(30):
        c = _candidates(rng, int(rng.integers(2, 150)), top=float(rng.uniform(0.56, 0.9)))
        f = fuse(c, "convex", dense_weight=0.75, depth=100)
        p, keep = cal.decide(c, f, depth=100)
        assert keep.any() and keep[int(np.argmax(p))]
        assert cal.cut(_rows(c, f)).any()
        c = _candidates(rng, int(rng.integers(2, 150)))  # best cosine <= 0.5 < gate
        f = fuse(c, "convex", dense_weight=0.75, depth=100)
        p, keep = cal.decide(c, f, depth=100)
        assert not keep.any() and p.max() < 0.1


def _rows(c, f):
    from lucerag.search.calibration import features

    return features(c, f, "", 100)


def test_probabilities_and_cut_agree_between_candidates_and_feature_rows():
    rng = np.random.default_rng(4)
    cal = mixture_calibrator(0.3, fusion={"depth": 100})
    c = _candidates(rng, 80, top=0.7)
    f = fuse(c, "convex", dense_weight=0.75, depth=100)
    p, keep = cal.decide(c, f, depth=100)
    assert np.allclose(p, cal.probabilities(_rows(c, f)))
    assert (keep == cal.cut(_rows(c, f))).all()


def test_gate_from_negatives_and_round_trip(tmp_path):
    assert gate_from_negatives([0.21, 0.4, 0.33]) == 0.33   # one on-topic 'negative' cannot set the gate alone
    assert gate_from_negatives([0.4]) == 0.4
    with pytest.raises(ValueError, match="at least one"):
        gate_from_negatives([])
    cal = mixture_calibrator(0.4, encoder="all-MiniLM-L6-v2", fusion={"method": "convex", "depth": 100})
    back = Calibrator.load(cal.save(tmp_path))
    assert back == cal and back.model == "mixture" and back.gate == 0.4


def test_packaged_unanswerable_questions_are_the_fitting_negatives():
    from lucerag.resources import UNANSWERABLE
    from lucerag.search.calibration import read_questions

    ours = read_questions(UNANSWERABLE)
    assert len(ours) >= 50 and ours == read_questions(Path(__file__).parent / "data" / "ood_train.txt")


def test_shipped_mixture_calibrator_sets_its_gate_on_the_users_index(retriever):
    """No labels: the shipped calibrator's gate comes from its own unanswerable questions searched on
    this index, so the gate is this corpus' figure, not the collections' it was shipped from."""
    from lucerag.resources import UNANSWERABLE
    from lucerag.search.calibration import corpus_gate, read_questions

    shipped = Calibrator.default()
    cal = retriever.calibrator
    assert shipped.model == "mixture" and shipped.gate_from == "corpus"
    assert cal is not None and cal.model == "mixture"
    assert cal.gate == corpus_gate(retriever, read_questions(UNANSWERABLE))
    assert cal.gate != shipped.gate


def _textbook_step(x, w, mu, sd, rate, floor, low):
    """One EM step of the mixture written out (Manmatha et al. 2001), the M-step clipped to the bounds."""
    g = w * np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    e = (1 - w) * rate * np.exp(-rate * x)
    r = g / (g + e)
    mu = max((r * x).sum() / r.sum(), low)
    sd = max(np.sqrt((r * (x - mu) ** 2).sum() / r.sum()), floor)
    return float(np.clip(r.mean(), 1e-4, 1 - 1e-4)), mu, sd, (1 - r).sum() / ((1 - r) * x).sum()


def _textbook_em(scores, start, sd_floor=1.0, iters=200):
    """Reference: plain EM from one start, stopped when the share moves < 1e-7 or after ``iters``
    steps (the fit before issue 18). Returns ((w, mu, sd, rate), log-likelihood), scores' units."""
    x = np.sort(np.asarray(scores, np.float64))[::-1]
    x = x - x[-1]
    floor, low = sd_floor * x.std(), x.mean()
    k = max(1, int(round(start * len(x))))
    p = (start, max(x[:k].mean(), low), max(x[:k].std(), floor), 1.0 / x[k:].mean())
    for _ in range(iters):
        q = _textbook_step(x, *p, floor, low)
        done, p = abs(q[0] - p[0]) < 1e-7, q
        if done:
            break
    return p, _loglik(x, *p)


def _loglik(x, w, mu, sd, rate):
    g = w * np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    return float(np.log(g + (1 - w) * rate * np.exp(-rate * x)).sum())


def test_fit_reaches_a_stationary_point_at_least_as_likely_as_plain_em_in_few_steps():
    """Each start ends where plain EM would converge, not where 200 EM steps stop: the likelihood is
    at least the textbook EM's, one more EM step moves nothing, and it takes far fewer evaluations."""
    rng = np.random.default_rng(3)
    for relevant in (1, 5, 40):
        scores = np.concatenate([rng.exponential(0.05, 100 - relevant), 0.3 + 0.03 * rng.standard_normal(relevant)])
        x = np.sort(scores)[::-1] - scores.min()
        floor, low = x.std(), x.mean()
        for start in (0.01, 0.1, 0.5):
            fitted = fit_mixture(scores, starts=(start,))
            _, plain_ll = _textbook_em(scores, start)
            assert fitted.loglik >= plain_ll - 1e-9
            assert fitted.loglik == pytest.approx(_loglik(x, fitted.weight, fitted.mean, fitted.sd, fitted.rate), abs=1e-9)
            p = (fitted.weight, fitted.mean, fitted.sd, fitted.rate)
            q = _textbook_step(x, *p, floor, low)
            assert q == pytest.approx(p, rel=1e-5, abs=1e-7)      # an EM fixed point
            assert fitted.evaluations < 60


def test_fit_stops_when_the_exponential_collapses_onto_the_lowest_score():
    """The likelihood has no maximum when the exponential shrinks onto the lowest score alone (its
    density there grows without bound): the rate stops at its cap, the fit converges well before
    its step limit, and every score but the lowest stays relevant."""
    rng = np.random.default_rng(8)
    s = np.r_[rng.normal(3.0, 0.4, 99), 0.0]
    m = fit_mixture(s)
    assert m.evaluations < 200 and np.isfinite(m.loglik)
    assert m.rate * s.std() <= 1e12 * (1 + 1e-9)
    p = m.posterior(s)
    assert p[-1] < 0.01 and (p[:-1] > 0.5).all()


def test_mixture_fit_bench_runs_on_a_candidate_cache(tmp_path):
    """`lucerag bench mixture-fit` on a small cache written as `bench transfer` writes it."""
    from lucerag.bench.mixture_fit import run
    from lucerag.eval.collections import save_candidates

    rng = np.random.default_rng(9)
    cands = {f"q{i}": _candidates(rng, 60, top=0.7 if i % 2 else None) for i in range(6)}
    save_candidates(tmp_path / "cands-test-on-test-0.npz", cands, {q: q for q in cands})
    out = run(tmp_path, repeats=1)
    assert out["lists"] == 6 and out["fit_ms"]["p50"] > 0 and out["plain_em_ms"]["p50"] > 0
    assert out["loglik_gain"]["min"] >= -1e-6        # never less likely than the plain EM it replaced
    assert out["fit_steps"]["p50"] < out["plain_em_steps"]["p50"]
    with pytest.raises(FileNotFoundError, match="cands-"):
        run(tmp_path / "empty")


def test_gap_rules_of_the_ablation_cut_a_separate_top_cluster_and_leave_a_smooth_one():
    """The cut rules measured and dropped in docs/fusion-and-filter.md ("Tried and dropped") do what
    they claim: a drop improbably large inside the kept set is cut, an evenly spaced set is kept whole."""
    from lucerag.eval.ablation import gap_in_kept

    rng = np.random.default_rng(5)
    tail = np.sort(rng.exponential(0.3, 90))[::-1]
    two = np.r_[5.0, 4.95, 4.9, np.linspace(3.0, 2.6, 7), tail]     # 3 close scores, a drop, 7 more
    smooth = np.r_[np.linspace(3.0, 2.0, 40), tail]
    for s, k, cut in ((two, 10, 3), (smooth, 40, 40)):
        m = fit_mixture(s)
        assert gap_in_kept(s, m, k, "range", 0.5) == cut
        assert gap_in_kept(s, m, k, "median", 10.0) == cut
        assert gap_in_kept(s, m, k, "uniform", 3.0) == cut
    assert gap_in_kept(two, fit_mixture(two), 1, "sd", 0.0) == 1
    with pytest.raises(ValueError, match="gap statistic"):
        gap_in_kept(two, fit_mixture(two), 10, "largest", 1.0)


def test_the_ablations_shipped_fusion_variant_is_the_shipped_fusion():
    from lucerag.eval.ablation import bm25_transforms

    rng = np.random.default_rng(6)
    for _ in range(20):
        n = 60
        c = Candidates([f"d{i}" for i in range(n)], rng.gamma(2.0, 3.0, n), rng.uniform(0.1, 0.8, n),
                       np.where(rng.random(n) < 0.7, rng.permutation(n) + 1, 0),
                       np.where(rng.random(n) < 0.7, rng.permutation(n) + 1, 0))
        t = bm25_transforms(c, 40)["zscore over the head (shipped)"]
        assert np.allclose(c.dense + 0.05 * t, fuse(c, "anchored", bm25_weight=0.05, depth=40))
        assert np.allclose(bm25_transforms(c, 40)["zscore clipped to [-2, 2]"], np.clip(t, -2, 2))
