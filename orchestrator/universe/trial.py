"""The Tune trainable of a universe, in a module of its own: Ray workers import only this
(and orchestrator.sweep.trial), not the driver's modules (MLflow, the records, the summary)."""

from __future__ import annotations

import ray

from orchestrator.records.names import encode_ticker
from orchestrator.sweep.trial import run_trial

__all__ = ["trial_name", "universe_trial"]


def universe_trial(config: dict, *, data: dict, fail_ticker: str | None = None, **kw) -> None:
    """``run_trial`` on the trial's ticker's data (``data``: ticker -> the ObjectRef of its
    SweepData, read from the object store; nothing of another ticker stays in the worker).
    ``fail_ticker``: a test hook, every trial (and retry) of that ticker crashes."""
    if config["ticker"] == fail_ticker:
        raise RuntimeError(f"injected fault: every trial of ticker {fail_ticker} crashes")
    run_trial(config, data=ray.get(data[config["ticker"]]), **kw)


def trial_name(trial) -> str:
    """A trial's name in Tune (and its folder's): the ticker's folder name, then its id."""
    return f"run_trial_{encode_ticker(str(trial.config['ticker']))}_{trial.trial_id}"
