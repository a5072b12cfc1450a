"""Per-query score-mixture fit: time and steps of the fit against the plain EM it replaced (issue 18).

``lucerag bench mixture-fit --cache DIR`` reads the candidate lists cached by ``lucerag bench transfer``
(``DIR/cands-*.npz``), builds each query's fused list as the shipped calibrator does (anchored fusion,
cosine + ``bm25_weight`` * z-score of BM25 over the top-``depth`` head of either view, the top
``depth`` fused scores), and fits :func:`lucerag.search.scoredist.fit_mixture` and the plain EM of
commit e252877 (:func:`plain_em_fit`, every start stepped until its share moves less than 1e-7, at
most 200 steps) to every list, alternating which goes first, ``--repeats`` times. Prints one JSON
object: per-fit wall and process CPU time (median, p90, in ms; CPU time is the one a shared machine
disturbs least), steps (likelihood evaluations of the new fit, EM
steps of the plain one, every start in one pass counting once), the share of plain-EM fits cut off at
200 steps, and how the two fits differ (log-likelihood gain, largest posterior change per list).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from lucerag.search.scoredist import _SQRT_2PI, SD_FLOOR, ScoreMixture, fit_mixture


def fused_lists(cache: Path, depth: int = 100, bm25_weight: float = 0.05) -> list[tuple[str, np.ndarray]]:
    """(file stem, top-``depth`` fused scores highest first) for every query with >= 2 candidates
    in every ``cands-*.npz`` under ``cache``. Raises FileNotFoundError when there is none."""
    from lucerag.eval.collections import load_candidates
    from lucerag.search.fusion import fuse, head

    paths = sorted(Path(cache).glob("cands-*.npz"))
    if not paths:
        raise FileNotFoundError(f"no cands-*.npz under {cache}: run `lucerag bench transfer --work` there first")
    out = []
    for path in paths:
        for c in load_candidates(path)[0].values():
            h = head(c, depth)
            fused = fuse(c, "anchored", bm25_weight=bm25_weight, depth=depth)
            top = np.sort(fused[h])[::-1][:depth]
            if len(top) >= 2:
                out.append((path.stem, top))
    return out


def plain_em_fit(scores: np.ndarray, sd_floor: float = SD_FLOOR, iters: int = 200,
                 starts: tuple[float, ...] = (0.01, 0.1, 0.5)) -> tuple[ScoreMixture, int]:
    """The fit before SQUAREM and Newton steps (commit e252877), kept as the benchmark's baseline:
    (best of the starts, EM steps taken by the slowest start)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    shift = float(s[-1])
    x = s - shift
    n = len(x)
    spread = float(x.std())
    if spread <= 0:
        return ScoreMixture(0.5, 0.0, 1.0, 1.0, shift, n, 0.0), 0
    floor, low = sd_floor * spread, float(x.mean())
    sum_x = float(x.sum())
    design = np.stack([np.ones(n), x, x * x], axis=1)
    params = []
    for start in starts:
        k = max(1, int(round(start * n)))
        rate = 1.0 / max(float(x[k:].mean()) if k < n else float(x.mean()), 1e-12)
        params.append([start, max(float(x[:k].mean()), low), max(float(x[:k].std()), floor), rate])
    live = list(range(len(params)))
    neg_coef = np.zeros((3, len(params)))
    log_norm = math.log(_SQRT_2PI)
    steps = 0
    with np.errstate(over="ignore"):
        for _ in range(iters):
            if not live:
                break
            steps += 1
            for j in live:
                w, mu, sd, rate = params[j]
                inv_var = 1.0 / (sd * sd)
                neg_coef[0, j] = 0.5 * mu * mu * inv_var + log_norm - math.log(w / ((1.0 - w) * rate * sd))
                neg_coef[1, j] = -(mu * inv_var + rate)
                neg_coef[2, j] = 0.5 * inv_var
            r = design @ neg_coef
            np.exp(r, out=r)
            r += 1.0
            np.reciprocal(r, out=r)
            moments = (r.T @ design).tolist()
            still = []
            for j in live:
                w, mu, sd, rate = params[j]
                r0, r1, r2 = moments[j]
                w_new = min(max(r0 / n, 1e-4), 1.0 - 1e-4)
                total = max(r0, 1e-12)
                mu = max(r1 / total, low)
                sd = max(math.sqrt(max((r2 - 2.0 * mu * r1 + mu * mu * r0) / total, 0.0)), floor)
                rate = (n - r0) / max(sum_x - r1, 1e-12)
                params[j] = [w_new, mu, sd, rate]
                if abs(w_new - w) >= 1e-7:
                    still.append(j)
            live = still
    best = None
    for w, mu, sd, rate in params:
        m = ScoreMixture(w, mu, sd, rate, shift, n, 0.0)
        g, e = m._densities(s)
        m = ScoreMixture(w, mu, sd, rate, shift, n, float(np.log(np.maximum(g + e, 1e-300)).sum()))
        if best is None or m.loglik > best.loglik:
            best = m
    assert best is not None
    return best, steps


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.median(values)) * 1e3, 4), "p90": round(float(np.percentile(values, 90)) * 1e3, 4)}


def run(cache: Path, repeats: int = 3, depth: int = 100, bm25_weight: float = 0.05) -> dict:
    """The benchmark (see the module docstring); ``repeats`` rounds over every list."""
    lists = fused_lists(cache, depth, bm25_weight)
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for rnd in range(repeats):
        for i, (_, s) in enumerate(lists):
            for which in ((0, 1) if (i + rnd) % 2 else (1, 0)):
                t, c = time.perf_counter(), time.process_time()
                fit_mixture(s) if which == 0 else plain_em_fit(s)
                cpu[which].append(time.process_time() - c)
                wall[which].append(time.perf_counter() - t)
    new_steps, old_steps, gain, moved = [], [], [], []
    for _, s in lists:
        new = fit_mixture(s)
        old, steps = plain_em_fit(s)
        new_steps.append(new.evaluations)
        old_steps.append(steps)
        gain.append(new.loglik - old.loglik)
        moved.append(float(np.abs(new.posterior(s) - old.posterior(s)).max()))
    q = lambda v, p: round(float(np.percentile(v, p)), 6)  # noqa: E731
    return {
        "lists": len(lists), "files": sorted({name for name, _ in lists}), "depth": depth,
        "bm25_weight": bm25_weight, "repeats": repeats,
        "fit_ms": _ms(wall[0]), "plain_em_ms": _ms(wall[1]),
        "fit_cpu_ms": _ms(cpu[0]), "plain_em_cpu_ms": _ms(cpu[1]),
        "fit_steps": {"p50": q(new_steps, 50), "p90": q(new_steps, 90), "max": int(max(new_steps))},
        "plain_em_steps": {"p50": q(old_steps, 50), "p90": q(old_steps, 90),
                           "share_at_200": round(float(np.mean(np.array(old_steps) >= 200)), 4)},
        "loglik_gain": {"min": q(gain, 0), "p50": q(gain, 50), "max": q(gain, 100)},
        "posterior_change": {"p50": q(moved, 50), "p90": q(moved, 90), "max": q(moved, 100),
                             "share_over_0.01": round(float(np.mean(np.array(moved) > 0.01)), 4)},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="lucerag bench mixture-fit", description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True,
                    help="folder of cands-*.npz (the cache/ folder under `lucerag bench transfer --work`)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--bm25-weight", type=float, default=0.05)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.cache, a.repeats, a.depth, a.bm25_weight)))


if __name__ == "__main__":
    main()
