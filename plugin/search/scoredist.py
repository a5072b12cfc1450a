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
scores inside the non-relevant tail (the classic degenerate EM solution). Numpy only.
"""

from __future__ import annotations

import math
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
    next would be ~1e-8), or after ``iters`` likelihood evaluations (the result's ``evaluations``).
    Every start runs in the same pass: one evaluation is two small matrix products over a (starts, n)
    array of log posterior odds, which are quadratic in the score (log Gaussian minus log
    exponential). The rate is capped at 1e12 / sd of the scores: the likelihood has no maximum when
    the exponential shrinks onto the lowest score alone. Median 15 evaluations on those lists."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    if len(s) < 2 or not np.isfinite(s).all():
        raise ValueError(f"a score mixture needs at least 2 finite scores, got {len(s)}")
    shift = float(s[-1])
    n = len(s)
    x = s - shift
    mean = float(x.sum()) / n
    spread = math.sqrt(max(float(x @ x) / n - mean * mean, 0.0))
    if spread <= 1e-12 * max(abs(shift), float(x[0])):   # all tied (to rounding): nothing tells
        return ScoreMixture(0.5, 0.0, 1.0, 1.0, shift, n, 0.0)  # relevant from not; all equally likely
    x /= spread                       # unit spread: parameters of order 1, the fit scale-free
    fit = _Fit(x, sd_floor, tol)
    found = fit.run([fit.start(share) for share in starts], iters)
    evaluations = fit.evaluations
    # the likelihood in the scores' units: every density is 1/spread times the unit-spread one
    with np.errstate(over="ignore"):
        lls = [ll - n * math.log(spread) for ll, _, _ in fit._evaluate(found)]
    j = max(range(len(found)), key=lls.__getitem__)
    w, mu, sd, rate = found[j]
    return ScoreMixture(w, mu * spread, sd * spread, rate / spread, shift, n, lls[j], evaluations)


_W_LO, _W_HI = 1e-4, 1.0 - 1e-4
_LOG_NORM = math.log(_SQRT_2PI)
_NEWTON_FROM = 3e-2       # EM step size (unit-spread scores) below which Newton steps take over
_RATE_HI = 1e12          # the exponential's rate at most 1e12 / spread: the likelihood has no maximum
                          # when the exponential shrinks onto the lowest score alone (density -> inf)
_NEWTON_LAST = 1e-4       # a Newton step this small is the last: the next would be ~1e-8
Params = tuple[float, float, float, float]   # share w, Gaussian mean mu and sd, exponential rate


def _solve_negative_definite(h: list[list[float]], g: list[float]) -> list[float] | None:
    """``-h^-1 g`` by Cholesky factorisation of ``-h`` (m x m, m <= 4, plain floats: numpy's call
    overhead is larger than the work); None when ``-h`` is not positive definite."""
    m = len(g)
    low = [[0.0] * m for _ in range(m)]
    for i in range(m):
        li = low[i]
        for k in range(i + 1):
            lk = low[k]
            v = -h[i][k]
            for t in range(k):
                v -= li[t] * lk[t]
            if i == k:
                if not v > 1e-300:
                    return None
                li[i] = math.sqrt(v)
            else:
                li[k] = v / lk[k]
    y = list(g)                          # (-h) step = g: L y = g, then L^T step = y
    for i in range(m):
        for t in range(i):
            y[i] -= low[i][t] * y[t]
        y[i] /= low[i][i]
    for i in reversed(range(m)):
        for t in range(i + 1, m):
            y[i] -= low[t][i] * y[t]
        y[i] /= low[i][i]
    return y


def _moved(p: Params, q: Params) -> float:
    """How far ``q`` is from ``p``: the largest change of share, mean and sd, and of the rate
    relative to itself once above 1 (it spans 1 to ``_RATE_HI``)."""
    d, e = abs(p[0] - q[0]), abs(p[1] - q[1])
    if e > d:
        d = e
    e = abs(p[2] - q[2])
    if e > d:
        d = e
    e = abs(p[3] - q[3]) / (p[3] if p[3] > 1.0 else 1.0)
    return e if e > d else d


class _Fit:
    """The fit of :func:`fit_mixture` on unit-spread scores ``x`` (highest first, lowest 0).

    Each start is a generator that yields the next parameters it needs the likelihood of and gets
    back ``(loglik, posterior sums, posteriors)``; :meth:`run` evaluates every live start's request
    in one pass."""

    def __init__(self, x: np.ndarray, sd_floor: float, tol: float):
        self.n, self.tol = len(x), tol
        self.sum_x = float(x.sum())
        self.floor, self.low = float(sd_floor), self.sum_x / self.n
        x2 = x * x
        self.powers = np.stack([np.ones(self.n), x, x2, x2 * x, x2 * x2], axis=1)   # (n, 5): x^0..x^4
        self.rows = np.ascontiguousarray(self.powers[:, :3].T)                     # (3, n): 1, x, x^2
        self.sums = self.rows.sum(axis=1).tolist()                                  # n, sum x, sum x^2
        self.cum, self.cum2 = np.cumsum(x), np.cumsum(x2)                          # over the top k

    def start(self, share: float) -> Params:
        """Starting parameters: the top ``share`` of the scores as the relevant component."""
        n = self.n
        k = max(1, int(round(share * n)))
        top, top2 = float(self.cum[k - 1]), float(self.cum2[k - 1])
        mean = top / k
        rest = (self.sum_x - top) / (n - k) if k < n else self.sum_x / n
        return (min(max(share, _W_LO), _W_HI), max(mean, self.low),
                max(math.sqrt(max(top2 / k - mean * mean, 0.0)), self.floor), min(1.0 / max(rest, 1e-12), _RATE_HI))

    def run(self, starts: list[Params], iters: int) -> list[Params]:
        """Each start's stationary point (or where it stood after ``iters`` evaluations)."""
        self.at = list(starts)                     # each start's best point so far
        gens = [self._climb(j, p) for j, p in enumerate(starts)]
        asks = {j: next(g) for j, g in enumerate(gens)}
        self.evaluations = 0
        with np.errstate(over="ignore"):
            for _ in range(iters):
                if not asks:
                    break
                self.evaluations += 1
                order = list(asks)
                answers = self._evaluate([asks[j] for j in order])
                for j, answer in zip(order, answers):
                    try:
                        asks[j] = gens[j].send(answer)
                    except StopIteration:
                        del asks[j]
        return self.at

    def _evaluate(self, points: list[Params]) -> list[tuple[float, list[float], np.ndarray]]:
        """(loglik, [sum r x^k for k < 3], r) at each point, r = P(relevant | x) of every score."""
        n = self.n
        coef = []                                  # minus the log posterior odds: coef . (1, x, x^2)
        for w, mu, sd, rate in points:
            inv_var = 1.0 / (sd * sd)
            coef.append((0.5 * mu * mu * inv_var + _LOG_NORM - math.log(w / ((1.0 - w) * rate * sd)),
                         -(mu * inv_var + rate), 0.5 * inv_var))
        neg = np.array(coef) @ self.rows                              # (k, n)
        r = np.exp(neg)
        r += 1.0
        log_sum = np.log(r).sum(axis=1).tolist()                      # sum log(1 + 1/odds)
        np.reciprocal(r, out=r)
        moments = (r @ self.powers[:, :3]).tolist()                   # (k, 3)
        sums = self.sums
        sum_neg = [c0 * sums[0] + c1 * sums[1] + c2 * sums[2] for c0, c1, c2 in coef]
        for j, v in enumerate(log_sum):
            if v == math.inf:   # odds below e^-709 for some score: its term is log(1 + odds) ~ 0
                log_sum[j] = float(np.logaddexp(0.0, -neg[j]).sum())
                sum_neg[j] = 0.0
        out = []
        for j, (w, _, _, rate) in enumerate(points):
            # log(g + e) = log e + log(1 + odds), log(1 + odds) = log(1 + 1/odds) - log(1/odds),
            # log e = log((1 - w) rate) - rate x
            ll = log_sum[j] - sum_neg[j] + n * math.log((1.0 - w) * rate) - rate * self.sum_x
            out.append((ll, moments[j], r[j]))
        return out

    def _em(self, sums: list[float]) -> Params:
        """The EM step (M-step clipped to the bounds) from the posterior sums at a point."""
        r0, r1, r2 = sums
        n, low, floor = self.n, self.low, self.floor
        total = r0 if r0 > 1e-12 else 1e-12
        mu = r1 / total
        if mu < low:
            mu = low
        var = (r2 - 2.0 * mu * r1 + mu * mu * r0) / total
        sd = math.sqrt(var) if var > floor * floor else floor
        w = r0 / n
        w = _W_LO if w < _W_LO else _W_HI if w > _W_HI else w
        rest = self.sum_x - r1
        rate = (n - r0) / (rest if rest > 1e-12 else 1e-12)
        return (w, mu, sd, rate if rate < _RATE_HI else _RATE_HI)

    def _clip(self, p: list[float]) -> Params | None:
        w, mu, sd, rate = p
        if not (rate > 0 and math.isfinite(rate) and math.isfinite(mu) and math.isfinite(sd) and math.isfinite(w)):
            return None
        return (min(max(w, _W_LO), _W_HI), max(mu, self.low), max(sd, self.floor), min(rate, _RATE_HI))

    def _newton(self, p: Params, a: list[float], r: np.ndarray) -> Params | None:
        """A Newton step on the log-likelihood from ``p`` over the parameters not held at a bound
        (a bound holds a parameter when the gradient pushes it outwards), clipped to the bounds;
        None where the Hessian over those parameters is not negative definite."""
        n, sum_x = self.n, self.sum_x
        w, mu, sd, rate = p
        a0, a1, a2 = a
        iv, sd3 = 1.0 / (sd * sd), sd * sd * sd
        u1, u2 = a1 - mu * a0, a2 - 2.0 * mu * a1 + mu * mu * a0     # sum r (x - mu), sum r (x - mu)^2
        grad = [a0 / w - (n - a0) / (1.0 - w), u1 * iv, -a0 / sd + u2 / sd3, (n - a0) / rate - (sum_x - a1)]
        # Hessian: sum r d2 log g + (1 - r) d2 log e, plus sum r (1 - r) d d^T with d = dlog g - dlog e,
        # each entry of d a polynomial in x of degree <= 2 (rows of poly): poly [sum r(1-r) x^(i+j)] poly^T
        b0, b1, b2, b3, b4 = ((r - r * r) @ self.powers).tolist()
        poly = ((1.0 / (w * (1.0 - w)), 0.0, 0.0), (-mu * iv, iv, 0.0),
                (-1.0 / sd + mu * mu / sd3, -2.0 * mu / sd3, 1.0 / sd3), (-1.0 / rate, 1.0, 0.0))
        cols = [(c0 * b0 + c1 * b1 + c2 * b2, c0 * b1 + c1 * b2 + c2 * b3, c0 * b2 + c1 * b3 + c2 * b4)
                for c0, c1, c2 in poly]                                  # [sum r(1-r) x^(i+j)] poly^T
        hess = [[p0 * h0 + p1 * h1 + p2 * h2 for h0, h1, h2 in cols] for p0, p1, p2 in poly]
        hess[0][0] -= a0 / (w * w) + (n - a0) / ((1.0 - w) ** 2)
        hess[1][1] -= a0 * iv
        hess[1][2] -= 2.0 * u1 / sd3
        hess[2][1] -= 2.0 * u1 / sd3
        hess[2][2] += a0 * iv - 3.0 * u2 * iv * iv
        hess[3][3] -= (n - a0) / (rate * rate)
        held = ((w <= _W_LO and grad[0] < 0) or (w >= _W_HI and grad[0] > 0),
                mu <= self.low and grad[1] < 0, sd <= self.floor and grad[2] < 0, rate >= _RATE_HI and grad[3] > 0)
        idx = [i for i in range(4) if not held[i]]
        step = _solve_negative_definite([[hess[i][k] for k in idx] for i in idx], [grad[i] for i in idx])
        if step is None:
            return None
        q = list(p)
        for i, d in zip(idx, step):
            q[i] += d
        return self._clip(q)

    def _climb(self, j: int, p: Params):
        """One start's climb (a generator, see the class docstring)."""
        tol, step_max = self.tol, 1.0
        ll, a, b = yield p
        while True:
            p1 = self._em(a)
            if _moved(p1, p) < _NEWTON_FROM:
                q = self._newton(p, a, b)
                if q is not None:
                    if _moved(q, p) < _NEWTON_LAST:        # converging quadratically: q is within
                        self.at[j] = q                     # ~tol of the stationary point
                        return
                    llq, aq, bq = yield q
                    if llq >= ll:
                        p, ll, a, b = q, llq, aq, bq
                        self.at[j] = p
                        continue
            if _moved(p1, p) < tol:
                self.at[j] = p1
                return
            # SQUAREM (S3): two EM steps p -> p1 -> p2, then p - 2 t r + t^2 v with t = -|r| / |v|
            ll1, a1, b1 = yield p1
            p2 = self._em(a1)
            r = (p1[0] - p[0], p1[1] - p[1], p1[2] - p[2], p1[3] - p[3])
            v = (p2[0] - p1[0] - r[0], p2[1] - p1[1] - r[1], p2[2] - p1[2] - r[2], p2[3] - p1[3] - r[3])
            rr = r[0] * r[0] + r[1] * r[1] + r[2] * r[2] + r[3] * r[3]
            vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]
            t = -math.sqrt(rr / vv) if vv > 0 else -1.0
            if t > -1.0:
                t = -1.0
            if t <= -step_max:                         # at the bound: allow longer steps next time
                t = -step_max
                step_max *= 4.0
            q = self._clip([o - 2.0 * t * c + t * t * e for o, c, e in zip(p, r, v)]) if t < -1.0 else p2
            if q is None:
                q = p2
            llq, aq, bq = yield q
            if q is not p2 and not llq >= ll1:         # the extrapolation lost likelihood: plain EM
                step_max = max(1.0, step_max / 4.0)
                q = p2
                llq, aq, bq = yield q
            p, ll, a, b = q, llq, aq, bq
            self.at[j] = p
