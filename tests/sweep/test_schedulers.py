"""The fold race on top of ASHA: decisions on the reports a trial really sends.

The results below have the fields ``orchestrator.sweep.trial`` reports after each fold (running
mean ``objective``, ``progress``, ``fold_objective``, ``folds_json``); the end-to-end sweeps
in test_sweep.py run the same scheduler inside real Tune trials.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from orchestrator.sweep.schedulers import FoldRaceASHA

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def race(mode: str = "min", margin: float = 0.05, n_folds: int = 3) -> FoldRaceASHA:
    # One ASHA rung at the very end, so every decision before it is the race's.
    sched = FoldRaceASHA(
        task="regression" if mode == "min" else "classification",
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


def fold(i: int, score: float, task: str) -> dict:
    """A fold record as orchestrator.sweep.trial writes it (naive MSE 1: pooled = plain mean)."""
    if task == "classification":
        return {"fold": i, "macro_f1": score}
    return {"fold": i, "mse_ratio": score, "mse_by_target": [score], "naive_mse_by_target": [1.0]}


def scores_of(folds: list[dict]) -> list[float]:
    return [f.get("mse_ratio", f.get("macro_f1")) for f in folds]


def after_folds(sched: FoldRaceASHA, t, scores: list[float]) -> str:
    """Feed the fold-end reports of ``scores``; return the decision on the last one."""
    action = CONTINUE
    for k in range(1, len(scores) + 1):
        done = [fold(i, s, sched.task) for i, s in enumerate(scores[:k])]
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
    assert scores_of(sched.incumbent) == [1.0, 2.0, 3.0]
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
    assert scores_of(sched.incumbent) == [1.0, 1.0, 1.0]
    after_folds(sched, trial(sched, "better"), [0.9, 1.0, 0.95])
    assert scores_of(sched.incumbent) == [0.9, 1.0, 0.95]
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
    assert scores_of(sched.incumbent) == [1.0, 1.0, 1.0]


def asha(n_folds: int = 5, margin: float = 0.0) -> FoldRaceASHA:
    """The sweep's default rungs: a quarter and half way into fold 0, then folds 1, 2, 4."""
    sched = FoldRaceASHA(
        task="regression",
        n_folds=n_folds,
        race_margin=margin,
        time_attr="progress",
        max_t=n_folds,
        grace_period=0.25,
        reduction_factor=2,
    )
    sched.set_search_properties("objective", "min")
    return sched


def test_rungs_are_the_ones_ray_asha_uses():
    # Our copy of ASHA's rung formula matches Ray's own bracket.
    sched = asha()
    assert sched.milestones == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert sorted(m for m, _ in sched._brackets[0]._rungs) == sched.milestones


def test_after_resume_a_mid_fold_estimate_never_lands_at_a_fold_end_rung():
    # Seen before the fix: after --resume (a fresh scheduler) the winner's first report was a
    # mid-fold estimate at progress 4.03, recorded at the fold-end rung 4; a trial better
    # than the winner on each of its 4 folds was then stopped against that estimate.
    sched = asha()
    winner, rival = trial(sched, "winner"), trial(sched, "rival")
    winner_folds = [fold(i, 1.0, "regression") for i in range(4)]
    mid = {
        "objective": 0.5,  # 4 folds + an optimistic partial estimate of fold 5
        "progress": 4.03,
        "folds_json": json.dumps(winner_folds),
        "epoch": 1,
    }
    assert sched.on_trial_result(None, winner, mid) == CONTINUE
    # The rival beats the winner's 4-fold objective (1.0) on the same 4 folds: 0.9.
    rival_folds = [fold(i, 0.9, "regression") for i in range(4)]
    end = {
        "objective": 0.9,
        "progress": 4.0,
        "fold_objective": 0.9,
        "folds_json": json.dumps(rival_folds),
    }
    assert sched.on_trial_result(None, rival, end) == CONTINUE
    # and the rung holds exact 4-fold objectives only
    rung4 = dict(sched._brackets[0]._rungs)[4.0]
    assert rung4 == {"rival": -0.9}


def test_fold_end_rung_records_exact_fold_objectives_and_stops_a_worse_trial():
    # The same rung still prunes: a trial worse than the recorded 4-fold objective stops.
    sched = asha()
    good, bad = trial(sched, "good"), trial(sched, "bad")
    for t, score in ((good, 0.8), (bad, 1.2)):
        folds = [fold(i, score, "regression") for i in range(4)]
        result = {
            "objective": score,
            "progress": 4.0,
            "fold_objective": score,
            "folds_json": json.dumps(folds),
        }
        action = sched.on_trial_result(None, t, result)
    assert action == STOP


def test_every_decision_is_recorded_with_what_it_compared_and_mirrors_ray_rungs():
    # Rule: `decisions` says what each rung and race decision compared and what it did, and
    # the mirrored rung tables equal Ray's own (so a margin to a tie can be trusted).
    import random

    rng = random.Random(7)
    sched = asha(margin=0.05)
    actions = []
    for k in range(60):
        t = trial(sched, f"t{k}")
        done: list[dict] = []
        for step in range(1, 21):
            progress = step / 4
            score = rng.uniform(0.5, 1.5)
            result = {"objective": score, "progress": progress}
            if step % 4 == 0:
                done.append(fold(len(done), score, "regression"))
                result.update(fold_objective=score, folds_json=json.dumps(done))
                result["objective"] = sum(scores_of(done)) / len(done)
            before = len(sched.decisions)
            action = sched.on_trial_result(None, t, result)
            new = sched.decisions[before:]
            if action == STOP:
                assert new and new[-1]["action"] == STOP
                actions.append(new[-1]["kind"])
                break
            assert all(d["action"] in (CONTINUE, "keep", "replace") for d in new)
        else:
            sched.on_trial_complete(None, t, result)
    assert {"rung", "race"} <= set(actions)  # both kinds stopped something
    for milestone, recorded in sched._brackets[0]._rungs:
        assert sched.rung_values[milestone] == recorded
    for d in sched.decisions:
        if d["kind"] == "rung" and d["threshold"] is not None:
            # a minimised objective stops when above the cutoff
            assert (d["action"] == STOP) == (d["value"] > d["threshold"])


@pytest.mark.parametrize(
    ("grace", "eta", "n_folds", "epochs"),
    [(0.25, 2, 5, 20), (0.25, 2, 2, 2), (0.1, 3, 4, 7), (1.0, 2, 5, 10), (1.5, 2, 5, 3)],
)
def test_a_trial_reports_exactly_the_estimates_asha_acts_on(grace, eta, n_folds, epochs):
    # Rule (#23): a trial sends only the mid-fold estimates RungPlan picks; a scheduler fed
    # only those (and every fold end) records the same rung values and makes the same
    # decisions as one fed every epoch's estimate.
    import random

    from orchestrator.sweep.schedulers import RungPlan

    rng = random.Random(grace * 100 + eta + n_folds + epochs)

    def new():
        s = FoldRaceASHA(
            task="regression",
            n_folds=n_folds,
            race_margin=0.02,
            time_attr="progress",
            max_t=n_folds,
            grace_period=grace,
            reduction_factor=eta,
        )
        s.set_search_properties("objective", "min")
        return s

    every, planned = new(), new()
    for k in range(40):
        plan = RungPlan(planned.milestones)
        t_every, t_planned = trial(every, f"t{k}"), trial(planned, f"t{k}")
        done: list[dict] = []
        stopped = False
        for f in range(n_folds):
            for e in range(1, epochs + 1):
                progress = f + e / (epochs + 1)
                result = {"objective": rng.uniform(0.5, 1.5), "progress": progress}
                recorded = len(every.decisions)
                action = every.on_trial_result(None, t_every, result)
                acted = len(every.decisions) > recorded
                assert plan.wants(progress) == acted, (k, f, e)
                if acted:
                    assert planned.on_trial_result(None, t_planned, result) == action
                if action == STOP:
                    stopped = True
                    break
            if stopped:
                break
            done.append(fold(f, rng.uniform(0.5, 1.5), "regression"))
            end = {
                "objective": sum(scores_of(done)) / len(done),
                "progress": float(f + 1),
                "fold_objective": scores_of(done)[-1],
                "folds_json": json.dumps(done),
            }
            action = every.on_trial_result(None, t_every, end)
            assert planned.on_trial_result(None, t_planned, end) == action
            plan.fold_end(float(f + 1))
            if action == STOP:
                break
    assert every.decisions == planned.decisions
    assert every.rung_values == planned.rung_values


def test_progress_reports_are_never_decided_on():
    # A progress report (orchestrator/sweep/trial_reports.py) past a rung, with a hopeless
    # estimate, is neither recorded at the rung nor stops the trial.
    from orchestrator.sweep.schedulers import HEARTBEAT, FoldMedianStoppingRule

    sched = asha()
    t = trial(sched, "a")
    beat = {HEARTBEAT: True, "objective": 1e9, "progress": 0.3, "folds_json": "[]"}
    assert sched.on_trial_result(None, t, beat) == CONTINUE
    assert sched.decisions == [] and all(not v for v in sched.rung_values.values())
    median = FoldMedianStoppingRule(time_attr="progress", grace_period=0, min_samples_required=1)
    median.set_search_properties("objective", "min")
    assert median.on_trial_result(None, t, {**beat, "progress": 3.0}) == CONTINUE
