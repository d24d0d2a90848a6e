"""The verdict in words: 'beats the baselines' only when better than every one of them, with
the test named, the one-sided p-values, the intersection-union p-value and the smallest
effect each test could have detected."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.stats.verdicts import (
    Comparison,
    Verdict,
    classification_comparisons,
    regression_comparisons,
    verdict,
)


def _c(
    baseline: str,
    outcome: str,
    skill: float,
    p: float,
    decides: bool = True,
    *,
    reason: str = "",
) -> Comparison:
    return Comparison(
        baseline=baseline,
        test="Diebold-Mariano (EWC)",
        statistic=1.0,
        p_value=p,
        ci_low=skill - 0.1,
        ci_high=skill + 0.1,
        outcome=outcome,
        measure=f"skill vs {baseline}",
        estimate=skill,
        effect=f"skill {skill:+.4f}",
        decides=decides,
        p_worse=1 - p,
        detectable=0.11,
        detectable_of="skill",
        reason=reason,
    )


def test_no_significant_difference_is_said_plainly_with_the_test_and_what_it_could_detect():
    said = verdict(
        "rank 1 (trial abc)",
        [_c("persistence", "no_difference", 0.0001, 0.46), _c("ridge", "better", 0.05, 0.01)],
    )
    assert isinstance(said, Verdict) and not said.beats
    assert said.text == (
        "rank 1 (trial abc) does NOT beat the baselines on the test part (intersection-union "
        "p = 0.46, each test one-sided at 5%): no significant difference from persistence "
        "(Diebold-Mariano (EWC): skill +0.0001, p = 0.46; the test could detect skill >= "
        "0.11); better than ridge (Diebold-Mariano (EWC): skill +0.0500, p = 0.01; the test "
        "could detect skill >= 0.11)"
    )


def test_beating_the_baselines_needs_every_one_of_them_and_iu_p_is_the_largest_p():
    both = [_c("persistence", "better", 0.2, 1e-6), _c("ridge", "better", 0.03, 0.02)]
    said = verdict("m", both)
    assert said.beats and said.iu_p == 0.02
    assert said.text.startswith(
        "m beats the baselines on the test part (intersection-union p = 0.02, each test "
        "one-sided at 5%): better than persistence (Diebold-Mariano (EWC): skill +0.2000, "
        "p < 0.0001"
    )
    mixed = [_c("persistence", "better", 0.2, 1e-6), _c("ridge", "worse", -0.1, 0.997)]
    said = verdict("m", mixed)
    assert not said.beats and said.iu_p == 0.997
    assert said.text.startswith(
        "m does NOT beat the baselines on the test part (intersection-union p = 1, each test "
        "one-sided at 5%): significantly worse than ridge (Diebold-Mariano (EWC): skill "
        "-0.1000, p = 1 (worse: p = 0.003)"
    )


def test_a_comparison_without_a_possible_test_is_never_a_win():
    said = verdict(
        "m",
        [
            _c("persistence", "better", 0.2, 1e-6),
            _c("ridge", "no_test", 0.0, math.nan, reason="the loss differential is exactly 0"),
        ],
    )
    assert not said.beats and said.iu_p == 1.0
    assert "no test possible against ridge (Diebold-Mariano (EWC): the loss differential" in str(
        said
    )


def test_secondary_tests_do_not_decide_the_verdict():
    comparisons = [
        _c("persistence", "better", 0.2, 1e-6),
        _c("chance (direction of close)", "no_difference", 0.0, 0.6, decides=False),
    ]
    assert verdict("m", comparisons).beats


def test_a_verdict_other_than_the_chosen_models_says_it_is_descriptive():
    said = verdict("rank 2", [_c("persistence", "better", 0.2, 1e-6)], descriptive=True)
    assert said.descriptive and said.text.startswith(
        "Descriptive only, not the chosen model: rank 2 beats"
    )


def test_regression_comparisons_one_deciding_test_per_baseline():
    rng = np.random.default_rng(0)
    n = 400
    now = 100 + np.cumsum(rng.normal(size=n))[:, None]
    truth = now + rng.normal(size=(n, 1))
    model = now + 0.6 * (truth - now) + 0.5 * rng.normal(size=(n, 1))  # a real signal
    ridge = now + 0.9 * (truth - now)  # better still
    out = regression_comparisons(
        truth,
        model,
        {"persistence": now, "ridge": ridge},
        names=["close"],
        now=now,
        naive="persistence",
        horizon=1,
    )
    deciding = {c.baseline: c for c in out if c.decides}
    assert list(deciding) == ["persistence", "ridge"]
    assert deciding["persistence"].outcome == "better"
    assert deciding["ridge"].outcome == "worse"
    skill = 1 - np.mean((model - truth) ** 2) / np.mean((now - truth) ** 2)
    ci = deciding["persistence"]
    # The DM differential in units of the baseline's test MSE has the skill as its mean, so
    # the estimate, the interval and the test are all in skill units.
    assert ci.estimate == pytest.approx(skill)
    assert ci.ci_low > 0 and ci.ci_low < ci.estimate < ci.ci_high
    assert 0 < ci.detectable < skill
    secondary = [c.test for c in out if not c.decides]
    assert secondary == ["Clark-West (nested, EWC)", "Pesaran-Timmermann"]
    assert not verdict("m", out).beats


def test_several_targets_are_compared_in_units_of_each_baseline_error():
    # Volume's error is a million times larger than close's; the skill still averages the
    # two per-target ratios instead of being volume's alone.
    rng = np.random.default_rng(1)
    n = 300
    truth = np.column_stack([rng.normal(size=n), 1e3 * rng.normal(size=n)])
    naive = np.zeros((n, 2))
    model = np.column_stack([0.5 * truth[:, 0], rng.normal(size=n)])  # helps close only
    out = regression_comparisons(
        truth,
        model,
        {"persistence": naive},
        names=["close", "volume"],
        now=naive,
        naive="persistence",
        horizon=1,
    )
    skill = 1 - np.mean(np.mean((model - truth) ** 2, axis=0) / np.mean(truth**2, axis=0))
    assert out[0].estimate == pytest.approx(skill)


def test_classification_is_judged_on_accuracy_against_each_baseline():
    rng = np.random.default_rng(2)
    n = 400
    truth = rng.integers(0, 3, n)
    majority = np.tile([0.0, 1.0, 0.0], (n, 1))
    model = np.eye(3)[np.where(rng.random(n) < 0.6, truth, rng.integers(0, 3, n))]
    out = classification_comparisons(truth, model, {"majority class": majority}, horizon=1)
    deciding = [c for c in out if c.decides]
    assert [c.baseline for c in deciding] == ["majority class"]
    assert deciding[0].test == "accuracy difference (EWC)" and deciding[0].outcome == "better"
    acc = np.mean(model.argmax(axis=1) == truth)
    assert deciding[0].effect == f"accuracy {acc:.3f} vs {np.mean(truth == 1):.3f}"
    assert deciding[0].detectable_of == "accuracy gain"
    assert out[-1].test == "macro-F1 rotation" and not out[-1].decides


def test_direction_is_tested_on_the_traded_target():
    # With several targets the direction test reads close (what the trading view trades).
    rng = np.random.default_rng(3)
    now = 5 + np.abs(rng.normal(size=(200, 3)))
    truth = now + rng.normal(size=(200, 3))
    out = regression_comparisons(
        truth,
        now + 0.5 * (truth - now),
        {"persistence": now},
        names=["open", "volume", "close"],
        now=now,
        naive="persistence",
        horizon=1,
    )
    assert out[-1].baseline == "chance (direction of close)" and out[-1].outcome == "better"


def test_a_constant_model_against_a_constant_baseline_is_no_test_with_the_reason():
    # Today's bug: an exactly constant loss differential read as p = 0 and 'beats'.
    n = 100
    truth = np.tile([[1.0], [-1.0]], (n // 2, 1))
    out = regression_comparisons(
        truth,
        truth + 0.5,  # squared error 0.25 everywhere
        {"training mean": truth + 1.0},  # squared error 1 everywhere
        names=["log_return"],
        now=np.zeros((n, 1)),
        naive="training mean",
        horizon=1,
    )
    dm = out[0]
    assert dm.outcome == "no_test" and "zero variance" in dm.reason
    said = verdict("m", out)
    assert not said.beats and "no test possible against training mean" in said.text
