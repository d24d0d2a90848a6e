"""MLflow tracking of a sweep: one parent run per sweep, one child run per trial.

The driver owns every MLflow write. Trials run in Ray worker processes and hand their results
back through Ray Tune; the driver then calls :meth:`SweepTracker.log_trial`. So a local sqlite
store never sees two writers, and no trial process needs MLflow state.

Tracking never stops a sweep: if the store is unreachable or an MLflow call fails, the tracker
prints one line and turns into a no-op.

With the default store (``results/mlflow.db``) no server is needed to browse the runs::

    mlflow ui --backend-store-uri sqlite:///results/mlflow.db
"""

from __future__ import annotations

import logging
import numbers
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH
from requests.exceptions import RequestException
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.tracking.store import (
    TRIAL_ID_TAG,
    artifact_location,
    as_text,
    child_runs,
    fast_fail_http,
    find_parent,
    now_ms,
    short_reason,
    sqlite_path,
    trial_id,
    truncate,
)
from trainables.disk import disk_failure

__all__ = [
    "TRACKING_ERRORS",
    "SweepTracker",
    "default_tracking_uri",
    "find_child_runs",
    "ui_hint",
]

# The failures a tracking store can cause; anything else is a bug and keeps its traceback.
TRACKING_ERRORS = (MlflowException, RequestException, SQLAlchemyError, OSError)

# Trial statuses that mean the trial itself broke (its child run ends FAILED, not FINISHED).
_FAILED_TRIAL_STATUSES = frozenset({"ERROR", "FAILED"})


def default_tracking_uri(results_dir: Path) -> str:
    """The sqlite store ``<results_dir>/mlflow.db`` as an absolute MLflow tracking URI.

    Browse it without a server: ``mlflow ui --backend-store-uri sqlite:///results/mlflow.db``.
    """
    return f"sqlite:///{Path(results_dir).resolve().as_posix()}/mlflow.db"


def ui_hint(uri: str) -> str:
    """One line telling the user how to look at the runs stored at ``uri``."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}"


def find_child_runs(uri: str, experiment: str, parent_run_name: str) -> list[Run]:
    """The active child runs of the latest parent run named ``parent_run_name``.

    Returns ``[]`` when the experiment or the parent does not exist. Unlike the tracker this
    helper raises MLflow's own errors: it is for tests and for inspecting a store.
    """
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    parent = find_parent(client, exp.experiment_id, parent_run_name)
    if parent is None:
        return []
    return child_runs(client, exp.experiment_id, parent.info.run_id)


class SweepTracker:
    """Context manager recording one sweep as a parent run with one child run per trial.

    ``resume=True`` reuses the latest parent run named ``run_name`` (if any), and
    :meth:`log_trial` skips trial ids that already have a finished child run there.
    ``log`` receives the one-line notes (an unreachable store, a truncated parameter).
    """

    def __init__(
        self,
        uri: str,
        *,
        experiment: str,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, Any] | None = None,
        resume: bool = False,
        log: Callable[[str], object] = print,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.resume = resume
        self._params = dict(params)
        self._tags = dict(tags or {})
        self._log = log
        self._client: MlflowClient | None = None
        self.enabled = True
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.logged_trial_ids: set[str] = set()
        # Child runs of trials an interrupted run logged as 'interrupted': a resumed run
        # finishes them in the same child run (one run per trial).
        self.reusable_runs: dict[str, str] = {}
        self.close_status: str | None = None  # the parent's final status; None: by exception

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SweepTracker:
        # MLflow's store logs its schema set-up at INFO on every new sqlite file: not news.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # ... and every failed write at ERROR with its traceback, which _guard reports (or,
        # for a full disk, the sweep stops on) in one line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        try:
            self._create_store_dir()
            client = MlflowClient(tracking_uri=self.uri)
            with fast_fail_http():
                # The first call that reaches the store: it decides whether tracking is on.
                self.experiment_id = self._get_or_create_experiment(client)
        except TRACKING_ERRORS as err:
            self._disable(f"MLflow tracking at {self.uri} is unreachable ({short_reason(err)})")
            return self
        self._client = client
        self._guard("starting the parent run", self._start_parent)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = self.close_status or "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self._guard("closing the parent run", lambda c: c.set_terminated(self._parent, status))

    # -- logging ---------------------------------------------------------------------------

    def log_trial(
        self,
        trial_id: str,
        *,
        params: Mapping[str, Any],
        fold_metrics: Sequence[Mapping[str, float]],
        summary: Mapping[str, float],
        status: str,
        reason: str | None = None,
        artifacts: Sequence[Path] | None = None,
    ) -> str | None:
        """Log one trial as a child run; returns its run id, or None if skipped or disabled.

        Fold ``k``'s metric ``m`` is logged twice: as the series ``fold_<m>`` at step ``k``
        (one plot across folds) and as ``fold<k>_<m>`` (one column per fold in the table).
        """
        if not self.enabled or trial_id in self.logged_trial_ids:
            return None

        def write(client: MlflowClient) -> str:
            run_id, to_log = self.reusable_runs.get(trial_id), params
            if run_id is None:
                run = client.create_run(
                    self.experiment_id,
                    run_name=trial_id,
                    tags={MLFLOW_PARENT_RUN_ID: self._parent, TRIAL_ID_TAG: trial_id},
                )
                run_id = run.info.run_id
            else:
                client.update_run(run_id, status="RUNNING")
                to_log = {}  # logged the first time; MLflow refuses to log them again
            rows = [(k, v, 0) for k, v in summary.items()]
            for fold, values in enumerate(fold_metrics):
                for name, value in values.items():
                    rows += [(f"fold_{name}", value, fold), (f"fold{fold}_{name}", value, 0)]
            tags = {"status": status}
            if reason is not None:
                tags["failure_reason"] = reason
            client.log_batch(
                run_id,
                metrics=self._metrics(rows),
                params=self._to_params(to_log),
                tags=[RunTag(k, truncate(v, MAX_TAG_VAL_LENGTH)) for k, v in tags.items()],
            )
            self._log_artifacts(client, run_id, artifacts or ())
            client.set_terminated(run_id, _run_status(status))
            return run_id

        run_id = self._guard(f"logging trial {trial_id}", write)
        if run_id is not None:
            self.reusable_runs.pop(trial_id, None)
            if status == "interrupted":
                self.reusable_runs[trial_id] = run_id
            else:
                self.logged_trial_ids.add(trial_id)
        return run_id

    def log_summary(self, metrics: Mapping[str, float], artifacts: Sequence[Path] = ()) -> None:
        """Log the sweep's summary metrics and files (leaderboard, best config) to the parent."""

        def write(client: MlflowClient) -> None:
            client.log_batch(
                self._parent,
                metrics=self._metrics((k, v, 0) for k, v in metrics.items()),
            )
            self._log_artifacts(client, self._parent, artifacts)

        self._guard("logging the sweep summary", write)

    # -- internals -------------------------------------------------------------------------

    @property
    def _parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("SweepTracker is used outside its `with` block")
        return self.parent_run_id

    def _guard(self, action: str, fn: Callable[[MlflowClient], Any]) -> Any:
        """Run one MLflow write; on a store failure warn once and stop tracking."""
        if not self.enabled or self._client is None:
            return None
        try:
            return fn(self._client)
        except TRACKING_ERRORS as err:
            if disk_failure(err):  # the sweep's own files are next: stop it in one line
                raise
            self._disable(
                f"MLflow tracking at {self.uri} failed while {action} ({short_reason(err)})"
            )
            return None

    def _disable(self, what: str) -> None:
        if self.enabled:
            self._log(f"{what}; the sweep goes on without tracking")
        self.enabled = False
        self._client = None

    def _create_store_dir(self) -> None:
        # sqlite creates the file but not its folder.
        db = sqlite_path(self.uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)

    def _get_or_create_experiment(self, client: MlflowClient) -> str:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return client.create_experiment(
                self.experiment, artifact_location=artifact_location(self.uri)
            )
        if exp.lifecycle_stage == "deleted":
            # A deleted experiment keeps its name reserved; bring it back rather than fail.
            client.restore_experiment(exp.experiment_id)
            self._log(f"MLflow experiment {self.experiment!r} was deleted; restored it")
        return exp.experiment_id

    def _start_parent(self, client: MlflowClient) -> None:
        parent = find_parent(client, self.experiment_id, self.run_name) if self.resume else None
        if parent is None:
            run = client.create_run(
                self.experiment_id,
                run_name=self.run_name,
                tags={k: truncate(as_text(v), MAX_TAG_VAL_LENGTH) for k, v in self._tags.items()},
            )
            self.parent_run_id = run.info.run_id
            client.log_batch(self.parent_run_id, params=self._to_params(self._params))
            return

        self.parent_run_id = parent.info.run_id
        client.update_run(self.parent_run_id, status="RUNNING")
        for child in child_runs(client, self.experiment_id, self.parent_run_id):
            if child.info.status == "RUNNING":
                # The driver died half-way through logging this trial: drop it, log it again.
                client.delete_run(child.info.run_id)
            elif child.data.tags.get("status") == "interrupted":
                self.reusable_runs[trial_id(child)] = child.info.run_id
            else:
                self.logged_trial_ids.add(trial_id(child))
        # MLflow refuses to change a logged param: add only new ones, report changed ones.
        logged = parent.data.params
        wanted = self._to_params_dict(self._params)
        changed = sorted(k for k, v in wanted.items() if logged.get(k, v) != v)
        if changed:
            self._log(f"resumed run {self.run_name!r} keeps its first logged values of {changed}")
        new = [Param(k, v) for k, v in wanted.items() if k not in logged]
        client.log_batch(self.parent_run_id, params=new)

    def _metrics(self, rows: Iterable[tuple[str, Any, int]]) -> list[Metric]:
        """MLflow metrics from (key, value, step); a value that is not a number is left out."""
        now, out = now_ms(), []
        for key, value, step in rows:
            if isinstance(value, numbers.Real):
                out.append(Metric(key, float(value), now, step))
            else:
                self._log(f"MLflow metric {key!r}={value!r} is not a number; not logged")
        return out

    def _to_params_dict(self, params: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for key, value in params.items():
            text = as_text(value)
            if len(text) > MAX_PARAM_VAL_LENGTH:
                self._log(
                    f"MLflow param {key!r} has {len(text)} characters; "
                    f"logged truncated to MLflow's limit of {MAX_PARAM_VAL_LENGTH}"
                )
                text = truncate(text, MAX_PARAM_VAL_LENGTH)
            out[str(key)] = text
        return out

    def _to_params(self, params: Mapping[str, Any]) -> list[Param]:
        return [Param(k, v) for k, v in self._to_params_dict(params).items()]

    def _log_artifacts(self, client: MlflowClient, run_id: str, paths: Sequence[Path]) -> None:
        for path in map(Path, paths):
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                client.log_artifact(run_id, str(path))
            else:
                # A missing file is the caller's slip, not a store failure: keep tracking on.
                self._log(f"MLflow artifact {path} does not exist; not logged")


def _run_status(trial_status: str) -> str:
    """MLflow's run status for a trial's: failed -> FAILED, interrupted -> KILLED."""
    if trial_status.upper() in _FAILED_TRIAL_STATUSES:
        return "FAILED"
    return "KILLED" if trial_status == "interrupted" else "FINISHED"
