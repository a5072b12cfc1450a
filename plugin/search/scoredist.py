"""Per-query score-distribution model: P(relevant | score) for one query's list, without labels.

Following Manmatha, Rath & Feng ("Modeling score distributions for combining the outputs of search
engines", SIGIR 2001) and Arampatzis, Kamps & Robertson ("Where to stop reading a ranked list?",
SIGIR 2009), the scores of one query's candidate list are modelled as a mixture of two components:

- non-relevant: exponential, shifted to start at the list's lowest score (the top of a ranked list
  is the upper tail of the corpus' score distribution, whose density falls off from the cut);
- relevant: Gaussian.

The mixture is fitted per query by maximum likelihood (EM, accelerated; see :func:`fit_mixture`) on
that query's scores alone, so the share of relevant candidates (``weight``) comes from the query's
own list, not from a training collection's base rate: a list with a broad cluster of high scores
gets a large share (an MS MARCO DL19 query with ~60 relevant passages in its top 100), one with a
single outlier a share near 1/n (a SciFact claim with one relevant abstract).

Scale-free by construction: scores are shifted by their minimum and the Gaussian's standard deviation
is floored at ``sd_floor`` times the list's own standard deviation, so ``a * s + b`` (a > 0) gives the
same posteriors as ``s``. The floor also stops the Gaussian from collapsing onto a few near-tied
scores inside the non-relevant tail (the classic degenerate EM solution). The fit runs in the JVM
(:func:`fit_mixture`); the posteriors are numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))
SD_FLOOR = 1.0  # the relevant component is at least as wide as the list's own spread


@dataclass(frozen=True)
class ScoreMixture:
    """A fitted two-component model of one query's scores (all in the scores' own units).

    ``weight``: share of relevant scores; ``mean``/``sd``: the relevant Gaussian, measured from
    ``shift`` (the list's lowest score); ``rate``: the non-relevant exponential's rate; ``n``: scores
    fitted; ``loglik``: their log-likelihood; ``evaluations``: likelihood evaluations the fit took
    (every start in one pass counts once)."""

    weight: float
    mean: float
    sd: float
    rate: float
    shift: float
    n: int
    loglik: float
    evaluations: int = 0

    @property
    def expected_relevant(self) -> float:
        """Expected number of relevant scores in the fitted list (``weight * n``)."""
        return self.weight * self.n

    def _densities(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.maximum(np.asarray(scores, np.float64) - self.shift, 0.0)
        g = self.weight * np.exp(-0.5 * ((x - self.mean) / self.sd) ** 2) / (self.sd * _SQRT_2PI)
        e = (1.0 - self.weight) * self.rate * np.exp(-self.rate * x)
        return g, e

    def posterior(self, scores: np.ndarray) -> np.ndarray:
        """P(relevant | score) for each score, shape (len(scores),), in [0, 1].

        Made monotone in the score (a running maximum from the lowest score up): a Gaussian's tail
        falls faster than an exponential's above the mean, which would otherwise give the very best
        scores a lower posterior than the middle of the relevant cluster."""
        s = np.asarray(scores, np.float64)
        if len(s) == 0:
            return np.zeros(0)
        g, e = self._densities(s)
        post = g / np.maximum(g + e, 1e-300)
        up = np.argsort(s, kind="stable")
        out = np.empty_like(post)
        out[up] = np.maximum.accumulate(post[up])
        return out


def fit_mixture(scores: np.ndarray, sd_floor: float = SD_FLOOR, iters: int = 200,
                starts: tuple[float, ...] = (0.01, 0.1, 0.5), tol: float = 1e-7) -> ScoreMixture:
    """Fit the exponential + Gaussian mixture to one query's scores by maximum likelihood (see the
    module docstring), EM accelerated by SQUAREM and finished by Newton steps.

    ``scores``: shape (n,), any units. The fit starts from each share in ``starts`` (the top share of
    the scores as the relevant component) and the fit with the highest likelihood is kept. The
    Gaussian's mean stays at or above the scores' mean (relevant scores are the high ones), its sd at
    or above ``sd_floor`` times the scores' sd, the share in [1e-4, 1 - 1e-4]. Raises ValueError for
    fewer than 2 scores or non-finite ones.

    Each start climbs to a stationary point of the likelihood under those bounds (a fixed point of
    the EM step with its M-step clipped to them), where plain EM from that start converges, in far
    fewer steps: plain EM converges linearly and slowly on these lists (on the 1,292 cached lists of
    ``lucerag bench mixture-fit``, a median of 111 steps for the slowest start and 22% of the lists
    cut off at 200 while still moving), so its fit was EM stopped early rather than the maximum.

    - SQUAREM (Varadhan & Roland, "Simple and globally convergent methods for accelerating the
      convergence of any EM algorithm", Scand. J. Statist. 2008; scheme S3 with the step length
      bounded and grown as in their R package): two EM steps, an extrapolation along them, clipped
      to the bounds; an extrapolation that lowers the likelihood is dropped for the second EM step,
      so the likelihood never falls.
    - Once an EM step moves less than 0.03 (scores in units of their sd), Newton steps on the
      parameters not held at a bound (exact gradient and Hessian from the same posterior sums),
      kept only when they raise the likelihood; quadratic convergence ends the fit in 2-3 steps.

    A start stops when its EM step moves no parameter more than ``tol`` (scores in units of their
    sd; the rate relative to itself above 1), when a Newton step moves none more than 1e-4 (the
    next would be ~1e-8), or after ``iters`` likelihood evaluations; the result's ``evaluations`` is
    the most any start took (median 15 on those lists). The rate is capped at 1e12 / sd of the
    scores: the likelihood has no maximum when the exponential shrinks onto the lowest score alone.

    The fit runs in the JVM (``lucerag.MixtureFit``, started if it is not running), in one call:
    it is a few hundred scalar steps, which cost ~1.3 ms a query as Python and numpy calls and
    ~0.05 ms in Java (``lucerag bench mixture-fit``)."""
    s = np.ascontiguousarray(scores, "<f8").ravel()
    if len(s) < 2 or not np.isfinite(s).all():
        raise ValueError(f"a score mixture needs at least 2 finite scores, got {len(s)}")
    from lucerag.lucene.classes import java

    blob = java.MixtureFit.fit(s.tobytes(), float(sd_floor), int(iters),
                               np.asarray(starts, "<f8").tobytes(), float(tol)).tostring()
    w, mu, sd, rate, shift, n, loglik, evaluations = np.frombuffer(blob, "<f8").tolist()
    return ScoreMixture(w, mu, sd, rate, shift, int(n), loglik, int(evaluations))
