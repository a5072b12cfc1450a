package lucerag;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The per-query score-mixture fit behind {@code lucerag.search.scoredist.fit_mixture}: an exponential
 * (non-relevant) plus Gaussian (relevant) mixture fitted to one query's candidate scores by maximum
 * likelihood, EM accelerated by SQUAREM (Varadhan and Roland, Scand. J. Statist. 2008, scheme S3) and
 * finished by Newton steps. The model, the bounds and the stopping rules are documented on the Python
 * function; this class is its only implementation.
 *
 * <p>It runs in Java because the fit is a few hundred short scalar steps over ~100 scores: in Python
 * each step costs microseconds of interpreter and numpy call overhead (1.3 ms a query), here it costs
 * nanoseconds. One call per query: the scores go in as little-endian float64 bytes, the fitted
 * parameters come back the same way.
 */
public final class MixtureFit {
  private static final double W_LO = 1e-4, W_HI = 1.0 - 1e-4;
  private static final double LOG_NORM = Math.log(Math.sqrt(2.0 * Math.PI));
  /** EM step size (unit-spread scores) below which Newton steps take over. */
  private static final double NEWTON_FROM = 3e-2;
  /** The exponential's rate is capped (unit-spread scores): the likelihood has no maximum when the
   * exponential shrinks onto the lowest score alone. */
  private static final double RATE_HI = 1e12;
  /** A Newton step this small is the last: the next would be ~1e-8. */
  private static final double NEWTON_LAST = 1e-4;

  private static final class OutOfEvaluations extends RuntimeException {
    OutOfEvaluations() {
      super(null, null, false, false);
    }
  }

  private static final OutOfEvaluations OUT = new OutOfEvaluations();

  /** The likelihood of one point and the posterior sums an EM or Newton step needs. */
  private static final class Eval {
    double ll, a0, a1, a2;
    final double[] r;

    Eval(int n) {
      r = new double[n];
    }
  }

  private final double[] x;    // unit-spread scores, highest first, lowest 0
  private final int n;
  private final double sumX, sumX2, low, floor, tol;
  private final int iters;
  private int count;           // evaluations of the current start
  private double[] at;         // the current start's best point so far

  private MixtureFit(double[] x, double sdFloor, double tol, int iters) {
    this.x = x;
    this.n = x.length;
    double s = 0, s2 = 0;
    for (double v : x) {
      s += v;
      s2 += v * v;
    }
    this.sumX = s;
    this.sumX2 = s2;
    this.low = s / n;
    this.floor = sdFloor;
    this.tol = tol;
    this.iters = iters;
  }

  /**
   * Fits the mixture to {@code scores} (little-endian float64, any order, at least 2, all finite:
   * the caller checks) from each share in {@code starts} (little-endian float64) and keeps the most
   * likely fit. Returns 8 little-endian float64: share, Gaussian mean (from the lowest score) and sd,
   * exponential rate, shift (the lowest score), n, log-likelihood, evaluations; all in the scores'
   * units.
   */
  public static byte[] fit(byte[] scores, double sdFloor, int iters, byte[] starts, double tol) {
    double[] s = doubles(scores);
    double[] shares = doubles(starts);
    int n = s.length;
    Arrays.sort(s);
    double shift = s[0];
    double[] x = new double[n];
    double sum = 0;
    for (int i = 0; i < n; i++) {
      x[i] = s[n - 1 - i] - shift;   // highest first
      sum += x[i];
    }
    double mean = sum / n, sq = 0;
    for (double v : x) {
      sq += v * v;
    }
    double spread = Math.sqrt(Math.max(sq / n - mean * mean, 0.0));
    if (spread <= 1e-12 * Math.max(Math.abs(shift), x[0])) {  // all tied: nothing tells relevant from not
      return bytes(0.5, 0.0, 1.0, 1.0, shift, n, 0.0, 0);
    }
    for (int i = 0; i < n; i++) {
      x[i] /= spread;                 // unit spread: parameters of order 1, the fit scale-free
    }
    MixtureFit fit = new MixtureFit(x, sdFloor, tol, iters);
    double[][] found = new double[shares.length][];
    int evaluations = 0;
    for (int j = 0; j < shares.length; j++) {
      found[j] = fit.climb(fit.start(shares[j]));
      evaluations = Math.max(evaluations, fit.count);
    }
    Eval e = new Eval(n);
    int best = 0;
    double bestLl = Double.NaN;
    for (int j = 0; j < found.length; j++) {
      fit.evaluate(found[j], e);
      double ll = e.ll - n * Math.log(spread);  // every density is 1/spread times the unit-spread one
      if (j == 0 || ll > bestLl) {
        best = j;
        bestLl = ll;
      }
    }
    double[] p = found[best];
    return bytes(p[0], p[1] * spread, p[2] * spread, p[3] / spread, shift, n, bestLl, evaluations);
  }

  private static double[] doubles(byte[] b) {
    double[] out = new double[b.length / 8];
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(out);
    return out;
  }

  private static byte[] bytes(double... v) {
    ByteBuffer out = ByteBuffer.allocate(8 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    out.asDoubleBuffer().put(v);
    return out.array();
  }

  /** Starting parameters: the top {@code share} of the scores as the relevant component. */
  private double[] start(double share) {
    int k = Math.max(1, (int) Math.rint(share * n));   // round half to even, as Python's round
    k = Math.min(k, n);
    double top = 0, top2 = 0;
    for (int i = 0; i < k; i++) {
      top += x[i];
      top2 += x[i] * x[i];
    }
    double mean = top / k;
    double rest = k < n ? (sumX - top) / (n - k) : sumX / n;
    return new double[] {Math.min(Math.max(share, W_LO), W_HI), Math.max(mean, low),
        Math.max(Math.sqrt(Math.max(top2 / k - mean * mean, 0.0)), floor),
        Math.min(1.0 / Math.max(rest, 1e-12), RATE_HI)};
  }

  /** The likelihood at {@code p} and the posterior sums, counted against the start's budget. */
  private Eval ask(double[] p) {
    if (count >= iters) {
      throw OUT;
    }
    count++;
    Eval e = new Eval(n);
    evaluate(p, e);
    return e;
  }

  /** Fills {@code e}: log-likelihood at {@code p}, sums of r x^k (k < 3) and r = P(relevant | x). */
  private void evaluate(double[] p, Eval e) {
    double w = p[0], mu = p[1], sd = p[2], rate = p[3];
    double invVar = 1.0 / (sd * sd);
    // minus the log posterior odds of relevance is quadratic in x: c0 + c1 x + c2 x^2
    double c0 = 0.5 * mu * mu * invVar + LOG_NORM - Math.log(w / ((1.0 - w) * rate * sd));
    double c1 = -(mu * invVar + rate), c2 = 0.5 * invVar;
    double logSum = 0, prod = 1, a0 = 0, a1 = 0, a2 = 0;
    double[] r = e.r;
    for (int i = 0; i < n; i++) {
      double xi = x[i];
      double q = 1.0 + Math.exp(c0 + (c1 + c2 * xi) * xi);
      // sum of log(1 + 1/odds) as the log of running products (one log per ~10 scores, not one each);
      // a product stays below 1e150 * 1e150 before its log is taken
      if (q < 1e150) {
        prod *= q;
        if (prod > 1e150) {
          logSum += Math.log(prod);
          prod = 1;
        }
      } else {
        logSum += Math.log(q);        // +inf where exp overflowed: handled below
      }
      double ri = 1.0 / q;
      r[i] = ri;
      a0 += ri;
      a1 += ri * xi;
      a2 += ri * xi * xi;
    }
    logSum += Math.log(prod);
    double sumNeg = c0 * n + c1 * sumX + c2 * sumX2;
    if (logSum == Double.POSITIVE_INFINITY) {  // odds below e^-709 somewhere: sum log(1 + odds) directly
      logSum = 0;
      for (int i = 0; i < n; i++) {
        double t = -(c0 + (c1 + c2 * x[i]) * x[i]);
        logSum += Math.max(t, 0.0) + Math.log1p(Math.exp(-Math.abs(t)));
      }
      sumNeg = 0;
    }
    // log(g + e) = log e + log(1 + odds); log(1 + odds) = log(1 + 1/odds) - log(1/odds);
    // log e = log((1 - w) rate) - rate x
    e.ll = logSum - sumNeg + n * Math.log((1.0 - w) * rate) - rate * sumX;
    e.a0 = a0;
    e.a1 = a1;
    e.a2 = a2;
  }

  /** The EM step (M-step clipped to the bounds) from the posterior sums at a point. */
  private double[] em(Eval e) {
    double r0 = e.a0, r1 = e.a1, r2 = e.a2;
    double total = r0 > 1e-12 ? r0 : 1e-12;
    double mu = r1 / total;
    if (mu < low) {
      mu = low;
    }
    double var = (r2 - 2.0 * mu * r1 + mu * mu * r0) / total;
    double sd = var > floor * floor ? Math.sqrt(var) : floor;
    double w = r0 / n;
    w = w < W_LO ? W_LO : w > W_HI ? W_HI : w;
    double rest = sumX - r1;
    double rate = (n - r0) / (rest > 1e-12 ? rest : 1e-12);
    return new double[] {w, mu, sd, rate < RATE_HI ? rate : RATE_HI};
  }

  private double[] clip(double[] p) {
    double w = p[0], mu = p[1], sd = p[2], rate = p[3];
    if (!(rate > 0 && Double.isFinite(rate) && Double.isFinite(mu) && Double.isFinite(sd) && Double.isFinite(w))) {
      return null;
    }
    return new double[] {Math.min(Math.max(w, W_LO), W_HI), Math.max(mu, low), Math.max(sd, floor),
        Math.min(rate, RATE_HI)};
  }

  /** The largest change of share, mean and sd, and of the rate relative to itself once above 1. */
  private static double moved(double[] p, double[] q) {
    double d = Math.max(Math.abs(p[0] - q[0]), Math.max(Math.abs(p[1] - q[1]), Math.abs(p[2] - q[2])));
    return Math.max(d, Math.abs(p[3] - q[3]) / (p[3] > 1.0 ? p[3] : 1.0));
  }

  /**
   * A Newton step on the log-likelihood from {@code p} over the parameters not held at a bound
   * (the gradient pushing them outwards), clipped to the bounds; null where the Hessian over those
   * parameters is not negative definite.
   */
  private double[] newton(double[] p, Eval e) {
    double w = p[0], mu = p[1], sd = p[2], rate = p[3];
    double a0 = e.a0, a1 = e.a1, a2 = e.a2;
    double iv = 1.0 / (sd * sd), sd3 = sd * sd * sd;
    double u1 = a1 - mu * a0, u2 = a2 - 2.0 * mu * a1 + mu * mu * a0;  // sum r (x - mu), sum r (x - mu)^2
    double[] grad = {a0 / w - (n - a0) / (1.0 - w), u1 * iv, -a0 / sd + u2 / sd3, (n - a0) / rate - (sumX - a1)};
    // Hessian: sum r d2 log g + (1 - r) d2 log e, plus sum r (1 - r) d d^T with d = dlog g - dlog e,
    // each entry of d a polynomial in x of degree <= 2 (rows of poly)
    double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0;
    double[] r = e.r;
    for (int i = 0; i < n; i++) {
      double v = r[i] - r[i] * r[i], xi = x[i], x2 = xi * xi;
      b0 += v;
      b1 += v * xi;
      b2 += v * x2;
      b3 += v * x2 * xi;
      b4 += v * x2 * x2;
    }
    double[][] poly = {{1.0 / (w * (1.0 - w)), 0.0, 0.0}, {-mu * iv, iv, 0.0},
        {-1.0 / sd + mu * mu / sd3, -2.0 * mu / sd3, 1.0 / sd3}, {-1.0 / rate, 1.0, 0.0}};
    double[][] cols = new double[4][];
    for (int i = 0; i < 4; i++) {
      double c0 = poly[i][0], c1 = poly[i][1], c2 = poly[i][2];
      cols[i] = new double[] {c0 * b0 + c1 * b1 + c2 * b2, c0 * b1 + c1 * b2 + c2 * b3, c0 * b2 + c1 * b3 + c2 * b4};
    }
    double[][] hess = new double[4][4];
    for (int i = 0; i < 4; i++) {
      for (int k = 0; k < 4; k++) {
        hess[i][k] = poly[i][0] * cols[k][0] + poly[i][1] * cols[k][1] + poly[i][2] * cols[k][2];
      }
    }
    hess[0][0] -= a0 / (w * w) + (n - a0) / ((1.0 - w) * (1.0 - w));
    hess[1][1] -= a0 * iv;
    hess[1][2] -= 2.0 * u1 / sd3;
    hess[2][1] -= 2.0 * u1 / sd3;
    hess[2][2] += a0 * iv - 3.0 * u2 * iv * iv;
    hess[3][3] -= (n - a0) / (rate * rate);
    boolean[] held = {(w <= W_LO && grad[0] < 0) || (w >= W_HI && grad[0] > 0), mu <= low && grad[1] < 0,
        sd <= floor && grad[2] < 0, rate >= RATE_HI && grad[3] > 0};
    int m = 0;
    int[] idx = new int[4];
    for (int i = 0; i < 4; i++) {
      if (!held[i]) {
        idx[m++] = i;
      }
    }
    double[][] h = new double[m][m];
    double[] g = new double[m];
    for (int i = 0; i < m; i++) {
      g[i] = grad[idx[i]];
      for (int k = 0; k < m; k++) {
        h[i][k] = hess[idx[i]][idx[k]];
      }
    }
    double[] step = solveNegativeDefinite(h, g);
    if (step == null) {
      return null;
    }
    double[] q = p.clone();
    for (int i = 0; i < m; i++) {
      q[idx[i]] += step[i];
    }
    return clip(q);
  }

  /** {@code -h^-1 g} by Cholesky factorisation of {@code -h}; null when {@code -h} is not positive definite. */
  private static double[] solveNegativeDefinite(double[][] h, double[] g) {
    int m = g.length;
    double[][] low = new double[m][m];
    for (int i = 0; i < m; i++) {
      for (int k = 0; k <= i; k++) {
        double v = -h[i][k];
        for (int t = 0; t < k; t++) {
          v -= low[i][t] * low[k][t];
        }
        if (i == k) {
          if (!(v > 1e-300)) {
            return null;
          }
          low[i][i] = Math.sqrt(v);
        } else {
          low[i][k] = v / low[k][k];
        }
      }
    }
    double[] y = g.clone();   // (-h) step = g: L y = g, then L^T step = y
    for (int i = 0; i < m; i++) {
      for (int t = 0; t < i; t++) {
        y[i] -= low[i][t] * y[t];
      }
      y[i] /= low[i][i];
    }
    for (int i = m - 1; i >= 0; i--) {
      for (int t = i + 1; t < m; t++) {
        y[i] -= low[t][i] * y[t];
      }
      y[i] /= low[i][i];
    }
    return y;
  }

  /** One start's climb to a stationary point; where it stood when its evaluations ran out otherwise. */
  private double[] climb(double[] start) {
    count = 0;
    at = start;
    try {
      climbFrom(start);
    } catch (OutOfEvaluations stop) {
      // at holds the best point reached
    }
    return at;
  }

  private void climbFrom(double[] p) {
    double stepMax = 1.0;
    Eval cur = ask(p);
    while (true) {
      double[] p1 = em(cur);
      double step = moved(p1, p);
      if (step < NEWTON_FROM) {
        double[] q = newton(p, cur);
        if (q != null) {
          if (moved(q, p) < NEWTON_LAST) {  // converging quadratically: q is within ~tol of the point
            at = q;
            return;
          }
          Eval eq = ask(q);
          if (eq.ll >= cur.ll) {
            p = q;
            cur = eq;
            at = p;
            continue;
          }
        }
      }
      if (step < tol) {
        at = p1;
        return;
      }
      // SQUAREM (S3): two EM steps p -> p1 -> p2, then p - 2 t r + t^2 v with t = -|r| / |v|
      Eval e1 = ask(p1);
      double[] p2 = em(e1);
      double rr = 0, vv = 0;
      double[] r = new double[4], v = new double[4];
      for (int i = 0; i < 4; i++) {
        r[i] = p1[i] - p[i];
        v[i] = p2[i] - p1[i] - r[i];
        rr += r[i] * r[i];
        vv += v[i] * v[i];
      }
      double t = vv > 0 ? -Math.sqrt(rr / vv) : -1.0;
      if (t > -1.0) {
        t = -1.0;
      }
      if (t <= -stepMax) {            // at the bound: allow longer steps next time
        t = -stepMax;
        stepMax *= 4.0;
      }
      double[] q = null;
      if (t < -1.0) {
        double[] z = new double[4];
        for (int i = 0; i < 4; i++) {
          z[i] = p[i] - 2.0 * t * r[i] + t * t * v[i];
        }
        q = clip(z);
      }
      boolean extrapolated = q != null;
      if (!extrapolated) {
        q = p2;
      }
      Eval eq = ask(q);
      if (extrapolated && !(eq.ll >= e1.ll)) {  // the extrapolation lost likelihood: plain EM
        stepMax = Math.max(1.0, stepMax / 4.0);
        q = p2;
        eq = ask(q);
      }
      p = q;
      cur = eq;
      at = p;
    }
  }
}
