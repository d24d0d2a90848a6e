"""Driver-side Tune callbacks: trial statuses, progress lines, MLflow logging.

All run in the driver process, so sweep.json and MLflow (sqlite by default) have a single
writer. A trial's status is decided here, once, when Tune says it finished:

* ``completed``: it scored every fold;
* ``pruned``: the scheduler stopped it (Tune calls ``on_trial_complete`` with fewer folds);
* ``failed``: it raised past its retries (``on_trial_error``);
* ``interrupted``: anything else at the end of a run. Ctrl-C, SIGTERM, a spent
  ``--time-budget`` or a killed driver stop running trials without either callback;
  ``--resume`` goes on with them from their last finished fold.

The statuses are saved in sweep.json as they happen, so a resumed sweep still knows which
of its earlier trials were pruned.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable

from ray.tune import Callback

from orchestrator.records.leaderboard import TrialRecord

__all__ = [
    "Heartbeat",
    "ProgressCallback",
    "StatusCallback",
    "TrackingCallback",
    "duration",
    "error_line",
    "failure_reason",
    "finish_by_folds",
    "log_record",
    "progress_line",
    "trial_error",
    "trial_record",
]


def _folds(metrics: dict) -> list[dict]:
    raw = metrics.get("folds_json")
    return json.loads(raw) if raw else []


def error_line(error) -> str | None:
    """The exception's own message (the last 'Error: ...' line of a trial's traceback)."""
    if error is None:
        return None
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Diverged:" in line or "Exception:" in line:
            return line.split(": ", 1)[-1] if "TrialDiverged" in line else line
    return lines[-1] if lines else None


def trial_error(trial) -> str | None:
    """A Tune trial's error in one line, or None (no error file)."""
    try:
        return error_line(trial.get_error())
    except Exception:  # noqa: BLE001 - a missing error file must not break reporting
        return None


def failure_reason(trial) -> str:
    """Why a trial failed: its own report, else its error, in one line."""
    return trial.last_result.get("failure") or trial_error(trial) or "unknown error"


def trial_record(
    trial_id: str,
    params: dict,
    metrics: dict,
    *,
    status: str,
    error: str | None = None,
) -> TrialRecord:
    """A TrialRecord from a trial's last reported metrics and its decided status."""
    reason = (metrics.get("failure") or error) if status == "failed" else None
    return TrialRecord(
        trial_id=trial_id,
        params=dict(params),
        folds=_folds(metrics),
        status=status,
        reason=reason,
        seconds=float(metrics.get("time_total_s", 0.0)),
        stopped_mid_fold=status == "pruned" and "fold_objective" not in metrics,
    )


def log_record(tracker, rec: TrialRecord, *, objective: str) -> None:
    from orchestrator.records.leaderboard import fold_metrics, trial_summary

    per_fold, chosen = fold_metrics(rec.folds)  # indices and settings are not metrics
    tracker.log_trial(
        rec.trial_id,
        params={**rec.params, **chosen},
        fold_metrics=per_fold,
        summary=trial_summary(rec, objective),
        status=rec.status,
        reason=rec.reason,
    )


def where_stopped(rec: TrialRecord, n_folds: int) -> str:
    """'in fold 1 of 5' (stopped mid-fold) or 'after fold 2 of 5' (at a fold's end)."""
    if rec.stopped_mid_fold:
        return f"in fold {rec.folds_done + 1} of {n_folds}"
    return f"after fold {rec.folds_done} of {n_folds}"


def finish_by_folds(tally, trial, params: dict) -> None:
    """A trial Tune completed: ``completed`` when it scored every fold, else pruned (where)."""
    rec = trial_record(trial.trial_id, params, trial.last_result, status="pruned")
    if rec.folds_done >= tally.n_folds:
        tally.finish(trial.trial_id, "completed", "")
    else:
        tally.finish(trial.trial_id, "pruned", " " + where_stopped(rec, tally.n_folds))


def progress_line(trial_id: str, result: dict, n_folds: int) -> str:
    """'trial ab12 fold 1/5 epoch 1/20 (38%): 12,345 samples/s, fold ETA <= 2.1 min': a
    long fold's progress (its ETA assumes every epoch runs; early stopping ends it sooner)."""
    eta = result.get("fold_eta_s", math.nan)
    return (
        f"trial {trial_id} fold {result.get('fold', 0) + 1}/{n_folds} epoch "
        f"{result.get('epoch', 0)}/{result.get('epochs', 0)} "
        f"({result.get('epoch_done', 0.0):.0%}): {result.get('samples_per_s', 0.0):,.0f} "
        f"samples/s, fold ETA <= {duration(eta)}"
    )


def duration(seconds: float) -> str:
    """'45 s', '2.1 min', '1.5 h'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class StatusCallback(Callback):
    """Decides each finished trial's status and saves it in sweep.json right away."""

    def __init__(self, record, *, n_folds: int, watch=None) -> None:
        self.record, self.n_folds = record, n_folds
        self.watch = watch  # a preflight.DiskWatch: a full disk stops the sweep in one line
        self.statuses: dict[str, str] = record.finished_trials()

    def status_of(self, trial) -> str:
        folds = trial.last_result.get("folds_done", 0)
        return "completed" if folds >= self.n_folds else "pruned"

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._mark(trial.trial_id, self.status_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._mark(trial.trial_id, "failed")

    def _mark(self, trial_id: str, status: str) -> None:
        self.statuses[trial_id] = status
        try:
            self.record.mark_trial(trial_id, status)
        except OSError as err:
            if self.watch is None or not self.watch.catch(err):
                raise


class ProgressCallback(Callback):
    """One line per finished fold and per finished trial, with a running tally."""

    def __init__(self, tally: Heartbeat, *, log=print) -> None:
        self.tally, self.log = tally, log

    def on_trial_start(self, iteration, trials, trial, **info):
        self.tally.running.add(trial.trial_id)

    def on_trial_restore(self, iteration, trials, trial, **info):
        self.tally.running.add(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.tally.running.add(trial.trial_id)
        if result.get("heartbeat"):  # orchestrator/sweep/trial_reports.py: how a long fold is doing
            self.tally.say(progress_line(trial.trial_id, result, self.tally.n_folds))
            return
        if "fold_objective" not in result:
            return  # a mid-fold estimate (for the scheduler), not a finished fold
        folds = result.get("folds_done", 0)
        obj = result.get("objective", math.nan)
        self.tally.say(
            f"trial {trial.trial_id} fold {folds}/{self.tally.n_folds} "
            f"fold_{self.tally.objective}={result.get('fold_objective', math.nan):.5g} "
            f"{self.tally.objective}={obj:.5g}"
        )
        if folds >= self.tally.n_folds and math.isfinite(obj):
            self.tally.offer_best(obj, trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        finish_by_folds(self.tally, trial, trial.config)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.tally.say(
            f"trial {trial.trial_id} crashed; retrying from its last finished fold "
            f"({trial_error(trial) or 'see the trial error file'})"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tally.finish(trial.trial_id, "failed", f": {failure_reason(trial)}")


class Heartbeat:
    """The sweep's tally, and a timer that prints it when nothing else was printed for
    ``every`` seconds (Tune's callbacks fire only on results; a fold can take minutes)."""

    def __init__(
        self,
        *,
        n_trials: int,
        n_folds: int,
        objective: str,
        mode: str,
        log: Callable[[str], object] = print,
        every: float = 25.0,
        done: dict[str, str] | None = None,
        budget: float | None = None,
    ) -> None:
        self.n_trials, self.n_folds, self.objective, self.mode = n_trials, n_folds, objective, mode
        self.log, self.every = log, every
        self.start = time.perf_counter()
        self.last_line = self.start
        self.best: tuple[float, str] | None = None
        self.done: dict[str, str] = dict(done or {})  # from an earlier run when resumed
        self.done_before = len(self.done)
        self.running: set[str] = set()  # trial ids started and not finished
        self.budget = budget  # seconds of --time-budget, None for none
        self.budget_spent = False
        self.reference = ""  # the linear baseline on the same folds, e.g. "ridge 0.77 (+0.23)"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- lines -----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        with self._lock:
            self.last_line = time.perf_counter()
            self.log(f"[{self.last_line - self.start:7.1f}s] {text}")

    def offer_best(self, value: float, trial_id: str) -> None:
        better = self.best is None or (
            value < self.best[0] if self.mode == "min" else value > self.best[0]
        )
        if better:
            self.best = (value, trial_id)

    def finish(self, trial_id: str, status: str, detail: str) -> None:
        self.done[trial_id] = status
        self.running.discard(trial_id)
        self.say(f"trial {trial_id} {status}{detail} | {self.tally()}")

    def counts(self) -> dict[str, int]:
        statuses = list(self.done.values())
        return {s: statuses.count(s) for s in ("completed", "pruned", "failed")}

    def tally(self) -> str:
        c = self.counts()
        return (
            f"{len(self.done)}/{self.n_trials} done: {c['completed']} completed, "
            f"{c['pruned']} pruned, {c['failed']} failed | {self._best_text()}"
        )

    def _best_text(self) -> str:
        ref = f"; {self.reference}" if self.reference else ""
        if self.best is None:
            # Trials completed before a --resume whose scores this run cannot know (a
            # killed driver wrote no leaderboard): not "no complete trial".
            earlier = self.counts()["completed"]
            none = "no score known yet" if earlier else "no complete trial yet"
            return none + ref
        text = f"best {self.objective} {self.best[0]:.5g} ({self.best[1]})"
        if self.objective == "mse_ratio":
            text += f", skill {1 - self.best[0]:+.4f}"
        return text + ref

    def eta(self) -> str:
        finished = len(self.done) - self.done_before
        left = self.n_trials - len(self.done)
        if finished == 0:
            return "ETA after the first trial finishes"
        per_trial = (time.perf_counter() - self.start) / finished
        minutes = left * per_trial / 60
        return f"ETA ~{minutes:.0f} min (rough: pruned trials are short, completed ones long)"

    def beat(self) -> None:
        self.say(f"{len(self.running)} running | {self.tally()} | {self.eta()}")

    # -- timer -----------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into the experiment state; a resumed run brings its own.
        state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_stop", "_thread")}
        state["running"] = set()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock, self._stop, self._thread = threading.Lock(), threading.Event(), None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="sweep-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.every / 2)):
            if time.perf_counter() - self.last_line >= self.every:
                self.beat()
            spent = self.budget and time.perf_counter() - self.start >= self.budget
            if spent and not self.budget_spent:
                self._spend_budget()

    def _spend_budget(self) -> None:
        """Stop the run as Ctrl-C does: Tune saves its state, starts no new trial, and the
        running ones stop at once (``--resume`` goes on with them)."""
        self.budget_spent = True
        self.say(f"time budget of {self.budget:g} s spent: stopping; {self.tally()}")
        # Tune's tuner.fit() treats SIGUSR1 as it treats SIGINT (a graceful stop).
        os.kill(os.getpid(), signal.SIGUSR1)


class TrackingCallback(Callback):
    """Logs each finished trial as an MLflow child run as soon as it finishes."""

    def __init__(self, tracker, status: StatusCallback, *, objective: str) -> None:
        self.tracker, self.status, self.objective = tracker, status, objective
        self.watch = status.watch

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._log(trial, self.status.status_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._log(trial, "failed")

    def _log(self, trial, status: str) -> None:
        rec = trial_record(
            trial.trial_id,
            trial.config,
            trial.last_result,
            status=status,
            error=trial_error(trial) if status == "failed" else None,
        )
        try:
            log_record(self.tracker, rec, objective=self.objective)
        except Exception as err:  # the tracker lets only a full disk through
            if self.watch is None or not self.watch.catch(err):
                raise
