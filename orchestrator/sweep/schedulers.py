"""ASHA with a race against the best finished trial on the same CV folds.

Plain asynchronous successive halving compares a trial with every trial recorded at the same
rung. Over a sweep the sampler learns, so later trials are mostly better than the early ones
recorded at a rung and pass it, and most of them then train every fold: on the quick space
that saved only ~2x of the trial-epochs (benchmarks/README.md). But every trial is scored on
the *same* folds, so a fairer and sharper test exists: after fold k, compare the trial's
objective over folds 0..k with the objective of the best finished trial (the incumbent) over
the same folds. A trial worse by more than ``race_margin`` (relative) at the end of a fold
stops there; it would need its remaining folds to beat the incumbent's by that much to win.
The incumbent only changes when a trial finishes every fold with a better objective.

Rungs stay comparable: ASHA records a report at the highest rung it has reached, so after a
``--resume`` (a fresh scheduler) a trial's first mid-fold report (progress 4.03) would be
recorded at the fold-end rung 4 and compared with other trials' exact 4-fold objectives. A
report is therefore only shown to ASHA when that rung matches it: a fold-end rung for a
fold-end report, a rung inside the current fold for a mid-fold estimate.

Every decision is kept in ``decisions`` (the value compared, what it was compared with, the
action), so a run can say how close each of them came to a tie: a seeded sweep repeats on
another machine only if float noise cannot flip one (tests/sweep_golden.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule, TrialScheduler

from orchestrator.stats.objective import objective_of, running_objective

__all__ = [
    "HEARTBEAT",
    "FoldMedianStoppingRule",
    "FoldRaceASHA",
    "RungPlan",
    "asha_milestones",
    "rung_matches",
]


# A result with this key set only says how a trial is doing (its fold, epoch, samples/s):
# for the progress lines, never for a scheduler or the searcher.
HEARTBEAT = "heartbeat"


def asha_milestones(grace_period: float, max_t: float, reduction_factor: float) -> list[float]:
    """The rungs of ASHA's single bracket, ascending (the formula of Ray's ``_Bracket``)."""
    n = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
    return [grace_period * reduction_factor**k for k in range(n)]


def rung_matches(milestones: list[float], progress: float, fold_end: bool) -> bool:
    """Whether ASHA would record this report at a rung of its own kind (module doc)."""
    reached = [m for m in milestones if m <= progress]
    if not reached:
        return True  # below the first rung: ASHA records nothing
    rung = reached[-1]
    if fold_end:
        return rung == progress
    return rung > math.floor(progress)


class RungPlan:
    """Which of a trial's mid-fold estimates ``FoldRaceASHA`` would act on, decided in the
    trial, so it reports only those (a report is a round trip to the driver).

    ASHA records a shown report at the highest rung at or below its progress where the
    trial has no value yet, and ignores it when there is none; this mirrors that for the
    reports ``rung_matches`` shows it, fold ends included (always reported: they carry the
    fold's score and checkpoint). ``milestones=None``: every estimate (a scheduler that
    reads them all, the median rule).
    """

    def __init__(self, milestones: list[float] | None) -> None:
        self.milestones = None if milestones is None else sorted(milestones)
        self.recorded: set[float] = set()

    def wants(self, progress: float) -> bool:
        """A mid-fold estimate at ``progress``: True if ASHA would record it (noted)."""
        if self.milestones is None:
            return True
        return rung_matches(self.milestones, progress, False) and self._record(progress)

    def fold_end(self, progress: float) -> None:
        """A fold-end report at ``progress`` was sent: note what ASHA records of it."""
        if self.milestones is not None and rung_matches(self.milestones, progress, True):
            self._record(progress)

    def _record(self, progress: float) -> bool:
        free = [m for m in self.milestones if m <= progress and m not in self.recorded]
        if free:
            self.recorded.add(free[-1])
        return bool(free)


class FoldRaceASHA(AsyncHyperBandScheduler):
    """``ASHAScheduler`` (rungs on ``progress``) plus the fold race described above.

    ``task``: decides the objective (orchestrator/stats/objective.py) computed from a result's
    ``folds_json`` (what ``orchestrator.sweep.trial`` reports after each fold); ``race_margin``
    <= 0 turns the race off.
    """

    def __init__(self, *, task: str, n_folds: int, race_margin: float, **asha) -> None:
        super().__init__(**asha)
        self.task, self.n_folds, self.race_margin = task, n_folds, race_margin
        self.eta = asha.get("reduction_factor", 4)
        self.milestones = asha_milestones(asha.get("grace_period", 1), asha["max_t"], self.eta)
        self.incumbent: list[dict] | None = None  # fold records of the best finished trial
        self.raced_out = 0
        self.mode: str | None = None
        self.metric_name: str | None = None
        self.max_t = asha["max_t"]
        # The values ASHA records per rung, mirrored from its bookkeeping (same rule as
        # ray.tune.schedulers.async_hyperband._Bracket.on_result) to say what it compared.
        self.rung_values: dict[float, dict[str, float]] = {m: {} for m in self.milestones}
        self.decisions: list[dict] = []

    def set_search_properties(self, metric, mode, **spec) -> bool:
        accepted = super().set_search_properties(metric, mode, **spec)
        if mode:
            self.mode = mode
        if metric:
            self.metric_name = metric
        return accepted

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(HEARTBEAT):
            return TrialScheduler.CONTINUE  # a progress line's numbers, nothing to decide on
        fold_end = "fold_objective" in result and "folds_json" in result
        action = TrialScheduler.CONTINUE
        if rung_matches(self.milestones, result.get("progress", math.nan), fold_end):
            self._mirror_rung(trial.trial_id, result, decide=True)
            action = super().on_trial_result(tune_controller, trial, result)
            if self.decisions and self.decisions[-1].get("pending"):
                self.decisions[-1].pop("pending")
                self.decisions[-1]["action"] = action
        if not fold_end:
            return action  # a mid-fold report: ASHA's rungs alone
        folds = json.loads(result["folds_json"])
        name = objective_of(self.task)[0]
        if not folds or not all(math.isfinite(f.get(name, math.nan)) for f in folds):
            return action
        objective = running_objective(folds, self.task)
        if not math.isfinite(objective):
            return action
        if len(folds) >= self.n_folds:
            self._offer_incumbent(folds, trial.trial_id)
            return action
        if action == TrialScheduler.CONTINUE and self._behind(folds, trial.trial_id):
            self.raced_out += 1
            return TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._mirror_rung(trial.trial_id, result, decide=False)
        super().on_trial_complete(tune_controller, trial, result)

    def _mirror_rung(self, trial_id: str, result: dict, *, decide: bool) -> None:
        """Record ``result`` at the rung ASHA records it, and (``decide``) the comparison."""
        progress, value = result.get("progress"), result.get(self.metric_name or "")
        if progress is None or value is None:
            return
        if decide and progress >= self.max_t:
            return  # ASHA stops a trial at max_t without comparing
        sign = 1.0 if self.mode == "max" else -1.0
        for milestone in reversed(self.milestones):
            recorded = self.rung_values[milestone]
            if progress < milestone or trial_id in recorded:
                continue
            if decide:
                cutoff = (
                    float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.eta) * 100))
                    if recorded
                    else None
                )
                self.decisions.append(
                    {
                        "trial": trial_id,
                        "kind": "rung",
                        "progress": float(progress),
                        "rung": milestone,
                        "value": float(value),
                        "threshold": None if cutoff is None else sign * cutoff,
                        "pending": True,
                    }
                )
            recorded[trial_id] = sign * float(value)
            return

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def _behind(self, folds: list[dict], trial_id: str = "") -> bool:
        """Worse than the incumbent on the same folds by more than the margin."""
        if self.incumbent is None or self.race_margin <= 0:
            return False
        mine = running_objective(folds, self.task)
        theirs = running_objective(self.incumbent[: len(folds)], self.task)
        if self.mode == "max":  # e.g. macro-F1: higher is better
            limit = theirs * (1 - self.race_margin)
            behind = mine < limit
        else:
            limit = theirs * (1 + self.race_margin)
            behind = mine > limit
        self.decisions.append(
            {
                "trial": trial_id,
                "kind": "race",
                "progress": float(len(folds)),
                "value": mine,
                "threshold": limit,
                "action": TrialScheduler.STOP if behind else TrialScheduler.CONTINUE,
            }
        )
        return behind

    def _offer_incumbent(self, folds: list[dict], trial_id: str = "") -> None:
        mine = running_objective(folds, self.task)
        theirs = None if self.incumbent is None else running_objective(self.incumbent, self.task)
        if theirs is not None:
            self.decisions.append(
                {
                    "trial": trial_id,
                    "kind": "incumbent",
                    "progress": float(len(folds)),
                    "value": mine,
                    "threshold": theirs,
                    "action": "replace" if self._better(mine, theirs) else "keep",
                }
            )
        if theirs is None or self._better(mine, theirs):
            self.incumbent = folds

    def debug_string(self) -> str:
        return f"{super().debug_string()}\nFold race: {self.raced_out} stopped behind the best"


class FoldMedianStoppingRule(MedianStoppingRule):
    """Ray's median stopping rule, which reads every estimate, blind to progress lines."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(HEARTBEAT):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)
