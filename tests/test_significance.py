"""The tests behind every verdict: reference values, size under no difference, power.

Size: on simulated series with no true difference (independent, autocorrelated, volatility
clustering, overlapping horizons) the 5% test rejects about 5% of the time (seeded
simulations; the tolerance allows for the simulation's own noise and the small-sample
distortion measured in benchmarks/verdict_size.py). Power: a known difference is found.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.stats import chi2_contingency
from sklearn.metrics import f1_score
from statsmodels.stats.sandwich_covariance import cov_hac_simple

from orchestrator import significance
from orchestrator.significance import (
    clark_west,
    diebold_mariano,
    direction_edge,
    hac_lag,
    macro_f1,
    macro_f1_permutation,
    outcome,
    paired_accuracy,
    pesaran_timmermann,
    skill_interval,
)
from tests.simulated_errors import ar_errors, ma_errors, volatility_path


def _rate(test, reps: int) -> float:
    return sum(bool(test()) for _ in range(reps)) / reps


# ---------------------------------------------------------------------- Diebold-Mariano


def test_dm_matches_the_published_worked_examples():
    # The dieboldmariano package's README example: HLN-corrected DM at h=1 (lag 0).
    actual = np.array([10, 20, 30, 40, 50.0])
    f, g = np.array([11, 21, 29, 42, 53.0]), np.array([13, 26, 24, 40, 59.0])
    stat, p, _ = diebold_mariano((actual - g) ** 2, (actual - f) ** 2, horizon=1, lag=0)
    assert stat == pytest.approx(-2.2229922805746782, rel=1e-9)
    assert p / 2 == pytest.approx(0.04515565862099125, rel=1e-6)  # their one-sided p


def test_dm_matches_the_published_h3_example():
    # dieboldmariano's tests: h=3, absolute loss, one-sided: statistic 1.2109, p 0.877.
    p1 = [0.3675225224615024, 0.5450608127223211, 0.22044990720021074, 0.8688743471040006]
    p1 += [0.6072512228948467, 0.8582283746501538, 0.41662295816718187, 0.3812100211114714]
    p1 += [0.7185133356116706, 0.30827323290318875, 0.4297093624074402, 0.8615974488577858]
    p1 += [0.7240514514808826, 0.3450839595261038, 0.19675301374013598]
    p2 = [0.12794132529988733, 0.3679643204341153, 0.768715420996091, 0.09972248964114683]
    p2 += [0.27197653636654284, 0.28797629010039505, 0.9160213458582482, 0.6112628048698798]
    p2 += [0.5452873235576241, 0.06785907231746158, 0.6072666485541124, 0.6241575753989782]
    p2 += [0.39998026828867217, 0.19895665605941748, 0.8094941215215619]
    stat, p, _ = diebold_mariano(np.abs(p2), np.abs(p1), horizon=3, lag=2, kernel="uniform")
    assert stat == pytest.approx(1.2109, abs=1e-4)
    assert 1 - p / 2 == pytest.approx(0.877, abs=1e-3)


def test_dm_variance_is_newey_west_computed_by_hand():
    # Independent computation: Bartlett-weighted autocovariances, the HLN factor, t(n - 1).
    rng = np.random.default_rng(3)
    loss_model, loss_base = rng.gamma(2.0, size=200), rng.gamma(2.1, size=200)
    stat, p, lag = diebold_mariano(loss_model, loss_base, horizon=4, lag=6)
    d = loss_base - loss_model
    n, c = len(d), d - d.mean()
    lrv = np.dot(c, c) / n
    for k in range(1, 7):
        lrv += 2 * (1 - k / 7) * np.dot(c[k:], c[:-k]) / n
    expected = d.mean() / math.sqrt(lrv / n) * math.sqrt((n + 1 - 8 + 4 * 3 / n) / n)
    assert (lag, stat) == (6, pytest.approx(expected, rel=1e-9))
    assert p == pytest.approx(2 * stats.t.sf(abs(expected), n - 1), rel=1e-9)


def test_hac_lag_is_at_least_the_overlap_and_the_rule_and_grows_with_autocorrelation():
    rng = np.random.default_rng(0)
    white = rng.normal(size=500)
    rule = int(np.floor(4 * (500 / 100) ** (2 / 9)))  # statsmodels' default nlags
    assert hac_lag(white) == rule
    assert hac_lag(white, horizon=20) == 19
    assert hac_lag(ar_errors(rng, 500, 0.9)) > 2 * rule
    # the rule is statsmodels' automatic bandwidth (its HAC with nlags=None)
    fit = sm.OLS(white, np.ones((500, 1))).fit()
    auto = cov_hac_simple(fit, nlags=None, use_correction=False)[0, 0]
    assert math.sqrt(auto) == pytest.approx(significance.hac_mean(white, rule)[1], rel=1e-9)


@pytest.mark.parametrize(
    "scenario, horizon",
    [("independent", 1), ("autocorrelated AR(0.5)", 1), ("overlapping 5-bar", 5)],
)
def test_dm_rejects_about_5_percent_when_there_is_no_difference(scenario, horizon):
    rng = np.random.default_rng(11)
    n = 300

    def errors():
        if scenario == "independent":
            return rng.normal(size=n), rng.normal(size=n)
        if scenario.startswith("autocorrelated"):
            return ar_errors(rng, n, 0.5), ar_errors(rng, n, 0.5)
        return ma_errors(rng, n, horizon), ma_errors(rng, n, horizon)

    def rejects():
        e1, e2 = errors()
        return diebold_mariano(e1**2, e2**2, horizon=horizon)[1] < 0.05

    assert 0.02 <= _rate(rejects, 600) <= 0.09


def test_dm_with_volatility_clustering_does_not_over_reject():
    # Both forecasts' errors share the target's clustered volatility.
    rng = np.random.default_rng(12)

    def rejects():
        vol = volatility_path(rng, 300)
        e1, e2 = vol * rng.normal(size=300), vol * rng.normal(size=300)
        return diebold_mariano(e1**2, e2**2)[1] < 0.05

    assert _rate(rejects, 600) <= 0.09


def test_ignoring_the_overlap_would_over_reject():
    # The control that shows the size tests can fail: an iid variance (lag 0) on
    # overlapping 5-bar errors rejects far more than 5%.
    rng = np.random.default_rng(13)

    def rejects():
        e1, e2 = ma_errors(rng, 300, 5), ma_errors(rng, 300, 5)
        return diebold_mariano(e1**2, e2**2, horizon=5, lag=0)[1] < 0.05

    assert _rate(rejects, 400) > 0.2


def test_dm_finds_a_known_difference():
    # The model's errors have 70% of the baseline's variance (skill 0.3), 300 samples.
    rng = np.random.default_rng(14)

    def finds():
        base, model = rng.normal(size=300), math.sqrt(0.7) * rng.normal(size=300)
        stat, p, _ = diebold_mariano(model**2, base**2)
        return p < 0.05 and stat > 0 and outcome(p, stat) == "better"

    assert _rate(finds, 400) > 0.8


# ---------------------------------------------------------------------- Clark-West


def _nested(rng, n: int, beta: float):
    """y = beta x + e; the baseline forecasts 0 (nested), the model beta-hat x with beta-hat
    estimated on 100 earlier samples (so it adds estimation noise under the null)."""
    x_fit, x = rng.normal(size=100), rng.normal(size=n)
    y_fit = beta * x_fit + rng.normal(size=100)
    b = np.dot(x_fit, y_fit) / np.dot(x_fit, x_fit)
    y = beta * x + rng.normal(size=n)
    return y, b * x, np.zeros(n)


def test_clark_west_size_and_power_for_a_nested_baseline():
    rng = np.random.default_rng(21)
    size = _rate(lambda: clark_west(*_nested(rng, 300, 0.0))[1] < 0.05, 600)
    assert 0.01 <= size <= 0.09
    power = _rate(lambda: clark_west(*_nested(rng, 300, 0.3))[1] < 0.05, 300)
    assert power > 0.8


# ---------------------------------------------------------------------- direction


def test_pesaran_timmermann_agrees_with_the_chi_square_test_of_independence():
    # Independent computation: PT is asymptotically sqrt of Pearson's chi-square on the 2x2
    # table of (actual up, forecast up); at n = 4000 they agree to well under 1%.
    rng = np.random.default_rng(31)
    actual = rng.normal(size=4000)
    forecast = 0.1 * actual + rng.normal(size=4000) + 0.2
    stat, p, name = pesaran_timmermann(actual, forecast)
    up, called = actual > 0, forecast > 0
    table = [
        [np.sum(up & called), np.sum(up & ~called)],
        [np.sum(~up & called), np.sum(~up & ~called)],
    ]
    chi2 = chi2_contingency(table, correction=False)
    assert name == "Pesaran-Timmermann"
    assert stat == pytest.approx(math.sqrt(chi2.statistic), rel=5e-3)
    assert p == pytest.approx(chi2.pvalue, rel=5e-2)


def test_pesaran_timmermann_size_power_and_the_overlapping_version():
    rng = np.random.default_rng(32)
    n = 300
    iid = _rate(lambda: pesaran_timmermann(rng.normal(size=n), rng.normal(size=n))[1] < 0.05, 600)
    assert 0.02 <= iid <= 0.09
    # Overlapping 5-bar moves: the 1992 statistic over-rejects, the rotation null does not.
    classic = _rate(
        lambda: pesaran_timmermann(ma_errors(rng, n, 5), ma_errors(rng, n, 5))[1] < 0.05, 400
    )
    rotation = _rate(
        lambda: pesaran_timmermann(ma_errors(rng, n, 5), ma_errors(rng, n, 5), horizon=5)[1] < 0.05,
        600,
    )
    assert classic > 0.12 and 0.02 <= rotation <= 0.09

    def finds():
        actual = rng.normal(size=n)
        stat, p, _ = pesaran_timmermann(actual, actual + 1.5 * rng.normal(size=n))
        return p < 0.05 and stat > 0

    assert _rate(finds, 200) > 0.8


def test_a_forecast_that_never_changes_direction_is_not_tested():
    stat, p, _ = pesaran_timmermann(np.array([1.0, -1, 2, -2]), np.ones(4))
    assert math.isnan(stat) and p == 1.0 and outcome(p, stat) == "no_difference"


def test_direction_edge_is_hits_minus_chance():
    actual = np.array([1.0, 1, -1, -1, 1, -1, 1, 1])
    forecast = np.array([1.0, -1, -1, -1, 1, 1, 1, -1])
    edge, low, high = direction_edge(actual, forecast)
    hits, pu, pc = 5 / 8, 5 / 8, 4 / 8
    assert edge == pytest.approx(hits - (pu * pc + (1 - pu) * (1 - pc)))
    assert low <= edge <= high


# ---------------------------------------------------------------------- classification


def test_mcnemar_p_value_is_the_exact_binomial_test_on_discordant_pairs():
    model = np.array([1] * 9 + [0] * 3 + [1] * 20 + [0] * 8, dtype=float)
    base = np.array([0] * 9 + [1] * 3 + [1] * 20 + [0] * 8, dtype=float)
    stat, p, low, high, name = paired_accuracy(model, base, horizon=1)
    assert name == "McNemar"
    assert p == pytest.approx(stats.binomtest(3, 12, 0.5).pvalue, rel=1e-9)
    assert low <= model.mean() - base.mean() <= high


def _correct_runs(rng, n: int, h: int, p: float) -> np.ndarray:
    """0/1 'correct' flags with runs, as overlapping h-bar labels give."""
    return (ma_errors(rng, n, h) < stats.norm.ppf(p)).astype(float)


def test_paired_accuracy_rejects_about_5_percent_when_there_is_no_difference(monkeypatch):
    monkeypatch.setattr(significance, "N_RESAMPLES", 500)
    rng = np.random.default_rng(41)
    n = 300
    iid = _rate(
        lambda: (
            paired_accuracy(
                (rng.random(n) < 0.5).astype(float), (rng.random(n) < 0.5).astype(float)
            )[1]
            < 0.05
        ),
        500,
    )
    assert 0.01 <= iid <= 0.08
    runs = _rate(
        lambda: (
            paired_accuracy(
                _correct_runs(rng, n, 5, 0.5), _correct_runs(rng, n, 5, 0.5), horizon=5
            )[1]
            < 0.05
        ),
        300,
    )
    assert 0.01 <= runs <= 0.10
    power = _rate(
        lambda: (
            paired_accuracy(
                _correct_runs(rng, n, 5, 0.65), _correct_runs(rng, n, 5, 0.45), horizon=5
            )[1]
            < 0.05
        ),
        100,
    )
    assert power > 0.8


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(51)
    truth, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    pred[pred == 1] = 2  # a class the model never predicts still counts (it is in the truth)
    assert macro_f1(truth, pred)[0] == pytest.approx(f1_score(truth, pred, average="macro"))


def test_macro_f1_permutation_size_and_power(monkeypatch):
    monkeypatch.setattr(significance, "N_RESAMPLES", 400)
    rng = np.random.default_rng(52)
    n = 300

    def labels():  # classes of overlapping 5-bar moves: they come in runs
        return np.digitize(ma_errors(rng, n, 5), [-0.43, 0.43])

    size = _rate(lambda: macro_f1_permutation(labels(), labels(), horizon=5)[2] < 0.05, 300)
    assert 0.01 <= size <= 0.09

    def finds():
        truth = labels()
        pred = np.where(rng.random(n) < 0.5, truth, labels())
        observed, null, p, low, high = macro_f1_permutation(truth, pred, horizon=5)
        return p < 0.05 and observed > null and low > 0

    assert _rate(finds, 50) > 0.8


def test_permutation_null_is_seeded():
    rng = np.random.default_rng(53)
    truth, pred = rng.integers(0, 3, 120), rng.integers(0, 3, 120)
    assert macro_f1_permutation(truth, pred, seed=1) == macro_f1_permutation(truth, pred, seed=1)


# ---------------------------------------------------------------------- intervals


def test_skill_interval_covers_a_zero_skill_about_95_percent(monkeypatch):
    monkeypatch.setattr(significance, "N_RESAMPLES", 500)
    rng = np.random.default_rng(61)

    def covers():
        se_model, se_base = ar_errors(rng, 300, 0.3) ** 2, ar_errors(rng, 300, 0.3) ** 2
        low, high = skill_interval(se_model, se_base, seed=int(rng.integers(1 << 30)))
        return low <= 0.0 <= high

    assert 0.88 <= _rate(covers, 300) <= 0.99


def test_skill_interval_of_several_targets_averages_per_target_ratios():
    rng = np.random.default_rng(62)
    se_base = np.column_stack([rng.gamma(2, size=400), 1e6 * rng.gamma(2, size=400)])
    se_model = se_base * np.array([0.5, 1.0])  # skill 0.5 on one target, 0 on the other
    low, high = skill_interval(se_model, se_base)
    assert low == pytest.approx(0.25) and high == pytest.approx(0.25)
