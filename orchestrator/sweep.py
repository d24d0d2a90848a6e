"""Run a sweep: Ray Tune + OptunaSearch over purged CV folds, results in results/<name>/.

``run_sweep(SweepSpec(...))`` is what ``python -m orchestrator.tune`` calls; tests call it
directly. It opens Ray and MLflow, and closes what it opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import ray
import yaml
from ray import tune
from ray.tune.schedulers import MedianStoppingRule
from ray.tune.search.optuna import OptunaSearch

from orchestrator.jobs import job_metadata
from orchestrator.leaderboard import (
    STATUSES,
    TrialRecord,
    build_leaderboard,
    read_leaderboard,
    write_results,
)
from orchestrator.objective import objective_of
from orchestrator.outcome import (
    SweepOutcome,
    checkpoints_of,
    collect_records,
    oof_frame,
    print_summary,
    reconcile_study,
)
from orchestrator.prepare import prepare_sweep_data
from orchestrator.progress import (
    Heartbeat,
    ProgressCallback,
    StatusCallback,
    TrackingCallback,
    log_record,
)
from orchestrator.ray_auth import auth_enabled, login_hint
from orchestrator.ray_compat import use_callbacks_after_restore
from orchestrator.record import (
    DECIDING,
    RUNTIME,
    SweepRecord,
    absolute_data,
    check_resume,
    read_record,
    refuse_existing,
    resume_hint,
)
from orchestrator.schedulers import FoldRaceASHA
from orchestrator.spaces import SearchSpace, load_space, space_from_dict, space_to_dict, to_optuna
from orchestrator.spec import (  # noqa: F401 - re-exported: the sweep's public names
    DRIVER_CPU,
    SCHEDULERS,
    SweepSpec,
    base_config,
    check_space,
    cuda_available,
    longest_sequence,
    resolve_space,
    space_note,
)
from orchestrator.sweep_data import (
    data_record,
    load_sweep_bars,
    reload_sweep_bars,
    source_name,
    write_snapshot,
)
from orchestrator.tracking import SweepTracker, default_tracking_uri
from orchestrator.trial import run_trial
from trainables.config import TrainConfig
from trainables.errors import ConfigError

__all__ = ["SCHEDULERS", "SweepOutcome", "SweepSpec", "run_sweep"]

_DEFAULT_RESULTS = "results"


def _start_ray(spec: SweepSpec, log, metadata: dict) -> tuple[bool, str | None]:
    """Attach to ``--address`` or start a local Ray; returns (we started it, dashboard url)."""
    if ray.is_initialized():
        return False, None
    with _keep_sigterm_handler():
        return _init_ray(spec, log, metadata)


@contextlib.contextmanager
def _keep_sigterm_handler():
    """Ray's core installs its own SIGTERM handler (a stack dump, then abort); put back the
    Python one the CLI installed, which stops a sweep the way Ctrl-C does."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        main = threading.current_thread() is threading.main_thread()
        if main and callable(handler):
            signal.signal(signal.SIGTERM, handler)


def _init_ray(spec: SweepSpec, log, metadata: dict) -> tuple[bool, str | None]:
    # The dashboard's Jobs page lists this driver under metadata["job_name"].
    job_config = ray.job_config.JobConfig(metadata=metadata)
    if spec.address:
        try:
            ctx = ray.init(address=spec.address, log_to_driver=False, job_config=job_config)
        except (ConnectionError, ray.exceptions.AuthenticationError) as err:
            # The usual causes: no Ray at that address, or a token-auth cluster (such as
            # cluster.yaml's) refusing a driver that lacks its token.
            raise ConfigError(
                f"--address {spec.address}: cannot attach to a Ray cluster ({err}). Check that "
                f"Ray runs there and, for a cluster with token authentication, that "
                f"RAY_AUTH_MODE=token is set and its token is in ~/.ray/auth_token "
                f"(or RAY_AUTH_TOKEN_PATH)"
            ) from None
    else:
        # "local": a Ray of our own even where `ray start` runs one (plain ray.init() would
        # attach to it, and refuse num_cpus).
        ctx = ray.init(
            address="local",
            job_config=job_config,
            num_cpus=spec.num_cpus or os.cpu_count(),
            include_dashboard=spec.dashboard,
            dashboard_host="127.0.0.1",
            log_to_driver=False,
        )
    url = getattr(ctx, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    log(
        f"Ray: {'attached to ' + spec.address if spec.address else 'local'}; "
        f"{ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
        f"{ray.cluster_resources().get('GPU', 0):.0f} GPUs" + (f"; dashboard {url}" if url else "")
    )
    if url and auth_enabled():
        log(f"Ray dashboard: token authentication on; {login_hint()}")
    return True, url


def _scheduler(spec: SweepSpec, n_folds: int, objective: str):
    if spec.scheduler == "asha":
        # Rungs at progress grace, grace*eta, ... (progress = folds done + the share of the
        # current fold's epochs): a trial not in the best 1/eta of the trials seen at a rung
        # stops there. With the defaults (0.25, 2) the rungs are a quarter and half way into
        # fold 0, where every trial is on the same fold, then the ends of folds 1, 2 and 4,
        # where running means cover the same folds. On top, the fold race: after each fold a
        # trial more than race_margin behind the best finished trial on the same folds stops
        # (orchestrator/schedulers.py; measured in benchmarks/README.md).
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
        return MedianStoppingRule(time_attr="progress", grace_period=1, min_samples_required=3)
    return None


def _experiment_path(spec: SweepSpec, out_dir: Path, name: str) -> tuple[str, str]:
    """(storage_path, experiment name) for RunConfig; cloud storage for multi-node."""
    if spec.storage:
        # A URI (s3://, gs://, file://) goes to Tune as it is; a local path must be absolute,
        # or pyarrow reads "shared/sweeps" as a URI without a scheme and fails.
        storage = spec.storage
        if "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        return f"{storage.rstrip('/')}/{name}", "tune"
    return str(out_dir.resolve()), "tune"


def run_sweep(spec: SweepSpec, *, log=print) -> SweepOutcome:
    """Run (or, with ``spec.resume``, continue) a sweep; closes what it opens."""
    spec = resolve_space(spec)
    name = spec.sweep_name
    out_dir = Path(spec.results_dir) / name
    previous = None
    if spec.resume:
        previous = read_record(out_dir)  # before Ray, MLflow or any folder is touched
        check_resume(previous, {k: getattr(spec, k) for k in DECIDING})
        if previous.get("status") == "finished":
            return _already_finished(spec, out_dir, previous, log)
    else:
        refuse_existing(out_dir, name)
    space = space_from_dict(previous["space_definition"]) if previous else load_space(spec.space)
    base = base_config(spec, space)
    check_space(space, base)
    objective, mode = objective_of(base.task)
    if previous:  # the rows the sweep started on: its snapshot, or its source up to its end
        bars, _ = reload_sweep_bars(out_dir, previous, spec, space, base, purpose="resume")
    else:
        bars = load_sweep_bars(spec, space, base)
    data = prepare_sweep_data(
        base,
        data=spec.data,
        ticker=spec.ticker,
        cv=spec.cv,
        n_splits=spec.folds,
        seq_len_max=longest_sequence(space, base),
        n_bars=spec.n_bars,
        data_seed=spec.seed,
        inner_val=spec.inner_val,
        bars=bars,
        source=source_name(spec),
        timezone=spec.timezone,
        dst=spec.dst,
        max_jump=spec.max_jump,
    )
    n_folds = len(data.folds)
    log(
        f"Sweep {name!r}: space {space.name} ({len(space.params)} params), {spec.trials} trials, "
        f"objective {objective} ({mode}) over {n_folds} folds" + (" (resumed)" if previous else "")
    )
    if space_note(spec):
        log(space_note(spec))
    log(data.summary)
    tracking_uri = spec.mlflow_uri or default_tracking_uri(Path(spec.results_dir))
    storage_path, exp_name = _experiment_path(spec, out_dir, name)
    exp_path = f"{storage_path}/{exp_name}"
    hint = resume_hint(name, spec.results_dir, _DEFAULT_RESULTS)
    runtime = {k: getattr(spec, k) for k in RUNTIME if hasattr(spec, k)}
    if previous:
        record = SweepRecord(out_dir, previous)
        record.update(status="running", experiment_path=exp_path, **runtime)
    else:
        kept = data_record(spec, bars)  # no password; the last bar read; the rows' hash
        record = SweepRecord.create(
            out_dir,
            replace(spec, name=name, data=absolute_data(kept["data"]), end=kept["end"]),
            objective=objective,
            mode=mode,
            data_source=absolute_data(kept["data"]) or "built-in",
            data_fingerprint=kept["data_fingerprint"],
            data_summary=data.summary,
            space_definition=space_to_dict(space),
            test_first_row=data.test_first_row,
            timestamps=data.timestamps,  # how the data's times were read (UTC conversion)
            experiment_path=exp_path,
            resume_command=hint,
        )
    metadata = job_metadata(
        name=name,
        space=space.name,
        trials=spec.trials,
        objective=f"{objective} ({mode})",
        results=out_dir,
    )
    started, dashboard_url = _start_ray(spec, log, metadata)
    try:
        if not spec.address:
            _check_fits(spec)
        if spec.snapshot and not previous:  # a resumed sweep keeps the rows it started on
            log(f"Snapshot of the rows read: {write_snapshot(bars, out_dir)}")
        outcome = _run(spec, space, base, data, record, exp=(storage_path, exp_name), log=log)
    finally:
        if started:
            ray.shutdown()
    outcome.dashboard_url, outcome.tracking_uri = dashboard_url, tracking_uri
    print_summary(outcome, objective, mode, log)
    return outcome


def _run(spec, space, base, data, record, *, exp, log) -> SweepOutcome:
    """The Tune run itself, inside a started Ray: callbacks, fit, records, result files."""
    name, out_dir = record.data["name"], record.path.parent
    objective, mode = objective_of(base.task)
    n_folds = len(data.folds)
    tracking_uri = spec.mlflow_uri or default_tracking_uri(Path(spec.results_dir))
    status = StatusCallback(record, n_folds=n_folds)
    heartbeat = Heartbeat(
        n_trials=spec.trials,
        n_folds=n_folds,
        objective=objective,
        mode=mode,
        log=log,
        done=status.statuses,
        budget=spec.time_budget,
    )
    with SweepTracker(
        tracking_uri,
        experiment="lstm-sweeps",
        run_name=name,
        params=_spec_params(spec, space, base),
        resume=spec.resume,
        log=log,
    ) as tracker:
        trainable = tune.with_parameters(
            run_trial,
            data=data,
            base=base.to_dict(),
            workers=spec.workers_per_trial,
            cpus=spec.cpus_per_trial,
            gpus=spec.gpus_per_trial,
            fail_at_fold=spec.fail_at_fold,
        )
        trainable = tune.with_resources(trainable, _trial_resources(spec))
        callbacks = [
            status,
            ProgressCallback(heartbeat, log=log),
            TrackingCallback(tracker, status, objective=objective),
        ]
        tuner = _make_tuner(
            spec,
            space,
            trainable,
            mode=mode,
            objective=objective,
            n_folds=n_folds,
            name=name,
            out_dir=out_dir,
            exp=exp,
            callbacks=callbacks,
            log=log,
        )
        start = time.perf_counter()
        # Ctrl-C, SIGTERM (tune.py turns it into SIGINT) and a spent --time-budget
        # (SIGUSR1): Tune saves the experiment state and returns with unfinished trials.
        sigint = signal.getsignal(signal.SIGINT)
        try:
            with heartbeat:
                results = tuner.fit()
        finally:
            # Tune leaves its SIGINT handler installed after a run that got no signal, and
            # it only sets a flag nobody reads any more: Ctrl-C must work again.
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, sigint)
        records = collect_records(results, status.statuses)
        interrupted = len(records) < spec.trials or any(r.status == "interrupted" for r in records)
        # Trials that finished earlier were logged as they finished (the tracker skips ids
        # it logged); interrupted ones are logged as such and updated when resumed.
        for rec in records:
            log_record(tracker, rec, objective=objective)
        board = build_leaderboard(records, n_folds=n_folds, objective=objective, mode=mode)
        best = _best_config(board, records, base)
        oof = oof_frame(records, checkpoints_of(results), data)
        files = write_results(
            out_dir, leaderboard=board, best_config=best, audit=data.audit, oof=oof
        )
        files["sweep.json"] = record.path
        files["tune"] = Path(f"{exp[0]}/{exp[1]}")
        if not interrupted:
            reconcile_study(_study_storage(out_dir), name, records, objective)
        ranked = board[board["rank"].notna()] if not board.empty else board
        if not ranked.empty:
            tracker.log_summary(
                {
                    "best_objective": float(ranked.iloc[0]["objective"]),
                    "trials_completed": int((board.status == "completed").sum()),
                },
                [p for k, p in files.items() if k != "tune"],
            )
        tracker.close_status = "KILLED" if interrupted else "FINISHED"
    wall = float(record.data.get("wall_seconds") or 0.0) + time.perf_counter() - start
    stopped = heartbeat.budget_spent and interrupted
    record.update(
        status="interrupted" if interrupted else "finished",
        stopped_by="time budget" if stopped else None,
        wall_seconds=wall,
        counts={s: int((board.status == s).sum()) for s in STATUSES} if not board.empty else {},
    )
    failures = [r for r in records if r.status == "failed"]
    return SweepOutcome(
        name,
        out_dir,
        board,
        best,
        files,
        None,
        tracking_uri,
        n_folds,
        interrupted=interrupted,
        stopped_by_budget=stopped,
        resume_hint=record.data.get("resume_command", ""),
        first_failure=(
            f"trial {failures[0].trial_id}: {failures[0].reason}"
            if failures and len(failures) == len(records) == spec.trials
            else None
        ),
    )


def _already_finished(spec: SweepSpec, out_dir: Path, record: dict, log) -> SweepOutcome:
    """--resume of a sweep that finished: nothing to run; say so and show its answer again."""
    log(f"Sweep {record.get('name')!r} already finished ({out_dir}/sweep.json); its results:")
    board = read_leaderboard(out_dir)
    best = out_dir / "best_config.yaml"
    names = (
        "leaderboard.parquet",
        "leaderboard.csv",
        "fold_audit.csv",
        "sweep.json",
        "oof.parquet",
    )
    files = {n: out_dir / n for n in names if (out_dir / n).exists()}
    if best.exists():
        files["best_config.yaml"] = best
    outcome = SweepOutcome(
        record["name"],
        out_dir,
        board,
        yaml.safe_load(best.read_text()) if best.exists() else None,
        files,
        None,
        spec.mlflow_uri or record.get("mlflow_uri") or default_tracking_uri(Path(spec.results_dir)),
        len(pd.read_csv(out_dir / "fold_audit.csv")),
        already_finished=True,
    )
    print_summary(outcome, record["objective"], record["mode"], log)
    return outcome


def _study_storage(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'optuna.db').resolve()}"


def _check_fits(spec: SweepSpec) -> None:
    """One trial must fit on a local Ray, or Tune would wait for it forever."""
    cpus = ray.cluster_resources().get("CPU", 0.0)
    gpus = ray.cluster_resources().get("GPU", 0.0)
    need_cpu = spec.cpus_per_trial * spec.workers_per_trial
    need_gpu = spec.gpus_per_trial * spec.workers_per_trial
    if spec.workers_per_trial > 1:
        need_cpu += DRIVER_CPU
    if need_cpu > cpus + 1e-9 or need_gpu > gpus + 1e-9:
        raise ConfigError(
            f"one trial needs {need_cpu:g} CPUs and {need_gpu:g} GPUs "
            f"(--workers-per-trial={spec.workers_per_trial} x --cpus-per-trial="
            f"{spec.cpus_per_trial:g}, --gpus-per-trial={spec.gpus_per_trial:g}) but this Ray "
            f"has {cpus:g} CPUs and {gpus:g} GPUs; lower them or add resources"
        )


def _trial_resources(spec: SweepSpec) -> dict:
    if spec.workers_per_trial > 1:
        # The trial only drives a TorchTrainer, whose workers ask for the real resources.
        return {"cpu": DRIVER_CPU}
    return {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}


def _make_tuner(
    spec, space, trainable, *, mode, objective, n_folds, name, out_dir, exp, callbacks, log
):
    storage_path, exp_name = exp
    exp_path = f"{storage_path}/{exp_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    # One experiment snapshot per fold checkpoint is deliberate (see checkpoint_config):
    # silence Tune's warning that snapshots come more often than every 5 s.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
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
    # The study lives in sqlite next to the leaderboard, so it can be loaded with Optuna:
    # optuna.load_study(study_name=<sweep>, storage="sqlite:///results/<sweep>/optuna.db")
    searcher = OptunaSearch(
        space=to_optuna(space),
        metric="objective",
        mode=mode,
        seed=spec.seed,
        study_name=name,
        storage=optuna.storages.RDBStorage(_study_storage(out_dir)),
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
            search_alg=searcher,
            scheduler=_scheduler(spec, n_folds, objective),
            num_samples=spec.trials,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
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


def _spec_params(spec: SweepSpec, space: SearchSpace, base: TrainConfig) -> dict:
    return {
        "space": space.name,
        "cv": spec.cv,
        "folds": spec.folds,
        "trials": spec.trials,
        "seed": spec.seed,
        "scheduler": spec.scheduler,
        "data": source_name(spec),
        "task": base.task,
        "epochs": base.epochs,
        "target_col": base.target_col,
        "objective": objective_of(base.task)[0],
        "inner_val": spec.inner_val,
    }


def _best_config(board, records: list[TrialRecord], base: TrainConfig) -> dict | None:
    if board.empty or not board["rank"].notna().any():
        return None
    best_id = board.iloc[0]["trial_id"]
    params = next(r.params for r in records if r.trial_id == best_id)
    return json.loads(json.dumps(TrainConfig.from_dict({**base.to_dict(), **params}).to_dict()))
