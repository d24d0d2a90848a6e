"""The tests behind every verdict: reference values, size under no difference, power, and the
inputs that must never give a verdict.

Size: on simulated series with no true difference (independent, autocorrelated, volatility
clustering, overlapping horizons, runs of who-is-right) the one-sided 5% test says "better"
about 5% of the time (seeded simulations; the tolerance allows for the simulation's own
noise; benchmarks/verdict_size.py measures every cell with 5,000 simulations). Power: a known
difference is found.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.stats import chi2_contingency
from sklearn.metrics import f1_score

from orchestrator.stats.significance import (
    ALPHA,
    accuracy_difference,
    clark_west,
    detectable_factor,
    diebold_mariano,
    ewc_dof,
    ewc_long_run_variance,
    macro_f1,
    macro_f1_rotation,
    mean_test,
    pesaran_timmermann,
)
from tests.simulated_errors import (
    ar_errors,
    ma_errors,
    markov_flags,
    markov_labels,
    volatility_path,
)


def _rate(test, reps: int) -> float:
    return sum(bool(test()) for _ in range(reps)) / reps


# ---------------------------------------------------------------------- the EWC variance


def test_ewc_dof_is_the_llsw_rule_capped_by_the_horizon():
    # floor(0.4 n^(2/3)) (Lazarus-Lewis-Stock-Watson 2018), at most n / (2 h), at least 1.
    assert ewc_dof(300) == math.floor(0.4 * 300 ** (2 / 3)) == 17
    assert ewc_dof(571) == 27
    assert ewc_dof(300, horizon=5) == 17 and ewc_dof(300, horizon=20) == 7
    assert ewc_dof(2) == 1


def test_ewc_variance_is_the_papers_formula_computed_by_hand():
    # Omega = (1/B) sum_j Lambda_j^2, Lambda_j = sqrt(2/T) sum_t cos(pi j (t - 1/2) / T) z_t
    # (LLSW 2018, eq. 4), computed here with plain loops.
    rng = np.random.default_rng(1)
    z = rng.gamma(2.0, size=40)
    t_len, b = len(z), 5
    lambdas = []
    for j in range(1, b + 1):
        total = sum(
            math.cos(math.pi * j * (t - 0.5) / t_len) * (z[t - 1] - z.mean())
            for t in range(1, t_len + 1)
        )
        lambdas.append(math.sqrt(2 / t_len) * total)
    by_hand = sum(x * x for x in lambdas) / b
    assert float(ewc_long_run_variance(z, b)) == pytest.approx(by_hand, rel=1e-12)
    # several series at once give each series' own
    both = ewc_long_run_variance(np.column_stack([z, 2 * z]), b)
    assert both == pytest.approx([by_hand, 4 * by_hand], rel=1e-12)


def test_ewc_agrees_with_statsmodels_newey_west_in_the_limit():
    # Both estimate the same long-run variance, sigma^2 / (1 - rho)^2 for an AR(1): on a long
    # series they agree with it, and with each other, to a few percent.
    rng = np.random.default_rng(2)
    n, rho = 200_000, 0.5
    x = ar_errors(rng, n, rho)
    ewc = float(ewc_long_run_variance(x, ewc_dof(n)))
    fit = sm.OLS(x, np.ones((n, 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": 60, "use_correction": False}
    )
    newey_west = float(fit.bse[0]) ** 2 * n
    truth = 1 / (1 - rho) ** 2
    assert ewc == pytest.approx(truth, rel=0.08)
    assert newey_west == pytest.approx(truth, rel=0.08)
    assert ewc == pytest.approx(newey_west, rel=0.1)


def test_the_detectable_factor_gives_80_percent_power():
    # The noncentrality at which a one-sided t(17) test at 5% rejects 80% of the time.
    delta = detectable_factor(17)
    crit = stats.t.ppf(1 - ALPHA, 17)
    assert stats.nct.sf(crit, 17, delta) == pytest.approx(0.8, abs=1e-9)
    assert detectable_factor(None) == pytest.approx(stats.norm.ppf(0.95) + stats.norm.ppf(0.8))
    assert delta > detectable_factor(None)  # an estimated variance costs power


# ---------------------------------------------------------------------- Diebold-Mariano


def test_dm_is_the_ewc_t_test_of_the_loss_differential_by_hand():
    rng = np.random.default_rng(3)
    loss_model, loss_base = rng.gamma(2.0, size=200), rng.gamma(2.1, size=200)
    r = diebold_mariano(loss_model, loss_base, horizon=4)
    d = loss_base - loss_model
    b = math.floor(0.4 * 200 ** (2 / 3))  # 13; the cap 200 / 8 = 25 does not bind
    hln = math.sqrt((200 + 1 - 8 + 4 * 3 / 200) / 200)  # Harvey-Leybourne-Newbold, h = 4
    se = math.sqrt(float(ewc_long_run_variance(d, b)) / 200) / hln
    assert (r.dof, r.estimate, r.se) == (b, pytest.approx(d.mean()), pytest.approx(se))
    assert r.statistic == pytest.approx(d.mean() / se)
    assert r.p_better == pytest.approx(stats.t.sf(d.mean() / se, b))
    assert r.p_better + r.p_worse == pytest.approx(1.0)
    crit = stats.t.ppf(0.95, b)
    assert (r.ci_low, r.ci_high) == (
        pytest.approx(d.mean() - crit * se),
        pytest.approx(d.mean() + crit * se),
    )


def test_interval_and_test_never_disagree():
    # 'better' exactly when the 90% interval lies above 0, 'worse' exactly when below.
    rng = np.random.default_rng(4)
    for k in range(300):
        d = 0.15 * rng.normal() + ar_errors(rng, 120, 0.5)
        r = mean_test(d, test="t")
        assert (r.outcome == "better") == (r.ci_low > 0), k
        assert (r.outcome == "worse") == (r.ci_high < 0), k


def _dm_says_better(errors, horizon: int) -> bool:
    e_model, e_base = errors()
    return diebold_mariano(e_model**2, e_base**2, horizon=horizon).outcome == "better"


@pytest.mark.parametrize(
    "scenario, horizon",
    [
        ("independent", 1),
        ("autocorrelated AR(0.8)", 1),
        ("overlapping 5-bar", 5),
        ("overlapping 20-bar", 20),
    ],
)
def test_dm_says_better_about_5_percent_when_there_is_no_difference(scenario, horizon):
    rng = np.random.default_rng(11)
    n = 300

    def errors():
        if scenario == "independent":
            return rng.normal(size=n), rng.normal(size=n)
        if scenario.startswith("autocorrelated"):
            return ar_errors(rng, n, 0.8), ar_errors(rng, n, 0.8)
        return ma_errors(rng, n, horizon), ma_errors(rng, n, horizon)

    assert 0.02 <= _rate(lambda: _dm_says_better(errors, horizon), 800) <= 0.08


def test_dm_with_volatility_clustering_does_not_over_reject():
    # Both forecasts' errors share the target's clustered volatility.
    rng = np.random.default_rng(12)

    def errors():
        vol = volatility_path(rng, 300)
        return vol * rng.normal(size=300), vol * rng.normal(size=300)

    assert _rate(lambda: _dm_says_better(errors, 1), 600) <= 0.08


def test_too_little_smoothing_would_over_reject():
    # The control that shows the size tests can fail: the same t-test with 100 cosines (close
    # to an iid variance) on overlapping 20-bar errors says 'better' far more than 5%.
    rng = np.random.default_rng(13)

    def rejects():
        e1, e2 = ma_errors(rng, 300, 20), ma_errors(rng, 300, 20)
        d = e2**2 - e1**2
        t = d.mean() / math.sqrt(float(ewc_long_run_variance(d, 100)) / 300)
        return t > stats.t.ppf(0.95, 100)

    assert _rate(rejects, 400) > 0.15


def test_dm_finds_a_known_difference_and_its_detectable_skill_is_right():
    # The model's errors have 70% of the baseline's variance (skill 0.3), 300 samples. The
    # skill the test reports it could detect with 80% power is detected about 80% of the time.
    rng = np.random.default_rng(14)

    def found(skill: float) -> bool:
        base, model = rng.normal(size=300), math.sqrt(1 - skill) * rng.normal(size=300)
        return diebold_mariano(model**2, base**2).outcome == "better"

    assert _rate(lambda: found(0.3), 400) > 0.8
    reported = np.median(
        [
            diebold_mariano(rng.normal(size=300) ** 2, rng.normal(size=300) ** 2).detectable
            for _ in range(50)
        ]
    )
    assert 0.25 < reported < 0.40  # ~2.6 standard errors of a mean differential of sd 2
    assert 0.7 <= _rate(lambda: found(float(reported)), 500) <= 0.9


# ---------------------------------------------------------------------- no test possible


def test_a_constant_differential_is_no_test_not_a_win():
    # Today's bug: a zero variance read as an infinite statistic, p = 0, 'better'.
    r = diebold_mariano(np.ones(100), np.full(100, 2.0))
    assert r.outcome == "no_test" and "zero variance" in r.reason
    assert math.isnan(r.p_better) and r.estimate == 1.0
    same = accuracy_difference(np.ones(50), np.ones(50))
    assert same.outcome == "no_test" and "exactly +0 on every sample" in same.reason


def test_a_non_finite_value_is_no_test():
    # One NaN or inf in a forecast's loss never gives a p-value.
    rng = np.random.default_rng(5)
    loss = rng.gamma(2.0, size=100)
    for bad in (math.nan, math.inf):
        spoilt = loss.copy()
        spoilt[37] = bad
        r = diebold_mariano(spoilt, rng.gamma(2.0, size=100))
        assert r.outcome == "no_test" and "first at test sample 37" in r.reason


def test_a_test_part_too_short_says_so_instead_of_a_p_value():
    rng = np.random.default_rng(6)
    r = diebold_mariano(rng.normal(size=2) ** 2, rng.normal(size=2) ** 2)
    assert r.outcome == "no_test" and "holds 2 samples; a test needs at least 30" in r.reason
    long_horizon = diebold_mariano(rng.normal(size=150), rng.normal(size=150), horizon=20)
    assert long_horizon.outcome == "no_test" and "at least 200" in long_horizon.reason
    assert diebold_mariano(rng.normal(size=30), rng.normal(size=30)).possible


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
    size = _rate(lambda: clark_west(*_nested(rng, 300, 0.0)).outcome == "better", 600)
    assert 0.01 <= size <= 0.08
    power = _rate(lambda: clark_west(*_nested(rng, 300, 0.3)).outcome == "better", 300)
    assert power > 0.8


# ---------------------------------------------------------------------- direction


def test_pesaran_timmermann_agrees_with_the_chi_square_test_of_independence():
    # Independent computation: PT is asymptotically sqrt of Pearson's chi-square on the 2x2
    # table of (actual up, forecast up); at n = 4000 they agree to well under 1%.
    rng = np.random.default_rng(31)
    actual = rng.normal(size=4000)
    forecast = 0.1 * actual + rng.normal(size=4000) + 0.2
    r = pesaran_timmermann(actual, forecast)
    up, called = actual > 0, forecast > 0
    table = [
        [np.sum(up & called), np.sum(up & ~called)],
        [np.sum(~up & called), np.sum(~up & ~called)],
    ]
    chi2 = chi2_contingency(table, correction=False)
    assert r.test == "Pesaran-Timmermann"
    assert r.statistic == pytest.approx(math.sqrt(chi2.statistic), rel=5e-3)
    assert r.p_better == pytest.approx(chi2.pvalue / 2, rel=5e-2)  # one-sided
    hits, pu, pc = np.mean(up == called), up.mean(), called.mean()
    assert r.estimate == pytest.approx(hits - (pu * pc + (1 - pu) * (1 - pc)))
    assert r.ci_low > 0 and r.outcome == "better"


def test_pesaran_timmermann_size_power_and_the_overlapping_version():
    rng = np.random.default_rng(32)
    n = 300

    def better(actual, forecast, h):
        return pesaran_timmermann(actual, forecast, horizon=h).outcome == "better"

    iid = _rate(lambda: better(rng.normal(size=n), rng.normal(size=n), 1), 600)
    assert 0.02 <= iid <= 0.08
    # Overlapping 5-bar moves: the 1992 statistic over-rejects, the EWC version does not.
    classic = _rate(lambda: better(ma_errors(rng, n, 5), ma_errors(rng, n, 5), 1), 400)
    ewc = _rate(lambda: better(ma_errors(rng, n, 5), ma_errors(rng, n, 5), 5), 600)
    assert classic > 0.07 and 0.02 <= ewc <= 0.08

    def finds():
        actual = rng.normal(size=n)
        return better(actual, actual + 1.5 * rng.normal(size=n), 1)

    assert _rate(finds, 200) > 0.8


def test_a_forecast_that_never_changes_direction_is_not_tested():
    r = pesaran_timmermann(np.tile([1.0, -1, 2, -2], 10), np.ones(40))
    assert r.outcome == "no_test" and "never changes direction" in r.reason


# ---------------------------------------------------------------------- classification


def test_accuracy_difference_is_the_ewc_test_of_the_0_1_loss_differential():
    rng = np.random.default_rng(40)
    model, base = (rng.random(200) < 0.55).astype(float), (rng.random(200) < 0.5).astype(float)
    r = accuracy_difference(model, base)
    same = mean_test(model - base, test="x")
    assert r.estimate == pytest.approx(model.mean() - base.mean())
    assert (r.statistic, r.p_better, r.dof) == (same.statistic, same.p_better, same.dof)


@pytest.mark.parametrize("stay", [0.5, 0.85])
def test_accuracy_difference_keeps_its_size_when_who_is_right_comes_in_runs(stay):
    # McNemar's test said 'different' 39% of the time at stay 0.85 (it assumes independent
    # pairs); the EWC test of the 0/1 differential stays near 5%.
    rng = np.random.default_rng(41)
    n = 300

    def better():
        a, b = markov_flags(rng, n, stay), markov_flags(rng, n, stay)
        return accuracy_difference(a, b).outcome == "better"

    assert 0.02 <= _rate(better, 800) <= 0.08


def test_accuracy_difference_finds_a_real_gain():
    rng = np.random.default_rng(42)

    def better():
        a, b = markov_flags(rng, 300, 0.7, p=0.65), markov_flags(rng, 300, 0.7, p=0.45)
        return accuracy_difference(a, b).outcome == "better"

    assert _rate(better, 200) > 0.8


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(51)
    truth, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    pred[pred == 1] = 2  # a class the model never predicts still counts (it is in the truth)
    assert macro_f1(truth, pred)[0] == pytest.approx(f1_score(truth, pred, average="macro"))


def test_macro_f1_rotation_keeps_its_size_with_15_bar_runs_and_finds_a_signal():
    # Labels and predictions in 15-bar runs: the block permutation with 7-bar blocks rejected
    # 23% of the time (benchmarks/verdict_size.py); the rotation null keeps every run.
    rng = np.random.default_rng(52)
    n = 300

    def better(truth, pred):
        return macro_f1_rotation(truth, pred).outcome == "better"

    size = _rate(lambda: better(markov_labels(rng, n, 15), markov_labels(rng, n, 15)), 500)
    assert size <= 0.08

    def finds():
        truth = markov_labels(rng, n, 15)
        pred = np.where(rng.random(n) < 0.5, truth, markov_labels(rng, n, 15))
        return better(truth, pred)

    assert _rate(finds, 100) > 0.8
