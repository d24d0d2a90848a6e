"""Ray's ``OptunaSearch`` telling Optuna what the leaderboard says about each trial.

Ray's searcher tells Optuna COMPLETE whenever a trial's last result holds a value, so a
trial the scheduler stopped mid-sweep was stored COMPLETE with its partial running estimate
(``optuna-dashboard`` then showed every trial complete, and its history, best value and
importances were computed on numbers that are not the objective). ``FoldOptunaSearch``:

* reports an intermediate value at each fold's end (the objective over the folds done,
  step = folds done), never the mid-fold estimates the scheduler reads;
* tells COMPLETE only when every fold is done with a finite objective (the leaderboard's
  ``completed``), PRUNED when the trial stopped earlier (``pruned``), FAIL on an error
  (``failed``); a trial the sweep was cut in (``interrupted``) stays RUNNING until a resumed
  run finishes it;
* adopts, on a resumed run, the Optuna trials a killed driver asked for after Tune's last
  snapshot (RUNNING in the study, unknown to the restored searcher) instead of asking new
  ones: a SIGKILL then leaves no orphan trial that a later clean-up could count twice.

It is pickled into Tune's experiment state like its parent (``save``/``restore`` of the
instance ``__dict__``), so ``--resume`` restores it.
"""

from __future__ import annotations

import logging
import math

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

__all__ = ["FoldOptunaSearch", "study_state"]

logger = logging.getLogger(__name__)


def study_state(result: dict | None, error: bool) -> TrialState:
    """The Optuna state of a finished Tune trial from its last result."""
    if error:
        return TrialState.FAIL
    result = result or {}
    value = result.get("objective")
    n_folds = result.get("n_folds")
    done = result.get("folds_done", 0)
    if n_folds and done >= n_folds and value is not None and math.isfinite(value):
        return TrialState.COMPLETE
    return TrialState.PRUNED


class FoldOptunaSearch(OptunaSearch):
    """``OptunaSearch`` whose study states match the sweep's trial statuses (module doc)."""

    def suggest(self, trial_id: str):
        if trial_id not in self._ot_trials and self._ot_study is not None:
            orphan = self._orphan()
            if orphan is not None:
                self._ot_trials[trial_id] = orphan
        return super().suggest(trial_id)

    def _orphan(self):
        """A RUNNING study trial no Tune trial owns (asked after the last snapshot of a
        driver that was then killed), or None."""
        owned = {t._trial_id for t in self._ot_trials.values()}
        running = self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for frozen in running:
            if frozen._trial_id not in owned:
                return optuna.trial.Trial(self._ot_study, frozen._trial_id)
        return None

    def on_trial_result(self, trial_id: str, result: dict):
        if "fold_objective" not in result or trial_id in self._completed_trials:
            return  # a mid-fold estimate for the scheduler, not a finished fold
        value, step = result.get("objective"), int(result.get("folds_done", 0))
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or value is None or not math.isfinite(value):
            return
        frozen = self._frozen(ot_trial)
        if frozen.state == TrialState.RUNNING and step not in frozen.intermediate_values:
            ot_trial.report(float(value), step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        state = study_state(result, error)
        if self._frozen(ot_trial).state == TrialState.RUNNING:  # else told before a kill
            value = float(result["objective"]) if state == TrialState.COMPLETE else None
            try:
                self._ot_study.tell(ot_trial, value, state=state)
            except (ValueError, RuntimeError) as exc:  # never lose the sweep over the study
                logger.warning("Optuna study: trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)

    def _frozen(self, ot_trial):
        return self._ot_study._storage.get_trial(ot_trial._trial_id)
