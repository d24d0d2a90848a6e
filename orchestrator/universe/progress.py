"""Driver-side Tune callbacks of a universe: each finished trial to its ticker, and the lines.

* ``TickerCallbacks`` passes each finished trial to its ticker: its status goes into the
  ticker's ``sweep.json`` (a ``StatusCallback`` per ticker, as a single sweep keeps it) and
  its MLflow run goes below the ticker's run (``TickerTrackers``), without the ``ticker`` key
  among its params (it is the run above).
* ``UniverseProgress`` prints one line per finished fold and per finished trial, each naming
  its ticker, a line when a ticker is done, and feeds ``UniverseHeartbeat``: tickers done /
  running / left, trials across the universe, and an ETA.
"""

from __future__ import annotations

import math
from contextlib import ExitStack

from ray.tune import Callback

from orchestrator.sweep.progress import (
    Heartbeat,
    StatusCallback,
    failure_reason,
    finish_by_folds,
    log_record,
    trial_error,
    trial_record,
)
from orchestrator.tracking.sweep_runs import SweepTracker

__all__ = [
    "TickerCallbacks",
    "TickerTrackers",
    "UniverseHeartbeat",
    "UniverseProgress",
    "params_of",
    "ticker_of",
]


def ticker_of(trial) -> str:
    return str(trial.config["ticker"])


def params_of(config: dict) -> dict:
    """A trial's sampled params: its config without the universe's ``ticker`` key."""
    return {k: v for k, v in (config or {}).items() if k != "ticker"}


class TickerTrackers:
    """The universe's MLflow runs: its own run, and one child run per ticker (opened when the
    ticker's first trial finishes), under which that ticker's trials go."""

    def __init__(self, universe: SweepTracker, make) -> None:
        self.universe = universe
        self.make = make  # ticker -> a SweepTracker for it, nested under the universe's run
        self.open: dict[str, SweepTracker] = {}
        self._stack = ExitStack()

    def of(self, ticker: str) -> SweepTracker:
        if ticker not in self.open:
            self.open[ticker] = self._stack.enter_context(self.make(ticker))
        return self.open[ticker]

    def close(self, statuses: dict[str, str]) -> None:
        """End every ticker's run: FINISHED for a finished ticker, else KILLED."""
        for ticker, tracker in self.open.items():
            tracker.close_status = "FINISHED" if statuses.get(ticker) == "finished" else "KILLED"
        self._stack.close()

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the tuner: no clients
        return {"universe": None, "make": None, "open": {}, "_stack": None}


class TickerCallbacks(Callback):
    """Each finished trial's status to its ticker's sweep.json, its run to the ticker's."""

    def __init__(self, statuses: dict[str, StatusCallback], trackers: TickerTrackers, *, objective):
        self.statuses, self.trackers, self.objective = statuses, trackers, objective

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = self.statuses.get(ticker_of(trial))
        if status is None:  # a ticker that finished in an earlier run: nothing of it runs
            return
        status.on_trial_complete(iteration, trials, trial, **info)
        self._log(trial, status.status_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        status = self.statuses.get(ticker_of(trial))
        if status is None:
            return
        status.on_trial_error(iteration, trials, trial, **info)
        self._log(trial, "failed")

    def _log(self, trial, status: str) -> None:
        rec = trial_record(
            trial.trial_id,
            params_of(trial.config),
            trial.last_result,
            status=status,
            error=trial_error(trial) if status == "failed" else None,
        )
        log_record(self.trackers.of(ticker_of(trial)), rec, objective=self.objective)


class UniverseHeartbeat(Heartbeat):
    """The universe's tally: trials across the universe, and tickers done / running / left."""

    def __init__(self, *, quota: dict[str, int], ticker_of_trial: dict[str, str], **kw) -> None:
        super().__init__(n_trials=sum(quota.values()), **kw)
        self.quota = dict(quota)  # ticker -> trials (the tickers that run, in order)
        self.ticker_of = dict(ticker_of_trial)  # trial id -> ticker, for trials seen
        self.ticker_best: dict[str, tuple[float, str]] = {}
        self.references: dict[str, str] = {}  # ticker -> "ridge mse_ratio 0.81, skill +0.19"

    def done_in(self, ticker: str) -> int:
        return sum(1 for t in self.done if self.ticker_of.get(t) == ticker)

    def ticker_counts(self) -> dict[str, int]:
        running = {self.ticker_of.get(t) for t in self.running}
        done = [t for t, n in self.quota.items() if self.done_in(t) >= n]
        started = {self.ticker_of.get(t) for t in self.done} | running
        left = [t for t in self.quota if t not in started]
        return {"done": len(done), "running": len(running - set(done)), "left": len(left)}

    def tally(self) -> str:
        c, t = self.counts(), self.ticker_counts()
        return (
            f"tickers: {t['done']}/{len(self.quota)} done, {t['running']} running, "
            f"{t['left']} not started | trials: {len(self.done)}/{self.n_trials} done "
            f"({c['completed']} completed, {c['pruned']} pruned, {c['failed']} failed)"
        )

    def ticker_text(self, ticker: str) -> str:
        best = self.ticker_best.get(ticker)
        ref = self.references.get(ticker, "")
        text = f"{ticker}: {self.done_in(ticker)}/{self.quota[ticker]} done"
        if best is not None:
            text += f", best {self.objective} {best[0]:.5g} ({best[1]})"
            if self.objective == "mse_ratio":
                text += f", skill {1 - best[0]:+.4f}"
        return text + (f"; {ref}" if ref else "")

    def offer(self, ticker: str, value: float, trial_id: str) -> None:
        best = self.ticker_best.get(ticker)
        if best is None or (value < best[0] if self.mode == "min" else value > best[0]):
            self.ticker_best[ticker] = (value, trial_id)

    def finish(self, trial_id: str, status: str, detail: str) -> None:
        ticker = self.ticker_of.get(trial_id, "?")
        self.done[trial_id] = status
        self.running.discard(trial_id)
        self.say(f"trial {trial_id} {ticker} {status}{detail} | {self.ticker_text(ticker)}")
        if ticker in self.quota and self.done_in(ticker) == self.quota[ticker]:
            self.say(f"ticker {ticker} done | {self.tally()}")


class UniverseProgress(Callback):
    """One line per finished fold and trial, naming its ticker (module doc)."""

    def __init__(self, tally: UniverseHeartbeat, *, log=print) -> None:
        self.tally, self.log = tally, log

    def _seen(self, trial) -> None:
        self.tally.ticker_of[trial.trial_id] = ticker_of(trial)
        self.tally.running.add(trial.trial_id)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._seen(trial)

    def on_trial_restore(self, iteration, trials, trial, **info):
        self._seen(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._seen(trial)
        if "fold_objective" not in result:
            return  # a mid-fold estimate (for the scheduler), not a finished fold
        n, obj = self.tally.n_folds, result.get("objective", math.nan)
        folds = result.get("folds_done", 0)
        name = self.tally.objective
        self.tally.say(
            f"trial {trial.trial_id} {ticker_of(trial)} fold {folds}/{n} "
            f"fold_{name}={result.get('fold_objective', math.nan):.5g} {name}={obj:.5g}"
        )
        if folds >= n and math.isfinite(obj):
            self.tally.offer(ticker_of(trial), obj, trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._seen(trial)
        finish_by_folds(self.tally, trial, {})

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.tally.say(
            f"trial {trial.trial_id} {ticker_of(trial)} crashed; retrying from its last "
            f"finished fold ({trial_error(trial) or 'see the trial error file'})"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        self._seen(trial)
        self.tally.finish(trial.trial_id, "failed", f": {failure_reason(trial)}")
