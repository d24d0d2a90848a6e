"""How often the verdict's tests say "better" when there is no difference (size), and how
often they find a known one (power), at n = 300, every test promotion uses.

    python benchmarks/verdict_size.py                  # 5,000 simulations per cell, n = 300
    python benchmarks/verdict_size.py --reps 1000      # quicker, noisier
    python benchmarks/verdict_size.py --n 169 571      # other test-part sizes as well

Every deciding test runs vectorised over all simulations at once (the EWC variance is one
matrix product), so 5,000 simulations per cell take seconds. Size: the share of simulations
with no true difference in which the one-sided 5% test says "better", with its exact
(Clopper-Pearson) one-sided upper 95% Monte-Carlo bound; the target is a bound <= 0.065 in
every cell of every deciding test. Beside it, the test it replaced, as it was (two-sided 5%,
as the verdict used it: Newey-West + HLN for Diebold-Mariano, McNemar for accuracy, a
7-bar block permutation for macro-F1). Power: the share of simulations in which the test
finds a skill of 0.02 / 0.05 / 0.1 (regression: the model's error variance 1 - skill times
the baseline's; classification: an accuracy gain of that size), and the median of the
smallest skill each simulation's verdict says the test could have detected (80% power).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orchestrator.stats.significance import (  # noqa: E402
    ALPHA,
    detectable_factor,
    ewc_standard_error,
    macro_f1,
    macro_f1_rotation,
    pesaran_timmermann,
)
from tests.simulated_errors import (  # noqa: E402
    ar_errors,
    ma_errors,
    markov_flags,
    markov_labels,
    volatility_path,
)

SKILLS = (0.02, 0.05, 0.1)


def _correlated(rng, n, reps):
    """Two error series correlated 0.9, as two decent forecasts of one target have."""
    z1, z2 = rng.normal(size=(n, reps)), rng.normal(size=(n, reps))
    return z1, 0.9 * z1 + math.sqrt(1 - 0.81) * z2


# name: (horizon, make(rng, n, reps) -> (baseline's errors, model's errors at skill 0))
ERRORS = {
    "iid": (1, lambda r, n, k: (r.normal(size=(n, k)), r.normal(size=(n, k)))),
    "iid, errors correlated 0.9": (1, _correlated),
    "shared volatility clustering": (
        1,
        lambda r, n, k: (lambda v: (v * r.normal(size=(n, k)), v * r.normal(size=(n, k))))(
            volatility_path(r, n, reps=k)
        ),
    ),
    "AR(0.5)": (1, lambda r, n, k: (ar_errors(r, n, 0.5, reps=k), ar_errors(r, n, 0.5, reps=k))),
    "AR(0.8)": (1, lambda r, n, k: (ar_errors(r, n, 0.8, reps=k), ar_errors(r, n, 0.8, reps=k))),
    "overlapping 5-bar": (
        5,
        lambda r, n, k: (ma_errors(r, n, 5, reps=k), ma_errors(r, n, 5, reps=k)),
    ),
    "overlapping 20-bar": (
        20,
        lambda r, n, k: (ma_errors(r, n, 20, reps=k), ma_errors(r, n, 20, reps=k)),
    ),
}


def _flags(rng, n, k, h, stay, p):
    if h == 1:
        return markov_flags(rng, n, stay, p=p, reps=k)
    return (ma_errors(rng, n, h, reps=k) < stats.norm.ppf(p)).astype(float)


# name: (horizon, stay probability of the Markov chain, or None for overlapping h-bar labels)
OUTCOMES = {
    "Markov runs, stay 0.5 (independent)": (1, 0.5),
    "Markov runs, stay 0.7": (1, 0.7),
    "Markov runs, stay 0.85": (1, 0.85),
    "overlapping 5-bar labels": (5, None),
    "overlapping 20-bar labels": (20, None),
}


# ---------------------------------------------------------------------- the tests, vectorised


def ewc_t(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(t statistics, standard errors, dof) of the EWC test of each column's mean: the
    standard error ``orchestrator.stats.significance`` computes for one series, for all at once."""
    se, dof = ewc_standard_error(d, horizon)
    with np.errstate(divide="ignore", invalid="ignore"):
        return d.mean(axis=0) / se, se, dof


def ewc_better(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(says 'better' [R], smallest detectable mean [R]) of the one-sided 5% EWC test."""
    t, se, dof = ewc_t(d, horizon)
    return t > stats.t.ppf(1 - ALPHA, dof), detectable_factor(dof) * se


def newey_west_hln(d: np.ndarray, horizon: int) -> np.ndarray:
    """The replaced DM: Bartlett HAC with lag max(h - 1, NW rule, Andrews AR(1)), HLN,
    two-sided 5% against t(n - 1); True where it rejected."""
    n = d.shape[0]
    c = d - d.mean(axis=0)
    rho = np.clip((c[1:] * c[:-1]).sum(0) / (c[:-1] ** 2).sum(0), -0.97, 0.97)
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    andrews = np.floor(1.1447 * (alpha * n) ** (1 / 3))
    rule = math.floor(4 * (n / 100) ** (2 / 9))
    lag = np.minimum(np.maximum(np.maximum(horizon - 1, rule), andrews), n // 2)
    lrv = (c**2).mean(axis=0)
    for j in range(1, int(lag.max()) + 1):
        w = np.clip(1 - j / (lag + 1), 0, None)
        lrv = lrv + 2 * w * (c[j:] * c[:-j]).sum(axis=0) / n
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat = d.mean(axis=0) / np.sqrt(lrv / n) * hln
    return 2 * stats.t.sf(np.abs(stat), n - 1) < 0.05


def mcnemar(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The replaced accuracy test at horizon 1 (statsmodels' mcnemar as the verdict called
    it): exact binomial below 25 discordant pairs, else chi-square with continuity
    correction; two-sided 5%."""
    n01, n10 = ((a == 1) & (b == 0)).sum(0), ((a == 0) & (b == 1)).sum(0)
    total = n01 + n10
    exact = 2 * stats.binom.cdf(np.minimum(n01, n10), np.maximum(total, 1), 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = (np.abs(n01 - n10) - 1.0) ** 2 / total
    p = np.where(total < 25, np.minimum(exact, 1.0), stats.chi2.sf(chi2, 1))
    return (total > 0) & (p < 0.05)


def block_permutation(truth, pred, rng, block: int = 7, perms: int = 500) -> bool:
    """The replaced macro-F1 test: blocks of ``block`` predictions shuffled, two-sided 5%."""
    n = len(truth)
    n_blocks = math.ceil(n / block)
    padded = np.full(n_blocks * block, -1)
    padded[:n] = np.arange(n)
    order = np.argsort(rng.random((perms, n_blocks)), axis=1)
    perm = padded.reshape(n_blocks, block)[order].reshape(perms, -1)
    perm = perm[perm >= 0].reshape(perms, n)
    null, observed = macro_f1(truth, pred[perm]), macro_f1(truth, pred)[0]
    upper = (1 + np.sum(null >= observed - 1e-12)) / (perms + 1)
    lower = (1 + np.sum(null <= observed + 1e-12)) / (perms + 1)
    return min(1.0, 2 * min(upper, lower)) < 0.05


# ---------------------------------------------------------------------- the cells


def upper_bound(k: int, reps: int) -> float:
    """Exact one-sided 95% upper bound on a rate of k in reps (Clopper-Pearson)."""
    return 1.0 if k >= reps else float(stats.beta.ppf(0.95, k + 1, reps - k))


def dm_cells(n: int, reps: int, rng) -> list[tuple]:
    rows = []
    for name, (h, make) in ERRORS.items():
        e_base, e_model = make(rng, n, reps)
        d = e_base**2 - e_model**2  # the differential in units of the baseline's MSE (1)
        better, detectable = ewc_better(d, h)
        power = []
        for s in SKILLS:
            e_base, e_model = make(rng, n, reps)
            power.append(ewc_better(e_base**2 - (1 - s) * e_model**2, h)[0].mean())
        before = newey_west_hln(d, h).mean()
        rows.append(("Diebold-Mariano", name, h, better, before, power, np.median(detectable)))
    return rows


def cw_cells(n: int, reps: int, rng) -> list[tuple]:
    """Clark-West with a nested zero forecast: under the null the adjusted differential is
    2 y m (y the target, m the model's forecast, unrelated); power: y = beta m + noise."""
    rows = []
    for name, (h, make) in ERRORS.items():
        if "correlated" in name:
            continue  # the target and the forecast are independent under this null
        y, m = make(rng, n, reps)[0], make(rng, n, reps)[1]
        better, detectable = ewc_better(2 * y * m, h)
        power = []
        for s in SKILLS:  # the share of y's variance the forecast explains
            y, m = make(rng, n, reps)[0], make(rng, n, reps)[1]
            beta = math.sqrt(s / (1 - s))
            y = beta * m + y
            f = y**2 - ((y - beta * m) ** 2 - (beta * m) ** 2)
            power.append(ewc_better(f, h)[0].mean())
        rows.append(("Clark-West", name, h, better, None, power, np.median(detectable)))
    return rows


def accuracy_cells(n: int, reps: int, rng) -> list[tuple]:
    rows = []
    for name, (h, stay) in OUTCOMES.items():
        a, b = _flags(rng, n, reps, h, stay, 0.5), _flags(rng, n, reps, h, stay, 0.5)
        better, detectable = ewc_better(a - b, h)
        power = []
        for g in SKILLS:
            a = _flags(rng, n, reps, h, stay, 0.5 + g / 2)
            b = _flags(rng, n, reps, h, stay, 0.5 - g / 2)
            power.append(ewc_better(a - b, h)[0].mean())
        before = None
        if h == 1:
            a, b = _flags(rng, n, reps, h, stay, 0.5), _flags(rng, n, reps, h, stay, 0.5)
            before = mcnemar(a, b).mean()
        rows.append(("accuracy difference", name, h, better, before, power, np.median(detectable)))
    return rows


def secondary_cells(n: int, reps: int, rng) -> list[tuple]:
    """Pesaran-Timmermann (rotation null beyond one bar) and macro-F1 against rotations
    (beside the block permutation it replaced), one call per simulation."""
    rows = []
    for h in (1, 5, 20):
        said = [
            pesaran_timmermann(ma_errors(rng, n, h), ma_errors(rng, n, h), horizon=h).outcome
            == "better"
            for _ in range(reps)
        ]
        rows.append(
            (
                "Pesaran-Timmermann",
                f"directions of {h}-bar moves",
                h,
                np.array(said),
                None,
                None,
                None,
            )
        )
    for run in (1.5, 5, 15):
        said, before = [], []
        for k in range(reps):
            truth, pred = markov_labels(rng, n, run), markov_labels(rng, n, run)
            said.append(macro_f1_rotation(truth, pred).outcome == "better")
            if k < min(reps, 1000):
                before.append(block_permutation(truth, pred, rng))
        rows.append(
            (
                "macro-F1 rotation",
                f"labels in {run:g}-bar runs",
                1,
                np.array(said),
                np.mean(before),
                None,
                None,
            )
        )
    return rows


def _print(rows: list[tuple], n: int, reps: int) -> None:
    print(
        f"{'test':<20} {'scenario':<36} {'h':>2} {'says better':>11} {'upper 95%':>9} "
        f"{'before':>7}  power at {' / '.join(f'{s:g}' for s in SKILLS):<16} {'detectable':>10}"
    )
    for test, name, h, better, before, power, detectable in rows:
        k, count = int(np.sum(better)), len(better)
        bound = upper_bound(k, count)
        flag = "" if bound <= 0.065 else "  > 0.065"
        old = "" if before is None else f"{before:.3f}"
        pw = "" if power is None else " / ".join(f"{p:.2f}" for p in power)
        det = "" if detectable is None else f"{detectable:.3f}"
        print(
            f"{test:<20} {name:<36} {h:>2} {k / count:>11.4f} {bound:>9.4f} {old:>7}  "
            f"{pw:<25} {det:>10}{flag}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5000, help="simulations per cell (deciding tests)")
    p.add_argument(
        "--secondary-reps", type=int, default=2000, help="simulations per cell (secondary tests)"
    )
    p.add_argument("--n", type=int, nargs="+", default=[300], help="test-part sizes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    for n in args.n:
        print(
            f"n = {n}: one-sided 5% 'better' under no difference ({args.reps:,} simulations "
            f"per deciding cell, {args.secondary_reps:,} per secondary cell; 'before': the "
            "replaced test's rejection rate, two-sided 5%; power at skill / accuracy gain "
            f"{', '.join(f'{s:g}' for s in SKILLS)}; detectable: median smallest detectable "
            "effect at 80% power)"
        )
        rows = dm_cells(n, args.reps, rng) + cw_cells(n, args.reps, rng)
        rows += accuracy_cells(n, args.reps, rng)
        rows += secondary_cells(n, args.secondary_reps, rng)
        _print(rows, n, args.reps)
        deciding = [r for r in rows if r[0] in ("Diebold-Mariano", "accuracy difference")]
        worst = max(upper_bound(int(np.sum(r[3])), len(r[3])) for r in deciding)
        print(f"n = {n}: largest upper 95% bound over the deciding tests' cells: {worst:.4f}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
