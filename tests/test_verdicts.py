"""The verdict in words: 'beats the baselines' only when better than every one of them."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.verdicts import (
    Comparison,
    classification_comparisons,
    regression_comparisons,
    verdict,
)


def _c(baseline: str, outcome: str, skill: float, p: float, decides: bool = True) -> Comparison:
    return Comparison(
        baseline=baseline,
        test="Diebold-Mariano (HLN, HAC)",
        statistic=1.0,
        p_value=p,
        ci_low=skill - 0.1,
        ci_high=skill + 0.1,
        outcome=outcome,
        measure=f"skill vs {baseline}",
        estimate=skill,
        effect=f"skill {skill:+.4f}",
        decides=decides,
    )


def test_no_significant_difference_is_said_plainly_with_the_p_value():
    text = verdict(
        "rank 1 (trial abc)",
        [_c("persistence", "no_difference", 0.0001, 0.92), _c("ridge", "better", 0.05, 0.01)],
    )
    assert text == (
        "rank 1 (trial abc) does NOT beat the baselines on the test part: no significant "
        "difference from persistence (skill +0.0001, p = 0.92); better than ridge "
        "(skill +0.0500, p = 0.01)"
    )


def test_beating_the_baselines_needs_every_one_of_them():
    # Better than persistence is not enough when ridge is better than the model.
    both = [_c("persistence", "better", 0.2, 1e-6), _c("ridge", "better", 0.03, 0.02)]
    assert verdict("m", both) == (
        "m beats the baselines on the test part: better than persistence (skill +0.2000, "
        "p < 0.0001); ridge (skill +0.0300, p = 0.02)"
    )
    mixed = [_c("persistence", "better", 0.2, 1e-6), _c("ridge", "worse", -0.1, 0.003)]
    assert verdict("m", mixed).startswith(
        "m does NOT beat the baselines on the test part: significantly worse than ridge "
        "(skill -0.1000, p = 0.003); better than persistence"
    )


def test_secondary_tests_do_not_decide_the_verdict():
    comparisons = [
        _c("persistence", "better", 0.2, 1e-6),
        _c("chance (direction of close)", "no_difference", 0.0, 0.6, decides=False),
    ]
    assert verdict("m", comparisons).startswith("m beats the baselines")


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
    assert deciding["persistence"].estimate == pytest.approx(skill)
    ci = deciding["persistence"]
    assert ci.ci_low < ci.estimate < ci.ci_high
    secondary = [c.test for c in out if not c.decides]
    assert secondary == ["Clark-West (nested, one-sided, HAC)", "Pesaran-Timmermann"]
    assert verdict("m", out).startswith("m does NOT beat the baselines")


def test_several_targets_are_compared_in_units_of_each_baseline_error():
    # Volume's error is a million times larger than close's; the skill still averages the
    # two per-target ratios instead of being volume's alone.
    rng = np.random.default_rng(1)
    n = 300
    truth = np.column_stack([rng.normal(size=n), 1e3 * rng.normal(size=n)])
    naive = np.zeros((n, 2))
    model = np.column_stack([0.5 * truth[:, 0], np.zeros(n)])  # helps close only
    out = regression_comparisons(
        truth,
        model,
        {"persistence": naive},
        names=["close", "volume"],
        now=naive,
        naive="persistence",
        horizon=1,
    )
    skill_close = 1 - np.mean((model[:, 0] - truth[:, 0]) ** 2) / np.mean(truth[:, 0] ** 2)
    assert out[0].estimate == pytest.approx(skill_close / 2)


def test_classification_is_judged_on_accuracy_against_each_baseline():
    rng = np.random.default_rng(2)
    n = 400
    truth = rng.integers(0, 3, n)
    majority = np.tile([0.0, 1.0, 0.0], (n, 1))
    model = np.eye(3)[np.where(rng.random(n) < 0.6, truth, rng.integers(0, 3, n))]
    out = classification_comparisons(truth, model, {"majority class": majority}, horizon=1)
    deciding = [c for c in out if c.decides]
    assert [c.baseline for c in deciding] == ["majority class"]
    assert deciding[0].test == "McNemar" and deciding[0].outcome == "better"
    acc = np.mean(model.argmax(axis=1) == truth)
    assert deciding[0].effect == f"accuracy {acc:.3f} vs {np.mean(truth == 1):.3f}"
    assert out[-1].test == "block permutation" and not out[-1].decides


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
