"""Run a universe: many tickers tuned by one command, in one Tune experiment on one Ray.

``run_universe(SweepSpec(tickers="all", ...))`` is what ``python -m orchestrator.tune
--tickers ...`` calls. Imports, the data read and Ray's start happen once; then every ticker
is its own sweep (its own folds, scaler fits, fold audit, baselines on its folds, Optuna
study and pruning) in ``results/<universe>/tickers/<folder>/``, and all of them run as one
Tune experiment whose trials share the machine's or the cluster's CPUs and GPUs
(``--max-concurrent`` bounds trials across the universe). How:

* ``UniverseSearch`` (orchestrator/universe/search.py): one ``FoldOptunaSearch`` per ticker,
  each trial's config carrying its ``ticker``; Tune's one concurrency limit on top.
* ``TickerScheduler`` (orchestrator/universe/scheduler.py): a trial is only ever compared
  with trials of its own ticker (the ASHA rungs and the fold race are per ticker).
* ``universe_trial``: each ticker's ``SweepData`` goes to the object store once; a trial
  reads its ticker's (a reused actor that switches tickers keeps nothing of the last one).
* A ticker whose bars are refused is listed with its reason and the others run; the command
  stops before any work (exit 2) only when every ticker is refused.

MLflow: one run for the universe, one child run per ticker sweep, the trials below it.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pandas as pd
import ray
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray import tune

from orchestrator.records.folder_lock import FolderLock
from orchestrator.records.sweep_record import DECIDING, check_resume, refuse_existing
from orchestrator.records.universe_record import (
    UNIVERSE_FILE,
    UniverseRecord,
    read_universe_record,
    universe_board,
    write_board,
)
from orchestrator.runtime.ray_session import check_fits, start_ray, trial_resources
from orchestrator.stats.objective import objective_of
from orchestrator.sweep.jobs import job_metadata
from orchestrator.sweep.preflight import check_request
from orchestrator.sweep.progress import StatusCallback
from orchestrator.sweep.results import collect_records
from orchestrator.sweep.run import EXPERIMENT, spec_params, write_outcome
from orchestrator.sweep.spaces import load_space, space_from_dict, to_optuna
from orchestrator.sweep.spec import SweepSpec, base_config, check_space, resolve_space
from orchestrator.sweep.tuner import (
    TunePlan,
    experiment_path,
    make_tuner,
    report_rungs,
    run_tuner,
    scheduler,
    study_storage,
)
from orchestrator.tracking.store import UNIVERSE_TAG
from orchestrator.tracking.sweep_runs import SweepTracker, default_tracking_uri
from orchestrator.universe.members import Baselines, open_records, prepare_members
from orchestrator.universe.progress import (
    TickerCallbacks,
    TickerTrackers,
    UniverseHeartbeat,
    UniverseProgress,
    params_of,
)
from orchestrator.universe.scheduler import TickerScheduler
from orchestrator.universe.search import UniverseSearch
from orchestrator.universe.summary import UniverseOutcome, already_finished, print_universe
from orchestrator.universe.trial import trial_name, universe_trial
from trainables.errors import ConfigError, DataError

__all__ = ["UniverseOutcome", "run_universe"]


def run_universe(spec: SweepSpec, *, log=print) -> UniverseOutcome:
    """Run (or, with ``spec.resume``, continue) a universe; closes what it opens. The
    universe owns its folder while it runs (orchestrator/records/folder_lock.py)."""
    spec = resolve_space(spec)
    out_dir = Path(spec.results_dir) / spec.sweep_name
    check_request(spec, out_dir)  # name, writable folder, free space, resources: no work yet
    lock = FolderLock(out_dir, purpose="universe resume" if spec.resume else "universe")
    try:
        return _owned(spec, out_dir, lock, log)
    finally:
        lock.release()


def _previous(spec: SweepSpec, out_dir: Path, lock: FolderLock) -> dict | None:
    """The record a --resume continues (read once the folder is ours); a new universe's
    folder must be free. Before Ray, MLflow or any file is touched."""
    if not spec.resume:
        refuse_existing(out_dir, out_dir.name)
        if (out_dir / UNIVERSE_FILE).exists():
            raise ConfigError(
                f"{out_dir} already holds universe {out_dir.name!r} ({UNIVERSE_FILE}): continue "
                f"it with --resume --name {out_dir.name}, or choose another --name"
            )
        return None
    read_universe_record(out_dir)  # no universe there: say so before the lock makes a folder
    lock.acquire()
    previous = read_universe_record(out_dir)
    check_resume(previous, {k: getattr(spec, k) for k in DECIDING})
    return previous


def _owned(spec: SweepSpec, out_dir: Path, lock: FolderLock, log) -> UniverseOutcome:
    previous = _previous(spec, out_dir, lock)
    if previous and previous.get("status") == "finished":
        return already_finished(spec, out_dir, previous, log)
    space = space_from_dict(previous["space_definition"]) if previous else load_space(spec.space)
    base = base_config(spec, space)
    check_space(space, base)
    tracking_uri = spec.mlflow_uri or default_tracking_uri(Path(spec.results_dir))
    members, refused = prepare_members(spec, space, base, out_dir, previous, tracking_uri)
    if previous and not members:  # every ticker had run all its trials: close the record
        UniverseRecord(out_dir, previous).update(status="finished")
        return already_finished(spec, out_dir, read_universe_record(out_dir), log)
    _refuse_if_empty(members, refused)
    _announce(spec, space, members, refused, resumed=previous is not None, log=log)
    objective, mode = objective_of(base.task)
    metadata = job_metadata(
        name=out_dir.name,
        space=space.name,
        trials=spec.trials * len(members),
        objective=f"{objective} ({mode})",
        results=out_dir,
    )
    baselines = Baselines(members, space, log)  # in a thread, from now until the results
    started, dashboard_url = None, None
    try:
        started, dashboard_url = start_ray(spec, log, metadata)
        if not spec.address:
            check_fits(spec)
        _share_data(members)
        record = open_records(spec, out_dir, previous, space, base, members, refused, lock)
        outcome = _run(spec, space, base, members, refused, record, tracking_uri, baselines, log)
    finally:
        baselines.cancel()
        if started:
            ray.shutdown()
    outcome.dashboard_url = dashboard_url
    print_universe(outcome, log)
    return outcome


def _refuse_if_empty(members: dict, refused: dict) -> None:
    if members:
        return
    first = next(iter(refused.items()), ("-", "no ticker"))
    raise DataError(
        f"every ticker was refused ({len(refused)}), nothing ran; the first: {first[0]}: {first[1]}"
    )


def _announce(spec, space, members: dict, refused: dict, *, resumed: bool, log) -> None:
    log(
        f"Universe {spec.sweep_name!r}: {len(members)} tickers x {spec.trials} trials, space "
        f"{space.name} ({len(space.params)} params), {spec.folds} folds each"
        + (" (resumed)" if resumed else "")
    )
    for ticker, member in members.items():
        log(f"{ticker}: {member.summary}")
    for ticker, reason in refused.items():
        log(f"{ticker}: refused: {reason}")


def _share_data(members: dict) -> None:
    """Each ticker's data into the object store, once for all its trials."""
    for member in members.values():
        member.ref = ray.put(member.data)
        member.data = None  # the object store holds it now (read back when results are written)


def _plan(spec, space, members: dict, objective: str, mode: str, out_dir: Path, n_folds: int):
    search = UniverseSearch(
        space=to_optuna(space),
        seeds={t: m.spec.seed for t, m in members.items()},
        trials=spec.trials,
        storage=study_storage(out_dir),
        metric="objective",
        mode=mode,
    )
    per_ticker = scheduler(spec, n_folds, objective)
    schedule = (
        None
        if per_ticker is None
        else TickerScheduler(partial(scheduler, spec, n_folds, objective))
    )
    return TunePlan(search, schedule, spec.trials * len(members), trial_name=trial_name)


def _tuner(spec, space, base, members: dict, out_dir: Path, n_folds: int, callbacks, log):
    trainable = tune.with_parameters(
        universe_trial,
        data={t: m.ref for t, m in members.items()},
        base=base.to_dict(),
        workers=spec.workers_per_trial,
        cpus=spec.cpus_per_trial,
        gpus=spec.gpus_per_trial,
        fail_at_fold=spec.fail_at_fold,
        fail_ticker=spec.fail_ticker,
        rungs=report_rungs(spec, n_folds),  # as a single sweep's trials: what ASHA acts on
    )
    trainable = tune.with_resources(trainable, trial_resources(spec))
    objective, mode = objective_of(base.task)
    return make_tuner(
        spec,
        space,
        trainable,
        mode=mode,
        objective=objective,
        n_folds=n_folds,
        name=out_dir.name,
        out_dir=out_dir,
        exp=experiment_path(spec, out_dir, out_dir.name),
        callbacks=callbacks,
        log=log,
        plan=_plan(spec, space, members, objective, mode, out_dir, n_folds),
    )


def _heartbeat(spec, members: dict, statuses: dict, n_folds: int, objective, mode, baselines, log):
    ticker_of = {tid: t for t, cb in statuses.items() for tid in cb.statuses}
    heartbeat = UniverseHeartbeat(
        quota={t: spec.trials for t in members},
        ticker_of_trial=ticker_of,
        n_folds=n_folds,
        objective=objective,
        mode=mode,
        log=log,
        done={tid: s for cb in statuses.values() for tid, s in cb.statuses.items()},
        budget=spec.time_budget,
    )

    def reference(ticker, found):  # the linear baseline beside the ticker's best trial
        linear = found[-1]
        skill = f", skill {linear.skill:+.4f}" if objective == "mse_ratio" else ""
        heartbeat.references[ticker] = f"{linear.name} {linear.objective:.5g}{skill}"

    for ticker in members:
        baselines.when_ready(ticker, partial(reference, ticker))
    return heartbeat


def _ticker_tracker(uri, universe: str, parent: str | None, resume: bool, log, params, ticker):
    tags = {UNIVERSE_TAG: universe, "ticker": ticker}
    if parent:
        tags[MLFLOW_PARENT_RUN_ID] = parent
    return SweepTracker(
        uri,
        experiment=EXPERIMENT,
        run_name=f"{universe}/{ticker}",
        params=params[ticker],
        tags=tags,
        resume=resume,
        log=log,
    )


def _run(spec, space, base, members: dict, refused: dict, record, uri: str, baselines, log):
    """The Tune run, inside a started Ray: callbacks, fit, each ticker's results."""
    objective, mode = objective_of(base.task)
    n_folds = next(iter(members.values())).n_folds
    statuses = {t: StatusCallback(m.record, n_folds=n_folds) for t, m in members.items()}
    heartbeat = _heartbeat(spec, members, statuses, n_folds, objective, mode, baselines, log)
    name, start = record.data["name"], time.perf_counter()
    params = {t: spec_params(m.spec, space, m.base) for t, m in members.items()}
    universe_params = {**spec_params(spec, space, base), "tickers": len(members)}
    with SweepTracker(
        uri,
        experiment=EXPERIMENT,
        run_name=name,
        params=universe_params,
        resume=spec.resume,
        log=log,
    ) as tracker:
        make = partial(_ticker_tracker, uri, name, tracker.parent_run_id, spec.resume, log, params)
        trackers = TickerTrackers(tracker, make if tracker.enabled else None)
        finals: dict[str, str] = {}
        try:
            callbacks = [
                TickerCallbacks(statuses, trackers, objective=objective),
                UniverseProgress(heartbeat, log=log),
            ]
            tuner = _tuner(spec, space, base, members, record.path.parent, n_folds, callbacks, log)
            results = run_tuner(tuner, heartbeat)
            baselines.collect(members)
            outcomes = _write_members(members, results, statuses, trackers, finals)
        finally:
            trackers.close(finals)
        board = _finish(record, members, refused, finals, heartbeat, start)
        tracker.log_summary(_summary(board), [record.path])
        tracker.close_status = "FINISHED" if record.data["status"] == "finished" else "KILLED"
    return UniverseOutcome.of(record, board, outcomes, refused, uri, heartbeat)


def _write_members(members: dict, results, statuses: dict, trackers, finals: dict) -> dict:
    """Each ticker's records written as a single sweep's (its folder, its MLflow run, its
    study made consistent); ``finals`` gets each ticker's status."""
    by_ticker: dict[str, list] = {t: [] for t in members}
    for result in results:
        ticker = (result.config or {}).get("ticker")
        if ticker in by_ticker:
            by_ticker[ticker].append(result)
    outcomes = {}
    for ticker, member in members.items():
        if not by_ticker[ticker]:
            finals[ticker] = "not started"
            member.record.update(status="interrupted")
            continue
        records = collect_records(by_ticker[ticker], statuses[ticker].statuses)
        for rec in records:
            rec.params = params_of(rec.params)
        tracker = trackers.of(ticker)
        outcome = write_outcome(
            member.spec,
            member.base,
            ray.get(member.ref),
            member.record,
            records,
            by_ticker[ticker],
            tracker,
            member.baselines,
            study=(study_storage(member.universe_dir), ticker),
        )
        final = (
            "failed"
            if outcome.first_failure
            else "interrupted"
            if outcome.interrupted
            else "finished"
        )
        finals[ticker] = final
        member.record.update(status="interrupted" if outcome.interrupted else "finished")
        outcomes[ticker] = outcome
    return outcomes


def _finish(record: UniverseRecord, members, refused, finals, heartbeat, start) -> pd.DataFrame:
    """universe.json's statuses, the universe leaderboard."""
    out_dir = record.path.parent
    records = dict(record.data["members"])
    for ticker, status in finals.items():
        records[ticker] = {**records[ticker], "status": status}
    interrupted = any(s in ("interrupted", "not started") for s in finals.values())
    stopped = "time budget" if heartbeat.budget_spent and interrupted else None
    record.update(
        members=records,
        status="interrupted" if interrupted else "finished",
        stopped_by=stopped,
        wall_seconds=float(record.data.get("wall_seconds") or 0.0) + time.perf_counter() - start,
    )
    board = universe_board(out_dir, read_universe_record(out_dir))
    write_board(out_dir, board)
    return board


def _summary(board: pd.DataFrame) -> dict[str, float]:
    out = {"tickers": float(len(board))}
    for status in ("finished", "interrupted", "not started", "failed", "refused"):
        out[f"tickers_{status.replace(' ', '_')}"] = float((board["status"] == status).sum())
    beats = [c for c in board.columns if c.startswith("beats_") and c.endswith("_on_cv")]
    if beats:
        out[f"tickers_{beats[0]}"] = float(board[beats[0]].fillna(False).astype(bool).sum())
    return out
