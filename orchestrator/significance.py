"""The statistical tests behind a verdict: is a forecast better than a baseline on the test part?

Every test here compares two fixed sets of forecasts on the same test samples (the
Giacomini-White reading: "did this fitted model forecast these rows better?", not "is the
model class better in the population?"). Test samples overlap when the horizon is longer
than one bar, and squared errors of market data stay autocorrelated even when they do not
(volatility clusters), so every variance is HAC (Newey-West) or every resample is a block.

* ``diebold_mariano``: squared-error loss differential, Newey-West (Bartlett) HAC variance
  with a lag of ``max(horizon - 1, automatic bandwidth)``, where the automatic bandwidth is
  the larger of Newey-West's rule ``floor(4 (n / 100) ** (2 / 9))`` (statsmodels' default) and
  Andrews' (1991) AR(1) plug-in (which grows with the series' own autocorrelation),
  Harvey-Leybourne-Newbold small-sample correction, Student t with n - 1 degrees of freedom.
  Two-sided.
* ``clark_west``: the adjusted loss differential for a baseline nested in the model (a
  forecast of "no change" or of a constant), one-sided, HAC, normal.
* ``pesaran_timmermann``: does the forecast's direction go with the actual direction? The
  1992 statistic for one-bar horizons; for overlapping horizons the same hit-rate excess
  against a null made by rotating the forecast directions as one block (every shift of at
  least the horizon), which keeps the runs that overlapping moves have.
* ``paired_accuracy``: classification accuracy against a baseline's on the same samples:
  McNemar's test when samples do not overlap (horizon 1), else a paired moving-block
  bootstrap; the interval is always the block bootstrap's.
* ``macro_f1_permutation``: macro-F1 against a null made by block-permuting the model's own
  predictions (keeps how often it predicts each class and its runs, breaks the link to the
  truth).
* ``skill_interval``: moving-block bootstrap 95% interval of ``1 - MSE_model / MSE_base``.

Resampling is seeded: the same inputs give the same intervals and p-values.
"""

from __future__ import annotations

import math

import numpy as np
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

__all__ = [
    "ALPHA",
    "N_RESAMPLES",
    "block_indices",
    "block_length",
    "clark_west",
    "diebold_mariano",
    "direction_edge",
    "hac_lag",
    "hac_mean",
    "macro_f1",
    "macro_f1_permutation",
    "outcome",
    "paired_accuracy",
    "pesaran_timmermann",
    "skill_interval",
]

ALPHA = 0.05  # every outcome is decided at 5%, two-sided unless a test says otherwise
N_RESAMPLES = 2000  # bootstrap draws and permutations


def outcome(p_value: float, direction: float) -> str:
    """``better`` / ``worse`` when significant at ALPHA (by the sign of ``direction``: > 0
    favours the model), else ``no_difference``."""
    if not math.isfinite(p_value) or p_value >= ALPHA or direction == 0:
        return "no_difference"
    return "better" if direction > 0 else "worse"


# ---------------------------------------------------------------------- HAC


def hac_lag(d: np.ndarray, horizon: int = 1) -> int:
    """Newey-West truncation lag for the series ``d``: the overlap of ``horizon``-bar samples
    (h - 1) or the automatic bandwidth, whichever is larger.

    The automatic bandwidth is the larger of the rule floor(4 (n/100)^(2/9)) and Andrews'
    (1991) AR(1) plug-in for the Bartlett kernel, 1.1447 (alpha n)^(1/3) with
    alpha = 4 rho^2 / ((1 - rho)^2 (1 + rho)^2), rho the lag-1 autocorrelation of ``d``
    (capped at +-0.97): a strongly autocorrelated series gets a longer lag.
    """
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    rule = int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0)))
    c = d - d.mean()
    denom = float(np.dot(c[:-1], c[:-1]))
    rho = float(np.dot(c[1:], c[:-1])) / denom if denom > 0 else 0.0
    rho = min(max(rho, -0.97), 0.97)
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    andrews = int(math.floor(1.1447 * (alpha * n) ** (1.0 / 3.0)))
    return int(min(max(int(horizon) - 1, rule, andrews), max(n // 2, 0)))


def hac_mean(d: np.ndarray, lag: int, *, kernel: str = "bartlett") -> tuple[float, float]:
    """(mean, HAC standard error of the mean) of a series: OLS on a constant with statsmodels'
    HAC covariance, without its small-sample factor (the DM statistic's textbook form)."""
    d = np.asarray(d, dtype=np.float64)
    if np.ptp(d) == 0:  # a constant series: its mean is known exactly
        return float(d[0]) if len(d) else 0.0, 0.0
    fit = sm.OLS(d, np.ones((len(d), 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": int(lag), "kernel": kernel, "use_correction": False}
    )
    return float(fit.params[0]), float(fit.bse[0])


def _2d(a: np.ndarray) -> np.ndarray:
    """``[n]`` -> ``[n, 1]``; ``[n, T]`` unchanged (float64)."""
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _ratio(mean: float, se: float) -> float:
    if se > 0:
        return mean / se
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


def diebold_mariano(
    loss_model: np.ndarray,
    loss_base: np.ndarray,
    *,
    horizon: int = 1,
    lag: int | None = None,
    kernel: str = "bartlett",
) -> tuple[float, float, int]:
    """(statistic, two-sided p-value, lag) of the DM test with the HLN correction.

    The loss differential is ``loss_base - loss_model``: a positive statistic favours the
    model. ``lag`` defaults to ``hac_lag(d, horizon)``; ``kernel='uniform'`` with
    ``lag=horizon-1`` is the original DM / HLN (R's ``forecast::dm.test``) form.
    """
    d = np.asarray(loss_base, dtype=np.float64) - np.asarray(loss_model, dtype=np.float64)
    n, h = len(d), int(horizon)
    lag = hac_lag(d, h) if lag is None else int(lag)
    mean, se = hac_mean(d, lag, kernel=kernel)
    hln = math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 0.0) / n)
    statistic = _ratio(mean, se) * hln
    p = 1.0 if statistic == 0 else float(2 * stats.t.sf(abs(statistic), df=n - 1))
    return float(statistic), p, lag


def clark_west(
    y: np.ndarray,
    pred_model: np.ndarray,
    pred_base: np.ndarray,
    *,
    horizon: int = 1,
    weights: np.ndarray | None = None,
) -> tuple[float, float, float, float]:
    """(statistic, one-sided p-value, mean, HAC se) of Clark and West (2007) for a baseline
    nested in the model.

    ``[n]`` or ``[n, T]`` arrays; with several targets the adjusted differentials are averaged
    with ``weights`` per target (default 1). H1: the model's forecasts are more accurate than
    the nested baseline's once the noise its extra parameters add is accounted for.
    """
    y, m, b = (_2d(a) for a in (y, pred_model, pred_base))
    f = (y - b) ** 2 - ((y - m) ** 2 - (b - m) ** 2)  # [n, T]
    w = np.ones(f.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    f = (f * w).mean(axis=1)
    mean, se = hac_mean(f, hac_lag(f, horizon))
    statistic = _ratio(mean, se)
    return float(statistic), float(stats.norm.sf(statistic)), mean, se


# ---------------------------------------------------------------------- direction


def _edge(up: np.ndarray, called: np.ndarray) -> np.ndarray:
    """Share of directions called right minus the share expected by chance (``P - P*``)."""
    pu, pc = up.mean(axis=-1), called.mean(axis=-1)
    return (up == called).mean(axis=-1) - (pu * pc + (1 - pu) * (1 - pc))


def pesaran_timmermann(
    actual: np.ndarray, forecast: np.ndarray, *, horizon: int = 1
) -> tuple[float, float, str]:
    """(statistic, two-sided p-value, test name): are the signs of ``forecast`` and ``actual``
    dependent? A positive statistic: the forecast gets the direction right more often than
    chance. NaN statistic and p = 1 when either never changes sign (nothing to test).

    ``horizon == 1``: Pesaran and Timmermann (1992), asymptotically normal. Longer horizons
    overlap, so both direction series come in runs and the 1992 variance is far too small
    (it rejects 20-50% of the time at 5-20 bars with no dependence at all; see
    benchmarks/verdict_size.py). There the null distribution of ``P - P*`` comes from
    rotating the forecast directions as one block against the actual ones by every shift of
    at least ``horizon`` bars (circularly): that keeps both series' runs and breaks only
    their alignment. The statistic is then ``P - P*`` in units of the rotations' root mean
    square.
    """
    up = np.asarray(actual, dtype=np.float64) > 0
    called = np.asarray(forecast, dtype=np.float64) > 0
    n = len(up)
    if n < 3 or up.all() or not up.any() or called.all() or not called.any():
        return math.nan, 1.0, "Pesaran-Timmermann"
    if horizon <= 1:
        py, px = up.mean(), called.mean()
        hit = float(np.mean(up == called))
        expected = py * px + (1 - py) * (1 - px)
        v_hit = expected * (1 - expected) / n
        v_expected = (
            (2 * py - 1) ** 2 * px * (1 - px) / n
            + (2 * px - 1) ** 2 * py * (1 - py) / n
            + 4 * py * px * (1 - py) * (1 - px) / n**2
        )
        statistic = _ratio(hit - expected, math.sqrt(max(v_hit - v_expected, 0.0)))
        return float(statistic), float(2 * stats.norm.sf(abs(statistic))), "Pesaran-Timmermann"
    shifts = np.arange(horizon, n - horizon + 1)
    if len(shifts) < 19:  # too short to rotate: no test
        return math.nan, 1.0, "Pesaran-Timmermann (rotation null)"
    null = _edge(up[None, :], called[(np.arange(n)[None, :] + shifts[:, None]) % n])
    observed = float(_edge(up, called))
    # Under independence P - P* is centred at 0: compare sizes with the rotations' (centring
    # on their own mean instead adds its noise: 10% instead of 7.6% rejections at 20 bars).
    extreme = np.sum(np.abs(null) >= abs(observed) - 1e-12)
    statistic = _ratio(observed, float(np.sqrt(np.mean(null**2))))
    p = float((1 + extreme) / (len(shifts) + 1))
    return float(statistic), p, "Pesaran-Timmermann (rotation null, overlapping horizon)"


# ---------------------------------------------------------------------- resampling


def block_length(n: int, horizon: int = 1) -> int:
    """Moving-block length: n^(1/3) (the usual rate for variances), at least the horizon."""
    return int(min(max(int(horizon), math.ceil(n ** (1.0 / 3.0))), max(n, 1)))


def block_indices(n: int, block: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_draws, n]`` moving-block bootstrap indices: overlapping blocks of ``block``
    consecutive samples, starts uniform, concatenated and cut to n."""
    k = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(n_draws, k))
    return (starts[:, :, None] + np.arange(block)).reshape(n_draws, -1)[:, :n]


def skill_interval(
    se_model: np.ndarray,
    se_base: np.ndarray,
    *,
    horizon: int = 1,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``skill = 1 - mean_T(sum se_model / sum se_base)`` over moving-
    block resamples of the test samples. ``[n]`` or ``[n, T]`` squared errors."""
    sm_, sb = _2d(se_model), _2d(se_base)
    n = len(sm_)
    idx = block_indices(n, block_length(n, horizon), N_RESAMPLES, np.random.default_rng(seed))
    num, den = sm_[idx].sum(axis=1), sb[idx].sum(axis=1)  # [B, T]
    with np.errstate(divide="ignore", invalid="ignore"):
        skills = 1.0 - np.nanmean(np.where(den > 0, num / den, np.nan), axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(skills, [tail, 100 - tail])
    return float(low), float(high)


def paired_accuracy(
    correct_model: np.ndarray,
    correct_base: np.ndarray,
    *,
    horizon: int = 1,
    seed: int = 0,
) -> tuple[float, float, float, float, str]:
    """(statistic, two-sided p-value, ci_low, ci_high, test name) for accuracy_model -
    accuracy_base on the same samples (``correct_*``: 0/1 per sample).

    Horizon 1: McNemar's test on the discordant pairs (exact binomial below 25 of them); the
    statistic is McNemar's. Longer horizons: the p-value of the paired moving-block
    bootstrap (the resampled mean difference, centred, as extreme as the observed one); the
    statistic is the difference over its bootstrap standard error. The interval of the
    difference is always the bootstrap's.
    """
    a = np.asarray(correct_model, dtype=np.float64)
    b = np.asarray(correct_base, dtype=np.float64)
    d = a - b
    n = len(d)
    idx = block_indices(n, block_length(n, horizon), N_RESAMPLES, np.random.default_rng(seed))
    boot = d[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    diff = float(d.mean())
    if horizon <= 1:
        only_model, only_base = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
        if only_model + only_base == 0:
            return 0.0, 1.0, float(low), float(high), "McNemar"
        both, neither = int(np.sum((a == 1) & (b == 1))), int(np.sum((a == 0) & (b == 0)))
        table = [[both, only_model], [only_base, neither]]
        res = mcnemar(table, exact=only_model + only_base < 25, correction=True)
        return float(res.statistic), float(res.pvalue), float(low), float(high), "McNemar"
    extreme = np.sum(np.abs(boot - diff) >= abs(diff) - 1e-12)
    p = 1.0 if diff == 0 else float((1 + extreme) / (N_RESAMPLES + 1))
    sd = float(boot.std(ddof=1))
    return _ratio(diff, sd), p, float(low), float(high), "paired block bootstrap"


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


def macro_f1_permutation(
    truth: np.ndarray, pred: np.ndarray, *, horizon: int = 1, seed: int = 0
) -> tuple[float, float, float, float, float]:
    """(observed macro-F1, null mean, two-sided p-value, ci_low, ci_high).

    The null: the model's own predicted labels cut into consecutive blocks and the blocks
    shuffled (seeded), which keeps how often and in which runs it predicts each class but
    breaks any link to the truth. The interval is a moving-block bootstrap interval of the
    observed macro-F1 minus the null mean (the model's excess over chance).
    """
    truth = np.asarray(truth, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    n = len(truth)
    rng = np.random.default_rng(seed)
    block = block_length(n, horizon)
    n_blocks = math.ceil(n / block)
    padded = np.full(n_blocks * block, -1, dtype=np.int64)
    padded[:n] = np.arange(n)
    blocks = padded.reshape(n_blocks, block)
    order = np.argsort(rng.random((N_RESAMPLES, n_blocks)), axis=1)
    perm = blocks[order].reshape(N_RESAMPLES, -1)
    perm = perm[perm >= 0].reshape(N_RESAMPLES, n)  # every row keeps each index once
    null = macro_f1(truth, pred[perm])
    observed = float(macro_f1(truth, pred)[0])
    upper = (1 + np.sum(null >= observed - 1e-12)) / (N_RESAMPLES + 1)
    lower = (1 + np.sum(null <= observed + 1e-12)) / (N_RESAMPLES + 1)
    p = float(min(1.0, 2 * min(upper, lower)))
    idx = block_indices(n, block, N_RESAMPLES, rng)
    boot = macro_f1(truth[idx], pred[idx]) - null.mean()
    low, high = np.percentile(boot, [2.5, 97.5])
    return observed, float(null.mean()), p, float(low), float(high)


def direction_edge(
    actual: np.ndarray, forecast: np.ndarray, *, horizon: int = 1, seed: int = 0
) -> tuple[float, float, float]:
    """(edge, ci_low, ci_high): the share of samples whose direction the forecast calls right
    minus the share expected by chance from how often each is up (Pesaran-Timmermann's
    ``P - P*``), with a moving-block bootstrap 95% interval."""
    up = np.asarray(actual, dtype=np.float64) > 0
    called = np.asarray(forecast, dtype=np.float64) > 0
    n = len(up)
    idx = block_indices(n, block_length(n, horizon), N_RESAMPLES, np.random.default_rng(seed))
    low, high = np.percentile(_edge(up[idx], called[idx]), [2.5, 97.5])
    return float(_edge(up, called)), float(low), float(high)
