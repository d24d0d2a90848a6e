"""Driver-side Tune callbacks: the terminal progress table and MLflow logging.

Both run in the driver process, so MLflow (sqlite by default) has a single writer.
"""

from __future__ import annotations

import json
import math
import time

from ray.tune import Callback

from orchestrator.leaderboard import TrialRecord

__all__ = ["ProgressCallback", "TrackingCallback", "log_record", "record_of"]


def _folds(metrics: dict) -> list[dict]:
    raw = metrics.get("folds_json")
    return json.loads(raw) if raw else []


def _error_line(trial) -> str | None:
    """The exception's own message from the trial's error file (last 'Error: ...' line)."""
    try:
        err = trial.get_error()
    except Exception:  # noqa: BLE001 - a missing error file must not break reporting
        err = None
    if err is None:
        return None
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Diverged:" in line or "Exception:" in line:
            return line.split(": ", 1)[-1] if "TrialDiverged" in line else line
    return lines[-1] if lines else None


def record_of(
    trial, metrics: dict, *, n_folds: int | None = None, status: str | None = None
) -> TrialRecord:
    """A TrialRecord from a Tune Trial and its last reported metrics."""
    folds = _folds(metrics)
    n_folds = n_folds or metrics.get("n_folds")
    if status is None:
        if trial.status == "ERROR":
            status = "failed"
        elif trial.status == "TERMINATED":
            status = "completed" if n_folds and len(folds) >= n_folds else "pruned"
        else:
            status = "unfinished"
    reason = metrics.get("failure") if status == "failed" else None
    if status == "failed" and not reason:
        reason = _error_line(trial)
    return TrialRecord(
        trial_id=trial.trial_id,
        params=dict(trial.config),
        folds=folds,
        status=status,
        reason=reason,
        seconds=float(metrics.get("time_total_s", 0.0)),
    )


def log_record(tracker, rec: TrialRecord, *, objective: str) -> None:
    values = [f[objective] for f in rec.folds if objective in f]
    summary = {"folds_done": float(rec.folds_done), "seconds": rec.seconds}
    if values:
        mean = sum(values) / len(values)
        summary[f"mean_{objective}"] = mean
        summary[f"std_{objective}"] = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    fold_metrics = [{k: v for k, v in f.items() if isinstance(v, (int, float))} for f in rec.folds]
    tracker.log_trial(
        rec.trial_id,
        params=rec.params,
        fold_metrics=fold_metrics,
        summary=summary,
        status=rec.status,
        reason=rec.reason,
    )


class ProgressCallback(Callback):
    """One line per fold result and per finished trial, plus a running tally."""

    def __init__(self, *, n_trials: int, n_folds: int, mode: str, log=print) -> None:
        self.n_trials, self.n_folds, self.mode, self.log = n_trials, n_folds, mode, log
        self.start = time.perf_counter()
        self.best: tuple[float, str] | None = None
        self.done: dict[str, str] = {}

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best[0] if self.mode == "min" else value > self.best[0]

    def _elapsed(self) -> str:
        return f"[{time.perf_counter() - self.start:7.1f}s]"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "fold_objective" not in result:
            return  # a mid-fold estimate (for the scheduler), not a finished fold
        folds = result.get("folds_done", 0)
        obj = result.get("objective", math.nan)
        self.log(
            f"{self._elapsed()} trial {trial.trial_id} fold {folds}/{self.n_folds} "
            f"fold_objective={result.get('fold_objective', math.nan):.5g} "
            f"running_mean={obj:.5g}"
        )
        if folds >= self.n_folds and math.isfinite(obj) and self._better(obj):
            self.best = (obj, trial.trial_id)

    def _finish(self, trial, status: str, detail: str = "") -> None:
        self.done[trial.trial_id] = status
        counts = {s: list(self.done.values()).count(s) for s in ("completed", "pruned", "failed")}
        best = f"best {self.best[0]:.5g} ({self.best[1]})" if self.best else "no complete trial yet"
        self.log(
            f"{self._elapsed()} trial {trial.trial_id} {status}{detail} | "
            f"{len(self.done)}/{self.n_trials} done: {counts['completed']} completed, "
            f"{counts['pruned']} pruned, {counts['failed']} failed | {best}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        folds = trial.last_result.get("folds_done", 0)
        status = "completed" if folds >= self.n_folds else "pruned"
        detail = "" if status == "completed" else f" at fold {folds}/{self.n_folds}"
        self._finish(trial, status, detail)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.log(
            f"{self._elapsed()} trial {trial.trial_id} crashed; retrying from its last "
            f"finished fold ({_error_line(trial) or 'see the trial error file'})"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        reason = trial.last_result.get("failure") or _error_line(trial) or "unknown error"
        self._finish(trial, "failed", f": {reason}")


class TrackingCallback(Callback):
    """Logs each finished trial as an MLflow child run as soon as it finishes."""

    def __init__(self, tracker, *, n_folds: int, objective: str) -> None:
        self.tracker, self.n_folds, self.objective = tracker, n_folds, objective

    def on_trial_complete(self, iteration, trials, trial, **info):
        folds = trial.last_result.get("folds_done", 0)
        status = "completed" if folds >= self.n_folds else "pruned"
        self._log(trial, status)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._log(trial, "failed")

    def _log(self, trial, status: str) -> None:
        rec = record_of(trial, trial.last_result, n_folds=self.n_folds, status=status)
        log_record(self.tracker, rec, objective=self.objective)
