"""ASHA with a race against the best finished trial on the same CV folds.

Plain asynchronous successive halving compares a trial with every trial recorded at the same
rung. Over a sweep the sampler learns, so later trials are mostly better than the early ones
recorded at a rung and pass it, and most of them then train every fold: on the quick space
that saved only ~2x of the trial-epochs (benchmarks/README.md). But every trial is scored on
the *same* folds, so a fairer and sharper test exists: after fold k, compare the trial's mean
over folds 0..k with the mean of the best finished trial (the incumbent) over the same folds.
A trial worse by more than ``race_margin`` (relative) at the end of a fold stops there; it
would need its remaining folds to beat the incumbent's by that much to win. The incumbent
only changes when a trial finishes every fold with a better mean.
"""

from __future__ import annotations

import json
import math
from statistics import fmean

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

__all__ = ["FoldRaceASHA"]


class FoldRaceASHA(AsyncHyperBandScheduler):
    """``ASHAScheduler`` (rungs on ``progress``) plus the fold race described above.

    ``fold_key``: the per-fold score's name inside a result's ``folds_json`` (what
    ``orchestrator.trial`` reports after each fold); ``race_margin`` <= 0 turns the race off.
    """

    def __init__(self, *, fold_key: str, n_folds: int, race_margin: float, **asha) -> None:
        super().__init__(**asha)
        self.fold_key, self.n_folds, self.race_margin = fold_key, n_folds, race_margin
        self.incumbent: list[float] | None = None  # per-fold scores of the best finished trial
        self.raced_out = 0

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if "fold_objective" not in result or "folds_json" not in result:
            return action  # a mid-fold report: ASHA's rungs alone
        scores = [f.get(self.fold_key, math.nan) for f in json.loads(result["folds_json"])]
        if not scores or not all(math.isfinite(s) for s in scores):
            return action
        k = len(scores)
        if k >= self.n_folds:
            self._offer_incumbent(scores)
            return action
        if action == TrialScheduler.CONTINUE and self._behind(scores):
            self.raced_out += 1
            return TrialScheduler.STOP
        return action

    def _behind(self, scores: list[float]) -> bool:
        """Worse than the incumbent on the same folds by more than the margin."""
        if self.incumbent is None or self.race_margin <= 0:
            return False
        mine, theirs = fmean(scores), fmean(self.incumbent[: len(scores)])
        if self._mode == "max":  # e.g. macro-F1: higher is better
            return mine < theirs * (1 - self.race_margin)
        return mine > theirs * (1 + self.race_margin)

    def _offer_incumbent(self, scores: list[float]) -> None:
        if self.incumbent is None:
            self.incumbent = scores
            return
        mine, theirs = fmean(scores), fmean(self.incumbent)
        if (mine > theirs) if self._mode == "max" else (mine < theirs):
            self.incumbent = scores

    def debug_string(self) -> str:
        return f"{super().debug_string()}\nFold race: {self.raced_out} stopped behind the best"
