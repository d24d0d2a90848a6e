"""The statistical tests behind a verdict: is a forecast better than a baseline?

What is tested. The test part is one draw from the process that made the data; each test
asks whether the fitted model, used as it is, has a lower **expected** loss than the
baseline on that process (Giacomini-White's unconditional question: the forecasting methods
with their estimated parameters held fixed). The estimates (skill, accuracy gain) describe
the test rows; the p-values, intervals and detectable effects are about the process.

One level, one variance, one sided. Every deciding test asks "is the model better?" one-sided
at ``ALPHA`` = 5%; "worse" is the mirror one-sided test at the same level (it never counts
towards a verdict). The interval of each estimate is the two-sided ``1 - 2 ALPHA`` = 90%
interval built from the very standard error and critical value the test uses, so "better"
holds exactly when the interval lies above 0 and "worse" exactly when it lies below.

Dependence. Test samples overlap when the horizon is longer than one bar, errors of market
data stay autocorrelated (volatility clusters), and who-is-right comes in runs. Every mean is
therefore tested with a fixed-smoothing long-run variance: the equal-weighted cosine (EWC)
estimator of Lazarus, Lewis, Stock and Watson (2018, JBES, "HAR inference: recommendations
for practice"; Coroneo and Iacone 2020 for Diebold-Mariano) with ``nu`` cosine terms and
Student-t(``nu``) critical values, ``nu = min(floor(0.4 n^(2/3)), floor(n / (2 h)))``: their
rule, capped so each cosine spans at least two overlapping h-bar windows (without the cap,
overlapping 20-bar errors at n = 300 reject 6.4% instead of 5%; benchmarks/verdict_size.py),
and the standard error divided by Harvey-Leybourne-Newbold's small-sample factor for h-bar
overlap (``hln_factor``; sqrt((n - 1) / n) at one bar).

* ``diebold_mariano``: the loss differential ``loss_base - loss_model``, EWC t-test.
* ``clark_west``: the adjusted differential for a baseline nested in the model, EWC t-test.
* ``accuracy_difference``: the 0/1 loss differential of two classifiers (the same t-test;
  it replaces McNemar, which assumes independent pairs).
* ``pesaran_timmermann``: does the forecast's direction go with the actual one? The 1992
  statistic for one-bar horizons; for overlapping ones the same excess over chance with
  the EWC variance of its influence function.
* ``macro_f1_rotation``: macro-F1 against a null made by rotating the model's predictions
  against the truth (every circular shift of at least the horizon), which keeps all of both
  series' runs and breaks only their alignment: no block length has to cover the dependence.

No test is possible (and none is reported) when the series holds a non-finite value, when it
is exactly constant (zero variance: nothing to compare the mean with), or when the test part
is too short: fewer than ``MIN_SAMPLES`` samples or fewer than ``MIN_PER_HORIZON`` horizons.
Every test here is deterministic: no resampling, no seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

__all__ = [
    "ALPHA",
    "LEVEL",
    "MIN_PER_HORIZON",
    "MIN_SAMPLES",
    "POWER",
    "TestResult",
    "accuracy_difference",
    "clark_west",
    "detectable_factor",
    "diebold_mariano",
    "ewc_dof",
    "ewc_long_run_variance",
    "ewc_standard_error",
    "hln_factor",
    "macro_f1",
    "macro_f1_rotation",
    "mean_test",
    "pesaran_timmermann",
    "t_result",
    "too_short",
]

ALPHA = 0.05  # one-sided level of every 'better' (and of every 'worse')
LEVEL = 1 - 2 * ALPHA  # the intervals: 90% two-sided = the two one-sided 5% tests
POWER = 0.8  # the power at which the smallest detectable effect is quoted
MIN_SAMPLES = 30
MIN_PER_HORIZON = 10  # at least this many horizons in the test part


@dataclass(frozen=True)
class TestResult:
    """A one-sided test of "the model is better" (``p_better``) and its mirror (``p_worse``).

    ``estimate`` is the effect (a mean differential, an excess over chance), ``ci_low`` /
    ``ci_high`` its ``LEVEL`` interval, ``detectable`` the smallest effect the test finds with
    ``POWER`` at this n and this dependence. ``reason`` non-empty: no test was possible, and
    why; the numbers are then NaN (the estimate may still be known).
    """

    test: str
    estimate: float
    statistic: float = math.nan
    p_better: float = math.nan
    p_worse: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    detectable: float = math.nan
    se: float = math.nan
    dof: int | None = None
    n: int = 0
    reason: str = ""

    @property
    def possible(self) -> bool:
        return not self.reason

    @property
    def outcome(self) -> str:
        """``better`` / ``worse`` (each one-sided at ALPHA), ``no_difference`` or ``no_test``."""
        if not self.possible:
            return "no_test"
        if self.p_better < ALPHA:
            return "better"
        if self.p_worse < ALPHA:
            return "worse"
        return "no_difference"


# ---------------------------------------------------------------------- checks


def too_short(n: int, horizon: int = 1) -> str:
    """Why a test part of ``n`` samples of ``horizon``-bar forecasts is too short, or ''."""
    need = max(MIN_SAMPLES, MIN_PER_HORIZON * int(horizon))
    if n >= need:
        return ""
    return (
        f"the test part holds {n} samples; a test needs at least {need} "
        f"(max({MIN_SAMPLES}, {MIN_PER_HORIZON} x the {int(horizon)}-bar horizon))"
    )


def _not_finite(x: np.ndarray, what: str) -> str:
    bad = ~np.isfinite(x)
    if not bad.any():
        return ""
    first = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
    return f"{int(bad.sum())} non-finite value(s) in {what}, the first at test sample {first}"


def _constant(d: np.ndarray, what: str) -> str:
    if np.ptp(d) > 0:
        return ""
    return (
        f"{what} is exactly {float(d[0]):+.6g} on every sample: zero variance, so its mean "
        "cannot be compared with its noise"
    )


# ---------------------------------------------------------------------- EWC


def ewc_dof(n: int, horizon: int = 1) -> int:
    """Cosine terms (= Student-t degrees of freedom) of the EWC variance:
    ``min(floor(0.4 n^(2/3)), floor(n / (2 h)))``, at least 1."""
    rule = math.floor(0.4 * n ** (2.0 / 3.0))
    return int(max(1, min(rule, n // (2 * max(int(horizon), 1)))))


@lru_cache(maxsize=32)
def _cosines(n: int, dof: int) -> np.ndarray:
    """``[dof, n]``: sqrt(2/n) cos(pi j (t - 1/2) / n), j = 1..dof, t = 1..n."""
    t = (np.arange(n) + 0.5) / n
    out = math.sqrt(2.0 / n) * np.cos(np.pi * np.outer(np.arange(1, dof + 1), t))
    out.setflags(write=False)
    return out


def ewc_long_run_variance(z: np.ndarray, dof: int) -> np.ndarray:
    """The EWC long-run variance of ``z`` (``[n]``, or ``[n, R]`` for R series at once):
    the mean of the squared projections of the demeaned series on the first ``dof``
    cosines. ``n * Var(mean)`` is estimated by it, with ``dof`` degrees of freedom."""
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    projections = _cosines(len(z), int(dof)) @ centred  # [dof] or [dof, R]
    return np.mean(projections**2, axis=0)


@lru_cache(maxsize=256)
def detectable_factor(dof: int | None, alpha: float = ALPHA, power: float = POWER) -> float:
    """The effect, in standard errors, that a one-sided t(``dof``) test at ``alpha`` finds
    with probability ``power``: the noncentrality delta with P(t'(dof, delta) > t_crit) =
    power (normal when ``dof`` is None: z_alpha + z_power)."""
    if dof is None:
        return float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(power))
    crit = stats.t.ppf(1 - alpha, dof)
    return float(optimize.brentq(lambda delta: stats.nct.sf(crit, dof, delta) - power, 0.0, 50.0))


def hln_factor(n: int, horizon: int = 1) -> float:
    """Harvey, Leybourne and Newbold's (1997) small-sample factor for a mean of overlapping
    h-step terms, ``sqrt((n + 1 - 2h + h (h - 1) / n) / n)`` (sqrt((n - 1)/n) at h = 1)."""
    h = max(int(horizon), 1)
    return math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 1.0) / n)


def ewc_standard_error(z: np.ndarray, horizon: int = 1) -> tuple[np.ndarray, int]:
    """(standard error of the mean of ``z`` (``[n]`` or ``[n, R]``), degrees of freedom):
    the EWC long-run variance over n, divided by the HLN factor squared. The HLN factor
    holds the size of 0/1 differentials of 20-bar labels at n = 300 (5.7% without it,
    4.8% with it; it changes little else: benchmarks/verdict_size.py)."""
    n = len(z)
    dof = ewc_dof(n, horizon)
    return np.sqrt(ewc_long_run_variance(z, dof) / n) / hln_factor(n, horizon), dof


def mean_test(
    d: np.ndarray, *, horizon: int = 1, test: str, what: str = "the loss differential"
) -> TestResult:
    """One-sided EWC t-tests of E[d] > 0 (``p_better``) and E[d] < 0 (``p_worse``), with the
    90% interval from the same standard error and critical value."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    reason = _not_finite(d, what) or too_short(n, horizon)
    if reason:
        return TestResult(test=test, estimate=math.nan, n=n, reason=reason)
    mean = float(d.mean())
    reason = _constant(d, what)
    se, dof = ewc_standard_error(d, horizon)
    if not reason and not se > 0:  # numerically flat: the same verdict as constant
        reason = f"{what} has no variation the EWC variance can see"
    if reason:
        return TestResult(test=test, estimate=mean, n=n, dof=dof, reason=reason)
    return t_result(mean, float(se), dof, test=test, n=n)


def t_result(estimate: float, se: float, dof: int, *, test: str, n: int) -> TestResult:
    """The one-sided t(``dof``) tests of ``estimate`` with standard error ``se``, its 90%
    interval from the same ``se`` and critical value, and its detectable effect."""
    statistic = estimate / se
    crit = float(stats.t.ppf(1 - ALPHA, dof))
    return TestResult(
        test=test,
        estimate=estimate,
        statistic=statistic,
        p_better=float(stats.t.sf(statistic, dof)),
        p_worse=float(stats.t.cdf(statistic, dof)),
        ci_low=estimate - crit * se,
        ci_high=estimate + crit * se,
        detectable=detectable_factor(dof) * se,
        se=se,
        dof=dof,
        n=n,
    )


# ---------------------------------------------------------------------- the deciding tests


def _2d(a: np.ndarray) -> np.ndarray:
    """``[n]`` -> ``[n, 1]``; ``[n, T]`` unchanged (float64)."""
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def diebold_mariano(
    loss_model: np.ndarray, loss_base: np.ndarray, *, horizon: int = 1
) -> TestResult:
    """Diebold-Mariano with the EWC variance: ``d = loss_base - loss_model`` (> 0 favours the
    model); ``estimate`` is its mean."""
    d = np.asarray(loss_base, dtype=np.float64) - np.asarray(loss_model, dtype=np.float64)
    return mean_test(d, horizon=horizon, test="Diebold-Mariano (EWC)")


def clark_west(
    y: np.ndarray,
    pred_model: np.ndarray,
    pred_base: np.ndarray,
    *,
    horizon: int = 1,
    weights: np.ndarray | None = None,
) -> TestResult:
    """Clark and West (2007) for a baseline nested in the model, EWC variance.

    ``[n]`` or ``[n, T]`` arrays; with several targets the adjusted differentials are averaged
    with ``weights`` per target (default 1). H1: the model's forecasts are more accurate than
    the nested baseline's once the noise its extra parameters add is accounted for.
    """
    y, m, b = (_2d(a) for a in (y, pred_model, pred_base))
    f = (y - b) ** 2 - ((y - m) ** 2 - (b - m) ** 2)  # [n, T]
    w = np.ones(f.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    return mean_test(
        (f * w).mean(axis=1),
        horizon=horizon,
        test="Clark-West (nested, EWC)",
        what="the adjusted loss differential",
    )


def accuracy_difference(
    correct_model: np.ndarray, correct_base: np.ndarray, *, horizon: int = 1
) -> TestResult:
    """Accuracy of the model minus the baseline's on the same samples (``correct_*``: 0/1
    per sample): the EWC t-test of the 0/1 loss differential, valid when who-is-right comes
    in runs (McNemar's test assumes independent pairs)."""
    d = np.asarray(correct_model, dtype=np.float64) - np.asarray(correct_base, dtype=np.float64)
    return mean_test(
        d,
        horizon=horizon,
        test="accuracy difference (EWC)",
        what="the 0/1 loss differential",
    )


# ---------------------------------------------------------------------- nulls by rotation


def _rotations(n: int, horizon: int) -> np.ndarray:
    """``[S, n]`` index arrays: every circular shift of at least ``horizon`` (and of at most
    ``n - horizon``): the series keeps its runs, and loses its alignment."""
    shifts = np.arange(max(int(horizon), 1), n - max(int(horizon), 1) + 1)
    return (np.arange(n)[None, :] + shifts[:, None]) % n


def _against_null(observed: float, null: np.ndarray, *, test: str, n: int) -> TestResult:
    """A test of ``observed`` against a null sample: one-sided p-values with the usual +1,
    the estimate centred on the null's mean, and the interval and detectable effect of the
    shift model (the effect moves the statistic, not its spread), which agree with the
    p-values: 'better' exactly when the interval's low end is above 0."""
    count = len(null)
    centre = float(null.mean())
    # A hair of tolerance: equal values (common with discrete statistics) count as extreme.
    p_better = float((1 + np.sum(null >= observed - 1e-12)) / (count + 1))
    p_worse = float((1 + np.sum(null <= observed + 1e-12)) / (count + 1))
    q_low, q_high, q_power = np.quantile(null, [ALPHA, 1 - ALPHA, 1 - POWER])
    return TestResult(
        test=test,
        estimate=observed - centre,
        statistic=_ratio(observed - centre, float(null.std())),
        p_better=p_better,
        p_worse=p_worse,
        ci_low=float(observed - q_high),
        ci_high=float(observed - q_low),
        detectable=float(q_high - q_power),
        n=n,
    )


def _ratio(mean: float, sd: float) -> float:
    return mean / sd if sd > 0 else math.nan


def pesaran_timmermann(actual: np.ndarray, forecast: np.ndarray, *, horizon: int = 1) -> TestResult:
    """Does the forecast's direction go with the actual one? ``estimate`` = ``P - P*``, the
    share of directions called right minus the share expected by chance.

    ``horizon == 1``: Pesaran and Timmermann (1992), asymptotically normal; the interval is
    the estimate +- z times its standard error. Longer horizons overlap, so both direction
    series come in runs and the 1992 variance is far too small (it rejects 20-50% of the
    time at 5-20 bars with no dependence at all); there ``P - P*`` is tested as the mean of
    its influence function, ``1{up = called} - P - (2 p_called - 1)(up - p_up) - (2 p_up - 1)
    (called - p_called)``, with the EWC variance, as every other mean here.
    """
    up = np.asarray(actual, dtype=np.float64) > 0
    called = np.asarray(forecast, dtype=np.float64) > 0
    n = len(up)
    name = "Pesaran-Timmermann" if horizon <= 1 else "Pesaran-Timmermann (EWC)"
    reason = too_short(n, horizon)
    if not reason and (up.all() or not up.any() or called.all() or not called.any()):
        reason = "the forecast or the truth never changes direction"
    if reason:
        return TestResult(test=name, estimate=math.nan, n=n, reason=reason)
    py, px = up.mean(), called.mean()
    hit = (up == called).astype(np.float64)
    expected = py * px + (1 - py) * (1 - px)
    edge = float(hit.mean() - expected)
    if horizon > 1:
        psi = hit - hit.mean() - (2 * px - 1) * (up - py) - (2 * py - 1) * (called - px)
        se, dof = ewc_standard_error(psi, horizon)
        if not se > 0:
            return TestResult(test=name, estimate=edge, n=n, reason="the directions never vary")
        return t_result(edge, float(se), dof, test=name, n=n)
    v_hit = expected * (1 - expected) / n
    v_expected = (
        (2 * py - 1) ** 2 * px * (1 - px) / n
        + (2 * px - 1) ** 2 * py * (1 - py) / n
        + 4 * py * px * (1 - py) * (1 - px) / n**2
    )
    se = math.sqrt(max(v_hit - v_expected, 0.0))
    if se == 0:
        return TestResult(test=name, estimate=edge, n=n, reason="the directions never vary")
    z, crit = edge / se, float(stats.norm.ppf(1 - ALPHA))
    return TestResult(
        test=name,
        estimate=edge,
        statistic=z,
        p_better=float(stats.norm.sf(z)),
        p_worse=float(stats.norm.cdf(z)),
        ci_low=edge - crit * se,
        ci_high=edge + crit * se,
        detectable=detectable_factor(None) * se,
        se=se,
        n=n,
    )


def macro_f1(truth: np.ndarray, pred: np.ndarray, k: int = 3) -> np.ndarray:
    """Macro-F1 of each row of ``[B, n]`` label arrays (or of one ``[n]`` pair), over the
    classes present in the truth or the predictions (as sklearn's ``average='macro'``)."""
    truth, pred = np.atleast_2d(truth), np.atleast_2d(pred)
    truth = np.broadcast_to(truth, pred.shape)
    rows = pred.shape[0]
    codes = (truth * k + pred + (np.arange(rows) * k * k)[:, None]).ravel()
    cm = np.bincount(codes, minlength=rows * k * k).reshape(rows, k, k).astype(np.float64)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    denom = cm.sum(axis=2) + cm.sum(axis=1)  # support + predicted count, per class
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    present = denom > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def macro_f1_rotation(truth: np.ndarray, pred: np.ndarray, *, horizon: int = 1) -> TestResult:
    """Macro-F1 against chance: ``estimate`` = observed macro-F1 minus its mean over the
    null, every rotation of the model's own predictions against the truth by at least
    ``horizon`` samples. A rotation keeps how often the model predicts each class and all
    of its runs (and the truth's), so the null carries the whole dependence of both series;
    a block permutation keeps it only within its blocks (size 23% with 15-bar runs and
    7-bar blocks; benchmarks/verdict_size.py)."""
    truth = np.asarray(truth, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    n = len(truth)
    name = "macro-F1 rotation"
    reason = too_short(n, horizon)
    if reason:
        return TestResult(test=name, estimate=math.nan, n=n, reason=reason)
    null = macro_f1(truth, pred[_rotations(n, horizon)])
    return _against_null(float(macro_f1(truth, pred)[0]), null, test=name, n=n)
