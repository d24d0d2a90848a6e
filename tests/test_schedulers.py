"""The fold race on top of ASHA: decisions on the reports a trial really sends.

The results below have the fields ``orchestrator.trial`` reports after each fold (running
mean ``objective``, ``progress``, ``fold_objective``, ``folds_json``); the end-to-end sweeps
in test_sweep.py run the same scheduler inside real Tune trials.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from orchestrator.schedulers import FoldRaceASHA

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def race(mode: str = "min", margin: float = 0.05, n_folds: int = 3) -> FoldRaceASHA:
    key = "val_mse" if mode == "min" else "macro_f1"
    # One ASHA rung at the very end, so every decision before it is the race's.
    sched = FoldRaceASHA(
        fold_key=key,
        n_folds=n_folds,
        race_margin=margin,
        time_attr="progress",
        max_t=n_folds,
        grace_period=n_folds,
        reduction_factor=2,
    )
    sched.set_search_properties("objective", mode)
    return sched


def trial(sched: FoldRaceASHA, name: str):
    t = SimpleNamespace(trial_id=name)
    sched.on_trial_add(None, t)
    return t


def after_folds(sched: FoldRaceASHA, t, scores: list[float]) -> str:
    """Feed the fold-end reports of ``scores``; return the decision on the last one."""
    key = sched.fold_key
    action = CONTINUE
    for k in range(1, len(scores) + 1):
        done = [{"fold": i, key: s} for i, s in enumerate(scores[:k])]
        result = {
            "objective": sum(scores[:k]) / k,
            "progress": float(k),
            "fold_objective": scores[k - 1],
            "folds_json": json.dumps(done),
        }
        action = sched.on_trial_result(None, t, result)
        if action == STOP:
            return action
    return action


def test_a_trial_behind_the_best_on_the_same_folds_stops_at_that_fold():
    sched = race()
    after_folds(sched, trial(sched, "a"), [1.0, 2.0, 3.0])
    assert sched.incumbent == [1.0, 2.0, 3.0]
    # Fold 0 of the incumbent scored 1.0: 1.04 is within 5%, 1.06 is not.
    assert after_folds(sched, trial(sched, "close"), [1.04]) == CONTINUE
    assert after_folds(sched, trial(sched, "behind"), [1.06]) == STOP
    # Compared on the same folds: 1.0 then 2.2 (mean 1.6) vs the incumbent's 1.5 is 6.7% behind.
    assert after_folds(sched, trial(sched, "late"), [1.0, 2.2]) == STOP
    assert sched.raced_out == 2


def test_the_incumbent_changes_only_for_a_better_finished_trial():
    sched = race()
    after_folds(sched, trial(sched, "a"), [1.0, 1.0, 1.0])
    after_folds(sched, trial(sched, "worse"), [1.01, 1.02, 1.03])  # finishes, within margin
    assert sched.incumbent == [1.0, 1.0, 1.0]
    after_folds(sched, trial(sched, "better"), [0.9, 1.0, 0.95])
    assert sched.incumbent == [0.9, 1.0, 0.95]
    assert after_folds(sched, trial(sched, "now_behind"), [0.96]) == STOP  # 0.96 > 0.9 * 1.05


def test_higher_is_better_for_macro_f1():
    sched = race(mode="max")
    after_folds(sched, trial(sched, "a"), [0.6, 0.6, 0.6])
    assert after_folds(sched, trial(sched, "behind"), [0.56]) == STOP  # < 0.6 * 0.95
    assert after_folds(sched, trial(sched, "close"), [0.58]) == CONTINUE


def test_no_race_before_a_trial_finishes_or_with_margin_zero():
    sched = race()
    assert after_folds(sched, trial(sched, "first"), [5.0]) == CONTINUE  # nobody finished yet
    off = race(margin=0.0)
    after_folds(off, trial(off, "a"), [1.0, 1.0, 1.0])
    assert after_folds(off, trial(off, "far_behind"), [9.0, 9.0]) == CONTINUE


def test_mid_fold_reports_are_left_to_the_asha_rungs():
    sched = race()
    after_folds(sched, trial(sched, "a"), [1.0, 1.0, 1.0])
    t = trial(sched, "b")
    mid = {"objective": 9.0, "progress": 0.5, "folds_json": "[]", "epoch": 3}
    assert sched.on_trial_result(None, t, mid) == CONTINUE


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_fold_scores_never_become_the_incumbent(bad):
    sched = race()
    after_folds(sched, trial(sched, "a"), [1.0, 1.0, 1.0])
    after_folds(sched, trial(sched, "broken"), [0.5, 0.5, bad])
    assert sched.incumbent == [1.0, 1.0, 1.0]
