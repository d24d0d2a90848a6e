"""Pruning per ticker in one Tune experiment: each trial goes to its ticker's own scheduler.

A universe runs every ticker's trials in one experiment, but a trial may only ever be
compared with trials of its own ticker: one ticker's mse_ratio says nothing about another's.
``TickerScheduler`` keeps one scheduler per ticker (``FoldRaceASHA`` with its rungs and its
fold race, or the median rule: ``orchestrator.sweep.tuner.scheduler``, the one a single-ticker
sweep uses), made the first time a trial of that ticker arrives, and passes each of Tune's
calls for a trial to its ticker's scheduler. Trials start in the order Tune created them
(first in, first out), as with one ticker.

Nothing per ticker lives in a Ray worker: the ticker is in each trial's config, and a
reused actor that switches tickers reads only the config it is given.
"""

from __future__ import annotations

from collections.abc import Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

__all__ = ["TickerScheduler"]


class TickerScheduler(FIFOScheduler):
    """Routes each trial to its ticker's scheduler, made by ``make()`` (module doc)."""

    def __init__(self, make: Callable[[], TrialScheduler]) -> None:
        super().__init__()
        self.make = make  # picklable: Tune pickles the scheduler with the tuner
        self.by_ticker: dict[str, TrialScheduler] = {}
        self.added: set[str] = set()  # trial ids its ticker's scheduler was told about
        self.metric_mode: tuple[str | None, str | None] = (None, None)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self.metric_mode = (metric, mode)
        for scheduler in self.by_ticker.values():
            scheduler.set_search_properties(metric, mode, **spec)
        return super().set_search_properties(metric, mode, **spec)

    def scheduler_of(self, ticker: str) -> TrialScheduler:
        if ticker not in self.by_ticker:
            scheduler = self.make()
            scheduler.set_search_properties(*self.metric_mode)
            self.by_ticker[ticker] = scheduler
        return self.by_ticker[ticker]

    def _route(self, tune_controller, trial) -> TrialScheduler:
        """The trial's ticker's scheduler, told about the trial first if it was not (a trial
        restored by --resume may report before Tune adds it again)."""
        scheduler = self.scheduler_of(str(trial.config["ticker"]))
        if trial.trial_id not in self.added:
            scheduler.on_trial_add(tune_controller, trial)
            self.added.add(trial.trial_id)
        return scheduler

    def on_trial_add(self, tune_controller, trial) -> None:
        self._route(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._route(tune_controller, trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._route(tune_controller, trial).on_trial_complete(tune_controller, trial, result)
        self.added.discard(trial.trial_id)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._route(tune_controller, trial).on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if trial.trial_id in self.added:
            self._route(tune_controller, trial).on_trial_remove(tune_controller, trial)
            self.added.discard(trial.trial_id)

    def debug_string(self) -> str:
        return f"Per-ticker scheduling: {len(self.by_ticker)} tickers"
