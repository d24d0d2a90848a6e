"""The Ray Tune side of a sweep: the scheduler, the Tuner (new or restored) and its run.

``make_tuner`` builds a new ``tune.Tuner`` (FoldOptunaSearch, orchestrator/sweep/study_search.py,
with the study in
``results/<name>/optuna.db``, FoldRaceASHA or the median rule, a checkpoint per fold) or
restores the one a ``--resume`` continues; ``fit`` runs it, leaving Ctrl-C working after.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import optuna
from ray import tune
from ray.tune.logger import JsonLoggerCallback

from orchestrator.runtime.ray_compat import use_callbacks_after_restore
from orchestrator.sweep.schedulers import FoldMedianStoppingRule, FoldRaceASHA, asha_milestones
from orchestrator.sweep.spaces import to_optuna
from orchestrator.sweep.spec import SweepSpec
from orchestrator.sweep.study_search import FoldOptunaSearch

__all__ = [
    "TunePlan",
    "experiment_path",
    "make_tuner",
    "report_rungs",
    "run_tuner",
    "study_storage",
    "with_json_logger",
]


def run_tuner(tuner, heartbeat):
    """``tuner.fit()`` inside the heartbeat. Ctrl-C, SIGTERM (orchestrator.tune turns it into
    SIGINT) and a spent --time-budget (SIGUSR1) make Tune save its state and return with
    unfinished trials."""
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with heartbeat:
            return tuner.fit()
    finally:
        # Tune leaves its SIGINT handler installed after a run that got no signal, and it
        # only sets a flag nobody reads any more: Ctrl-C must work again.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)


def scheduler(spec: SweepSpec, n_folds: int, objective: str):
    if spec.scheduler == "asha":
        # Rungs at progress grace, grace*eta, ... (progress = folds done + the share of the
        # current fold's epochs): a trial not in the best 1/eta of the trials seen at a rung
        # stops there. With the defaults (0.25, 2) the rungs are a quarter and half way into
        # fold 0, where every trial is on the same fold, then the ends of folds 1, 2 and 4,
        # where running means cover the same folds. On top, the fold race: after each fold a
        # trial more than race_margin behind the best finished trial on the same folds stops
        # (orchestrator/sweep/schedulers.py; measured in benchmarks/README.md).
        return FoldRaceASHA(
            task="classification" if objective == "macro_f1" else "regression",
            n_folds=n_folds,
            race_margin=spec.race_margin,
            time_attr="progress",
            max_t=n_folds,
            grace_period=spec.asha_grace,
            reduction_factor=spec.asha_eta,
        )
    if spec.scheduler == "median":
        return FoldMedianStoppingRule(time_attr="progress", grace_period=1, min_samples_required=3)
    return None


def report_rungs(spec: SweepSpec, n_folds: int) -> list[float] | None:
    """The rungs a trial reports its mid-fold estimates for (orchestrator.sweep.schedulers.RungPlan):
    ASHA's, none without a scheduler, None (every epoch) for the median rule, which reads
    them all."""
    if spec.scheduler == "asha":
        return asha_milestones(spec.asha_grace, n_folds, spec.asha_eta)
    return None if spec.scheduler == "median" else []


def experiment_path(spec: SweepSpec, out_dir: Path, name: str) -> tuple[str, str]:
    """(storage_path, experiment name) for RunConfig; cloud storage for multi-node."""
    if spec.storage:
        # A URI (s3://, gs://, file://) goes to Tune as it is; a local path must be absolute,
        # or pyarrow reads "shared/sweeps" as a URI without a scheme and fails.
        storage = spec.storage
        if "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        return f"{storage.rstrip('/')}/{name}", "tune"
    return str(out_dir.resolve()), "tune"


def with_json_logger(callbacks: list) -> list:
    """``callbacks`` plus Tune's JSON logger, and none of its CSV and TensorBoard loggers.

    Tune adds all three to every run unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1; each
    writes a line per result on the driver. Tune's own results (``ResultGrid``, a restored
    run) and our tests read ``result.json``; nothing reads ``progress.csv`` or the
    TensorBoard events.
    """
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if any(isinstance(c, JsonLoggerCallback) for c in callbacks):
        return list(callbacks)
    return [*callbacks, JsonLoggerCallback()]


def study_storage(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'optuna.db').resolve()}"


@dataclass
class TunePlan:
    """What a new Tune run searches with: the searcher, the scheduler, how many trials, and
    (a universe) how its trials are named. A single sweep's is ``sweep_plan``'s."""

    searcher: object
    scheduler: object
    num_samples: int
    trial_name: object = None  # Tune's trial_name_creator (None: Tune's own names)


class _NoRestoreAdvice(logging.Filter):
    """Tune's "Resume experiment with: Tuner.restore(...)" after Ctrl-C is a second, wrong way
    to continue a sweep: the command prints its own (``--resume --name``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


_RESTORE_FILTER = _NoRestoreAdvice()


def sweep_plan(spec: SweepSpec, space, *, mode, objective, n_folds, name, out_dir) -> TunePlan:
    """One sweep's plan: FoldOptunaSearch with its study in ``out_dir/optuna.db`` and the
    scheduler of ``--scheduler``."""
    # The study lives in sqlite next to the leaderboard, so it can be loaded with Optuna:
    # optuna.load_study(study_name=<sweep>, storage="sqlite:///results/<sweep>/optuna.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    logging.getLogger("ray.tune.tune").addFilter(_RESTORE_FILTER)  # once: the same object
    # COMPLETE only for trials that ran every fold, PRUNED/FAIL otherwise (the leaderboard's
    # statuses), intermediate values at fold ends: orchestrator/sweep/study_search.py.
    searcher = FoldOptunaSearch(
        space=to_optuna(space),
        metric="objective",
        mode=mode,
        seed=spec.seed,
        study_name=name,
        storage=optuna.storages.RDBStorage(study_storage(out_dir)),
    )
    return TunePlan(searcher, scheduler(spec, n_folds, objective), spec.trials)


def make_tuner(
    spec,
    space,
    trainable,
    *,
    mode,
    objective,
    n_folds,
    name,
    out_dir,
    exp,
    callbacks,
    log,
    plan: TunePlan | None = None,
):
    """A new Tuner (``plan``, default ``sweep_plan``) or, on --resume, the one restored."""
    storage_path, exp_name = exp
    exp_path = f"{storage_path}/{exp_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    # One experiment snapshot per fold checkpoint is deliberate (see checkpoint_config):
    # silence Tune's warning that snapshots come more often than every 5 s.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Our own progress lines say what a user needs; Tune's new output engine would add its
    # configuration box and a TensorBoard hint for files this project does not write.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    callbacks = with_json_logger(callbacks)
    if spec.resume and tune.Tuner.can_restore(exp_path):
        log(f"Resuming sweep from {exp_path}: finished trials are kept, unfinished ones go on")
        tuner = tune.Tuner.restore(
            exp_path, trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
        use_callbacks_after_restore(tuner, callbacks)  # this run's, not the pickled ones
        return tuner
    if spec.resume:
        # The driver died before Tune saved anything: no trial ran, start the trials afresh.
        log(f"Nothing of sweep {name!r} ran under Tune yet ({exp_path}); starting its trials")
        (out_dir / "optuna.db").unlink(missing_ok=True)
    if plan is None:
        plan = sweep_plan(
            spec, space, mode=mode, objective=objective, n_folds=n_folds, name=name, out_dir=out_dir
        )
    # Each trial needs cpus_per_trial for each of its training workers.
    per_trial = spec.cpus_per_trial * spec.workers_per_trial
    max_concurrent = spec.max_concurrent or max(
        1, int((spec.num_cpus or os.cpu_count() or 1) // per_trial)
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric="objective",
            mode=mode,
            search_alg=plan.searcher,
            scheduler=plan.scheduler,
            num_samples=plan.num_samples,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=plan.trial_name,
        ),
        run_config=tune.RunConfig(
            name=exp_name,
            storage_path=storage_path,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_retries),
            # Each fold checkpoint holds every finished fold, so the newest is all a retry
            # needs. num_to_keep=1 also makes Tune snapshot the experiment state right after
            # each fold checkpoint and wait for its upload to --storage, so a driver killed
            # by SIGKILL (OOM, lost head node) loses no finished fold: --resume goes on from
            # each trial's newest fold. Without it the snapshot is taken every >= 10 s, and
            # trials that finished since were re-run or lost on --resume.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
