"""Run a sweep: Ray Tune + OptunaSearch over purged CV folds, results in results/<name>/.

``run_sweep(SweepSpec(...))`` is what ``python -m orchestrator.tune`` calls; tests call it
directly. It opens Ray and MLflow, and closes what it opened.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import ray
import yaml
from ray import tune

from orchestrator.records.folder_lock import FolderLock
from orchestrator.records.leaderboard import (
    STATUSES,
    TrialRecord,
    build_leaderboard,
    previous_best,
    read_leaderboard,
    trial_rows,
    with_baselines,
    write_results,
)
from orchestrator.records.state_seal import resealed
from orchestrator.records.sweep_record import (
    DECIDING,
    RUNTIME,
    SweepRecord,
    absolute_data,
    check_resume,
    read_record,
    refuse_existing,
    resume_hint,
)
from orchestrator.runtime.ray_session import check_fits, start_ray, trial_resources
from orchestrator.runtime.ray_start import BackgroundRay
from orchestrator.stats.objective import objective_of
from orchestrator.sweep.cv_baselines import CVBaseline, cv_baselines, describe
from orchestrator.sweep.data_source import (
    data_record,
    load_sweep_bars,
    reload_sweep_bars,
    source_name,
    write_snapshot,
)
from orchestrator.sweep.jobs import job_metadata
from orchestrator.sweep.preflight import DiskWatch, StartGuard, check_request
from orchestrator.sweep.prepare import SweepData, prepare_sweep_data
from orchestrator.sweep.progress import (
    Heartbeat,
    ProgressCallback,
    StatusCallback,
    TrackingCallback,
    log_record,
)
from orchestrator.sweep.results import (
    SweepOutcome,
    checkpoints_of,
    collect_records,
    oof_frame,
    print_summary,
    reconcile_study,
)
from orchestrator.sweep.spaces import SearchSpace, load_space, space_from_dict, space_to_dict
from orchestrator.sweep.spec import (  # noqa: F401 - re-exported: the sweep's public names
    DRIVER_CPU,
    SCHEDULERS,
    SweepSpec,
    base_config,
    check_space,
    cuda_available,
    longest_sequence,
    resolve_space,
    set_wins,
    space_note,
)
from orchestrator.sweep.trial import run_trial
from orchestrator.sweep.tuner import (
    experiment_path,
    make_tuner,
    report_rungs,
    run_tuner,
    study_storage,
)
from orchestrator.tracking.writer_thread import BackgroundTracker
from trainables.parameters.train_config import ALIASES, TrainConfig

# spec_params, sweep_data_for, write_outcome: the steps a universe shares with a sweep.
__all__ = [
    "SCHEDULERS",
    "SweepOutcome",
    "SweepSpec",
    "run_sweep",
    "spec_params",
    "sweep_data_for",
    "write_outcome",
]

_DEFAULT_RESULTS = "results"
EXPERIMENT = "lstm-sweeps"  # the MLflow experiment of every sweep (and its promotions)


def run_sweep(spec: SweepSpec, *, log=print, fast_start: bool = False) -> SweepOutcome:
    """Run (or, with ``spec.resume``, continue) a sweep; closes what it opens. The sweep owns
    its folder while it runs (orchestrator/records/folder_lock.py).

    ``fast_start`` (the command line's): a local Ray starts on a thread of its own while the
    data are read and checked (orchestrator/runtime/ray_start.py); a data error is said at once,
    and the command shuts that Ray down before it exits.
    """
    spec = resolve_space(spec)
    out_dir = Path(spec.results_dir) / spec.sweep_name
    check_request(spec, out_dir)  # name, writable folder, free space, resources: no work yet
    lock = FolderLock(out_dir, purpose="resume" if spec.resume else "sweep")
    try:
        return _owned_sweep(spec, out_dir, lock, log, fast_start=fast_start)
    finally:
        lock.release()


def _owned_sweep(
    spec: SweepSpec, out_dir: Path, lock: FolderLock, log, *, fast_start: bool
) -> SweepOutcome:
    previous = _previous(spec, out_dir, lock, log)
    if previous and previous.get("status") == "finished":
        return _already_finished(spec, out_dir, previous, log)
    hint = resume_hint(out_dir.name, spec.results_dir, _DEFAULT_RESULTS)
    with StartGuard(
        out_dir, lock=lock, previous_status=_status(previous), resume_hint=hint
    ) as guard:
        return _start(spec, out_dir, previous, guard, log, fast_start=fast_start)


def _start(spec, out_dir: Path, previous, guard, log, *, fast_start: bool) -> SweepOutcome:
    space, pinned = _space(spec, out_dir, previous, log)
    base = base_config(spec, space)
    check_space(space, base)
    objective, mode = objective_of(base.task)
    metadata = job_metadata(
        name=out_dir.name,
        space=space.name,
        trials=spec.trials,
        objective=f"{objective} ({mode})",
        results=out_dir,
    )
    early = _start_early(spec, metadata) if fast_start else None
    try:
        data, record, baselines = _data_and_record(
            spec, out_dir, previous, space, base, guard, pinned, log
        )
    except BaseException:
        if early is not None:
            early.abandon()
        raise
    started, dashboard_url = early.wait(log) if early else start_ray(spec, log, metadata)
    try:
        if not spec.address:
            check_fits(spec)
        outcome = _run(spec, space, base, data, record, baselines, log=log, guard=guard)
        outcome.dashboard_url = dashboard_url
        outcome.ray_closed = bool(started and dashboard_url and not spec.address)  # below
        # The answer first: Ray's shutdown (a second or more) need not hold it back.
        print_summary(outcome, objective, mode, log)
    finally:
        if started:
            ray.shutdown()
        if early is not None:
            early.stop()
    return outcome


def _start_early(spec: SweepSpec, metadata: dict) -> BackgroundRay | None:
    """A local Ray starting beside the data, for a file or the built-in data; a database
    source loads its driver as it connects, so its rows are read first (ray_start.py)."""
    if ray.is_initialized() or "://" in (spec.data or "") or spec.data_env:
        return None
    return BackgroundRay(spec, metadata).start()


def _data_and_record(spec, out_dir, previous, space, base, guard, pinned, log):
    """(the sweep's arrays, its sweep.json, the CV baselines): everything before Ray is used.
    The record is written last, under the folder's lock (guard.lock), once the data passed."""
    if previous:  # the rows the sweep started on: its snapshot, or its source up to its end
        bars, _ = reload_sweep_bars(out_dir, previous, spec, space, base, purpose="resume")
    else:
        bars = load_sweep_bars(spec, space, base)
    data = sweep_data_for(spec, space, base, bars)
    kept = None if previous else data_record(spec, bars)  # the rows' fingerprint
    # Trials read the sweep's arrays from here on: the bars (a copy of every row) stay in
    # memory only for a snapshot, not for the sweep's hours.
    snapshot = bars if spec.snapshot and not previous else None  # (a resumed sweep has one)
    del bars
    data.compact()
    _announce(spec, space, base, data, resumed=previous is not None, log=log)
    baselines = cv_baselines(data, base, space)  # a few seconds, before any trial
    log(describe(baselines))
    record = guard.record = _open_record(
        spec, out_dir, previous, space, base, data, kept, guard.lock
    )
    record.update(baselines=[b.to_dict() for b in baselines], set_wins=pinned)
    if snapshot is not None:
        log(f"Snapshot of the rows read: {write_snapshot(snapshot, out_dir)}")
    return data, record, baselines


def _space(spec, out_dir: Path, previous: dict | None, log) -> tuple[SearchSpace, list[str]]:
    """The space as recorded (resume), or loaded; a --set of a parameter it samples wins
    and takes it out of the space (said first, recorded: the space is saved without it)."""
    if previous:
        where = str(out_dir / "sweep.json")
        space = space_from_dict(previous.get("space_definition"), source=where)
        return space, list(previous.get("set_wins") or [])
    space, pinned, wins = set_wins(load_space(spec.space), spec.overrides)
    if wins:
        log(wins)
    return space, pinned


def _previous(spec: SweepSpec, out_dir: Path, lock: FolderLock, log) -> dict | None:
    """The record a --resume continues (checked against ``spec``, read once the folder is
    ours); a new sweep's folder must be free. Before Ray, MLflow or any file is touched."""
    if not spec.resume:
        refuse_existing(out_dir, out_dir.name)
        return None
    read_record(out_dir)  # no sweep there: say so before the lock makes a folder
    lock.acquire()
    previous = read_record(out_dir)
    check_resume(previous, {k: getattr(spec, k) for k in DECIDING})
    if previous.get("status") == "running":  # its lock was free: nothing runs it
        log(
            f"{out_dir / 'sweep.json'} says running, but no process holds its lock: its last "
            "run ended without closing it (killed, or its disk was full); going on as with an "
            "interrupted sweep"
        )
    return previous


def _status(previous: dict | None) -> str | None:
    if previous is None:
        return None
    return "interrupted" if previous.get("status") == "running" else previous.get("status")


def sweep_data_for(spec: SweepSpec, space: SearchSpace, base: TrainConfig, bars) -> SweepData:
    return prepare_sweep_data(
        base,
        data=spec.data,
        ticker=spec.ticker,
        cv=spec.cv,
        n_splits=spec.folds,
        sequence_length_max=longest_sequence(space, base),
        n_bars=spec.n_bars,
        data_seed=spec.seed,
        inner_val=spec.inner_val,
        bars=bars,
        source=source_name(spec),
        timezone=spec.timezone,
        dst=spec.dst,
        max_jump=spec.max_jump,
        window_set="sequence_length" in {ALIASES.get(k, k) for k in spec.overrides},
    )


def _announce(spec, space, base, data: SweepData, *, resumed: bool, log) -> None:
    objective, mode = objective_of(base.task)
    log(
        f"Sweep {spec.sweep_name!r}: space {space.name} ({len(space.params)} params), "
        f"{spec.trials} trials, objective {objective} ({mode}) over {len(data.folds)} folds"
        + (" (resumed)" if resumed else "")
    )
    if space_note(spec):
        log(space_note(spec))
    log(data.summary)


def _open_record(
    spec, out_dir, previous, space, base, data, kept: dict | None, lock
) -> SweepRecord:
    """sweep.json, written before Ray starts: created for a new sweep (data recorded without
    a password, the last bar read, the rows' hash), marked running again for a resumed one.
    A new sweep takes its folder's lock here, its first write."""
    exp = "/".join(experiment_path(spec, out_dir, out_dir.name))
    runtime = {k: getattr(spec, k) for k in RUNTIME if hasattr(spec, k)}
    if previous:
        record = SweepRecord(out_dir, previous)
        record.update(
            status="running", experiment_path=exp, **runtime, **resealed(out_dir, previous)
        )
        return record
    lock.acquire()
    refuse_existing(out_dir, out_dir.name)  # again, now that no other sweep can start here
    objective, mode = objective_of(base.task)
    return SweepRecord.create(
        out_dir,
        replace(spec, name=out_dir.name, data=absolute_data(kept["data"]), end=kept["end"]),
        objective=objective,
        mode=mode,
        data_source=absolute_data(kept["data"]) or "built-in",
        data_fingerprint=kept["data_fingerprint"],
        data_summary=data.summary,
        space_definition=space_to_dict(space),
        test_first_row=data.test_first_row,
        timestamps=data.timestamps,  # how the data's times were read (UTC conversion)
        experiment_path=exp,
        resume_command=resume_hint(out_dir.name, spec.results_dir, _DEFAULT_RESULTS),
    )


def _run(
    spec,
    space,
    base,
    data: SweepData,
    record: SweepRecord,
    baselines: list[CVBaseline],
    *,
    log,
    guard: StartGuard,
) -> SweepOutcome:
    """The Tune run itself, inside a started Ray: callbacks, fit, records, result files."""
    objective, mode = objective_of(base.task)
    status = StatusCallback(record, n_folds=len(data.folds), watch=DiskWatch())
    heartbeat = Heartbeat(
        n_trials=spec.trials,
        n_folds=len(data.folds),
        objective=objective,
        mode=mode,
        log=log,
        done=status.statuses,
        budget=spec.time_budget,
    )
    for value, trial_id in previous_best(record.path.parent):  # --resume: known so far
        heartbeat.offer_best(value, trial_id)
    linear = baselines[-1] if baselines else None
    if linear is not None:
        skill = f", skill {linear.skill:+.4f}" if objective == "mse_ratio" else ""
        heartbeat.reference = f"{linear.name} {objective} {linear.objective:.5g}{skill}"
    start = time.perf_counter()
    with _tracker(spec, space, base, record, log) as tracker:
        callbacks = [
            status,
            ProgressCallback(heartbeat, log=log),
            TrackingCallback(tracker, status, objective=objective),
        ]
        tuner = _tuner(spec, space, base, data, record, callbacks, log)
        guard.started()  # from here on, trials may have run
        results = run_tuner(tuner, heartbeat)
        status.watch.check()  # a full disk stopped it: one line (orchestrator/sweep/preflight.py)
        records = collect_records(results, status.statuses)
        outcome = write_outcome(spec, base, data, record, records, results, tracker, baselines)
        tracker.close_status = "KILLED" if outcome.interrupted else "FINISHED"
    outcome.tracking_uri = tracker.uri or spec.mlflow_uri or ""
    outcome.experiment_id = tracker.experiment_id
    outcome.stopped_by_budget = heartbeat.budget_spent and outcome.interrupted
    board = outcome.leaderboard
    record.update(
        status="interrupted" if outcome.interrupted else "finished",
        stopped_by="time budget" if outcome.stopped_by_budget else None,
        wall_seconds=float(record.data.get("wall_seconds") or 0.0) + time.perf_counter() - start,
        counts={s: int((board.status == s).sum()) for s in STATUSES} if not board.empty else {},
    )
    return outcome


def _tracker(spec, space, base, record: SweepRecord, log) -> BackgroundTracker:
    """The sweep's MLflow runs, opened on a thread of their own while the Tuner starts;
    each write is queued there (orchestrator/tracking/writer_thread.py)."""

    def make():
        # MLflow itself loads here, on the tracker's thread: seconds off the start-up.
        from orchestrator.tracking.sweep_runs import SweepTracker, default_tracking_uri

        return SweepTracker(
            spec.mlflow_uri or default_tracking_uri(Path(spec.results_dir)),
            experiment=EXPERIMENT,
            run_name=record.data["name"],
            params=spec_params(spec, space, base),
            resume=spec.resume,
            log=log,
        )

    return BackgroundTracker(make)


def _tuner(spec, space, base, data: SweepData, record: SweepRecord, callbacks, log):
    trainable = tune.with_parameters(
        run_trial,
        data=data,
        base=base.to_dict(),
        workers=spec.workers_per_trial,
        cpus=spec.cpus_per_trial,
        gpus=spec.gpus_per_trial,
        fail_at_fold=spec.fail_at_fold,
        rungs=report_rungs(spec, len(data.folds)),
    )
    trainable = tune.with_resources(trainable, trial_resources(spec))
    objective, mode = objective_of(base.task)
    out_dir = record.path.parent
    return make_tuner(
        spec,
        space,
        trainable,
        mode=mode,
        objective=objective,
        n_folds=len(data.folds),
        name=out_dir.name,
        out_dir=out_dir,
        exp=experiment_path(spec, out_dir, out_dir.name),
        callbacks=callbacks,
        log=log,
    )


def write_outcome(
    spec, base, data: SweepData, record, records, results, tracker, baselines=(), *, study=None
) -> SweepOutcome:
    """Every trial's record in MLflow, the result files, and the Optuna study made consistent.
    ``study``: (storage URL, study name) when not the sweep's own (a universe's ticker)."""
    objective, mode = objective_of(base.task)
    out_dir, n_folds = record.path.parent, len(data.folds)
    interrupted = len(records) < spec.trials or any(r.status == "interrupted" for r in records)
    # Trials that finished earlier were logged as they finished (the tracker skips ids it
    # logged); interrupted ones are logged as such and updated when resumed.
    for rec in records:
        log_record(tracker, rec, objective=objective)
    board = build_leaderboard(records, n_folds=n_folds, objective=objective, mode=mode)
    best = _best_config(board, records, base)
    oof = oof_frame(records, checkpoints_of(results), data)
    full = with_baselines(board, list(baselines), n_folds=n_folds, objective=objective, mode=mode)
    files = write_results(out_dir, leaderboard=full, best_config=best, audit=data.audit, oof=oof)
    files["sweep.json"] = record.path
    files["tune"] = Path(record.data.get("experiment_path") or "")
    if not interrupted:
        storage, name = study or (study_storage(out_dir), out_dir.name)
        reconcile_study(storage, name, records, objective)
    ranked = board[board["rank"].notna()] if not board.empty else board
    summary = {}
    for b in baselines:  # parent-run metrics baseline_<name>_objective / _skill
        summary[f"baseline_{b.name}_objective"] = b.objective
        if objective == "mse_ratio":
            summary[f"baseline_{b.name}_skill"] = b.skill
    if not ranked.empty:
        summary["best_objective"] = float(ranked.iloc[0]["objective"])
        summary["trials_completed"] = int((board.status == "completed").sum())
    if summary:
        tracker.log_summary(summary, [p for k, p in files.items() if k != "tune"])
    failures = [r for r in records if r.status == "failed"]
    all_failed = failures and len(failures) == len(records) == spec.trials
    return SweepOutcome(
        out_dir.name,
        out_dir,
        board,
        best,
        files,
        None,
        "",
        n_folds,
        interrupted=interrupted,
        resume_hint=record.data.get("resume_command", ""),
        first_failure=f"trial {failures[0].trial_id}: {failures[0].reason}" if all_failed else None,
        baselines=full[full["status"] == "baseline"].reset_index(drop=True),
    )


def _already_finished(spec: SweepSpec, out_dir: Path, record: dict, log) -> SweepOutcome:
    """--resume of a sweep that finished: nothing to run; say so and show its answer again."""
    log(f"Sweep {record.get('name')!r} already finished ({out_dir}/sweep.json); its results:")
    full = read_leaderboard(out_dir, baselines=True)
    board = trial_rows(full)
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
        spec.mlflow_uri or record.get("mlflow_uri") or _default_uri(spec),
        len(pd.read_csv(out_dir / "fold_audit.csv")),
        already_finished=True,
        baselines=full[full["status"] == "baseline"].reset_index(drop=True),
    )
    print_summary(outcome, record["objective"], record["mode"], log)
    return outcome


def _default_uri(spec: SweepSpec) -> str:
    # MLflow: only where it is used
    from orchestrator.tracking.sweep_runs import default_tracking_uri

    return default_tracking_uri(Path(spec.results_dir))


def spec_params(spec: SweepSpec, space: SearchSpace, base: TrainConfig) -> dict:
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
