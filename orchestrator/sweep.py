"""Run a sweep: Ray Tune + OptunaSearch over purged CV folds, results in results/<name>/.

``run_sweep(SweepSpec(...))`` is what ``python -m orchestrator.tune`` calls; tests call it
directly. It opens Ray and MLflow, and closes what it opened.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.schedulers import MedianStoppingRule
from ray.tune.search.optuna import OptunaSearch

from orchestrator.leaderboard import TrialRecord, build_leaderboard, write_results
from orchestrator.prepare import CV_SCHEMES, SweepData, prepare_sweep_data
from orchestrator.progress import ProgressCallback, TrackingCallback, log_record, record_of
from orchestrator.schedulers import FoldRaceASHA
from orchestrator.spaces import SearchSpace, load_space, to_optuna
from orchestrator.tracking import SweepTracker, default_tracking_uri, ui_hint
from orchestrator.trial import objective_of, run_trial
from trainables.config import TrainConfig
from trainables.data import DEFAULT_MAX_JUMP
from trainables.errors import ConfigError
from trainables.timestamps import DST_CHOICES

__all__ = ["SCHEDULERS", "SweepOutcome", "SweepSpec", "run_sweep"]

SCHEDULERS = ("asha", "median", "none")
# A trial that only drives a TorchTrainer needs a sliver of CPU (Tune refuses 0).
DRIVER_CPU = 0.01


@dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep needs, defaults written once (the CLI reads them from here)."""

    name: str | None = None
    space: str = "default"
    data: str | None = None
    ticker: str | None = None
    task: str | None = None  # None: the space's / TrainConfig's default
    cv: str = "walk-forward"
    folds: int = 5
    trials: int = 50
    epochs: int | None = None
    seed: int = 0
    scheduler: str = "asha"
    asha_eta: float = 2  # ASHA's reduction factor: keep the best 1/eta at each rung
    asha_grace: float = 0.25  # ASHA's first rung, in folds (0.25 = a quarter into fold 0)
    race_margin: float = 0.02  # stop a trial this much worse than the best on the same folds
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1
    max_retries: int = 1
    address: str | None = None
    storage: str | None = None
    results_dir: str = "results"
    mlflow_uri: str | None = None
    resume: bool = False
    num_cpus: int | None = None  # local Ray only; None = all cores
    dashboard: bool = True
    n_bars: int = 4000  # built-in data only
    timezone: str | None = None  # zone of naive local timestamps (converted to UTC)
    dst: str = "raise"  # with timezone: times at a daylight saving change (docs/data.md)
    max_jump: float = DEFAULT_MAX_JUMP  # largest |log return| of a price between bars
    overrides: dict = field(default_factory=dict)  # extra TrainConfig settings for every trial
    fail_at_fold: int | None = None  # fault injection for tests: crash once at this fold

    def __post_init__(self) -> None:
        checks = [
            (self.trials >= 1, f"--trials must be >= 1, but got {self.trials}"),
            (self.folds >= 2, f"--folds must be >= 2, but got {self.folds}"),
            (self.cv in CV_SCHEMES, f"--cv must be one of {list(CV_SCHEMES)}, but got {self.cv!r}"),
            (
                self.scheduler in SCHEDULERS,
                f"--scheduler must be one of {list(SCHEDULERS)}, but got {self.scheduler!r}",
            ),
            (
                self.cpus_per_trial > 0,
                f"--cpus-per-trial must be > 0, but got {self.cpus_per_trial}",
            ),
            (
                self.gpus_per_trial >= 0,
                f"--gpus-per-trial must be >= 0, but got {self.gpus_per_trial}",
            ),
            (
                self.workers_per_trial >= 1,
                f"--workers-per-trial must be >= 1, but got {self.workers_per_trial}",
            ),
            (self.max_retries >= 0, f"--max-retries must be >= 0, but got {self.max_retries}"),
            (self.asha_eta > 1, f"--asha-eta must be > 1, but got {self.asha_eta}"),
            (
                0 <= self.race_margin < 1,
                f"--race-margin must be in [0, 1) (0 = off), but got {self.race_margin}",
            ),
            (
                0 < self.asha_grace <= self.folds,
                f"--asha-grace must be in (0, folds={self.folds}], but got {self.asha_grace}",
            ),
            (
                self.max_concurrent is None or self.max_concurrent >= 1,
                f"--max-concurrent must be >= 1, but got {self.max_concurrent}",
            ),
            (
                self.dst in DST_CHOICES,
                f"--dst must be one of {list(DST_CHOICES)}, got {self.dst!r}",
            ),
            (self.max_jump > 0, f"--max-jump must be > 0 (inf: no limit), but got {self.max_jump}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def sweep_name(self) -> str:
        return self.name or f"{Path(self.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"

    def smoke(self) -> SweepSpec:
        """The same sweep, tiny: a few trials, 2 folds, 2 epochs, little data."""
        return replace(
            self,
            space="smoke",
            trials=min(self.trials, 4),
            folds=2,
            epochs=2,
            n_bars=min(self.n_bars, 1200),
        )


@dataclass
class SweepOutcome:
    name: str
    out_dir: Path
    leaderboard: object  # pandas DataFrame
    best_config: dict | None
    files: dict[str, Path]
    dashboard_url: str | None
    tracking_uri: str
    n_folds: int = 0
    interrupted: bool = False


def base_config(spec: SweepSpec, space: SearchSpace) -> TrainConfig:
    """Defaults, then the space's fixed settings, then the command line's."""
    settings = {**space.fixed, **spec.overrides}
    if spec.task is not None:
        settings["task"] = spec.task
    if spec.epochs is not None:
        settings["epochs"] = spec.epochs
    if spec.ticker is not None:
        settings["ticker"] = spec.ticker
    return TrainConfig.from_dict(settings)


def check_space(space: SearchSpace, base: TrainConfig) -> None:
    """Every choice and bound of the space must be a valid training setting (fail before Ray)."""
    for name, dist in space.params.items():
        values = dist["choices"] if dist["type"] == "categorical" else [dist["low"], dist["high"]]
        for value in values:
            try:
                TrainConfig.from_dict({**base.to_dict(), name: value})
            except ConfigError as err:
                raise ConfigError(f"{space.path}: parameter {name!r}: {err}") from None


def longest_sequence(space: SearchSpace, base: TrainConfig) -> int:
    dist = space.params.get("sequence_length")
    if dist is None:
        return base.sequence_length
    if dist["type"] == "categorical":
        return max(int(c) for c in dist["choices"])
    return int(dist["high"])


def _start_ray(spec: SweepSpec, log) -> tuple[bool, str | None]:
    """Attach to ``--address`` or start a local Ray; returns (we started it, dashboard url)."""
    if ray.is_initialized():
        return False, None
    if spec.address:
        try:
            ctx = ray.init(address=spec.address, log_to_driver=False)
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
        ctx = ray.init(
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
            fold_key=objective,
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


def _records(results) -> list[TrialRecord]:
    # ResultGrid keeps results in the same order as its trials; the Trial objects carry
    # the status (ERROR / TERMINATED / ...), which a Result does not expose.
    trials = results._experiment_analysis.trials
    return [
        record_of(trial, result.metrics or {})
        for trial, result in zip(trials, results, strict=True)
    ]


def run_sweep(spec: SweepSpec, *, log=print) -> SweepOutcome:
    name = spec.sweep_name
    out_dir = Path(spec.results_dir) / name
    space = load_space(spec.space)
    base = base_config(spec, space)
    check_space(space, base)
    objective, mode = objective_of(base.task)
    data: SweepData = prepare_sweep_data(
        base,
        data=spec.data,
        ticker=spec.ticker,
        cv=spec.cv,
        n_splits=spec.folds,
        seq_len_max=longest_sequence(space, base),
        n_bars=spec.n_bars,
        data_seed=spec.seed,
        timezone=spec.timezone,
        dst=spec.dst,
        max_jump=spec.max_jump,
    )
    n_folds = len(data.folds)
    log(
        f"Sweep {name!r}: space {space.name} ({len(space.params)} params), {spec.trials} trials, "
        f"objective {objective} ({mode}) over {n_folds} folds"
    )
    log(data.summary)

    tracking_uri = spec.mlflow_uri or default_tracking_uri(Path(spec.results_dir))
    started, dashboard_url = _start_ray(spec, log)
    if not spec.address:
        try:
            _check_fits(spec)
        except ConfigError:
            if started:
                ray.shutdown()
            raise
    storage_path, exp_name = _experiment_path(spec, out_dir, name)
    exp_path = f"{storage_path}/{exp_name}"
    try:
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
                ProgressCallback(n_trials=spec.trials, n_folds=n_folds, mode=mode, log=log),
                TrackingCallback(tracker, n_folds=n_folds, objective=objective),
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
                storage_path=storage_path,
                exp_name=exp_name,
                callbacks=callbacks,
                log=log,
            )
            start = time.perf_counter()
            # Ctrl-C: Tune saves the experiment state and returns with unfinished trials.
            records = _records(tuner.fit())
            interrupted = len(records) < spec.trials or any(
                r.status == "unfinished" for r in records
            )
            # Trials finished in an earlier (interrupted) run were logged then; the tracker
            # skips ids it has already logged.
            for rec in records:
                if rec.status in ("completed", "pruned", "failed"):
                    log_record(tracker, rec, objective=objective)
            board = build_leaderboard(records, n_folds=n_folds, objective=objective, mode=mode)
            best = _best_config(board, records, base)
            files = write_results(
                out_dir,
                leaderboard=board,
                best_config=best,
                audit=data.audit,
                spec={
                    **asdict(spec),
                    "name": name,
                    "objective": objective,
                    "mode": mode,
                    "experiment_path": exp_path,
                    "wall_seconds": time.perf_counter() - start,
                    "data_summary": data.summary,
                    "timestamps": data.timestamps,
                    "test_first_row": data.test_first_row,
                },
            )
            files["tune"] = Path(exp_path)
            if not board.empty and board["rank"].notna().any():
                top = board.iloc[0]
                tracker.log_summary(
                    {
                        "best_objective": float(top["objective"]),
                        "trials_completed": int((board.status == "completed").sum()),
                    },
                    [p for k, p in files.items() if k != "tune"],
                )
    finally:
        if started:
            ray.shutdown()
    outcome = SweepOutcome(
        name, out_dir, board, best, files, dashboard_url, tracking_uri, n_folds, interrupted
    )
    _print_summary(outcome, objective, mode, log)
    return outcome


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
    spec,
    space,
    trainable,
    *,
    mode,
    objective,
    n_folds,
    name,
    out_dir,
    storage_path,
    exp_name,
    callbacks,
    log,
):
    exp_path = f"{storage_path}/{exp_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    # One experiment snapshot per fold checkpoint is deliberate (see checkpoint_config):
    # silence Tune's warning that snapshots come more often than every 5 s.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if spec.resume:
        if not tune.Tuner.can_restore(exp_path):
            raise ConfigError(
                f"--resume: no sweep to resume at {exp_path} "
                f"(check --name and --results-dir / --storage)"
            )
        log(f"Resuming sweep from {exp_path}: finished trials are kept, unfinished ones go on")
        tuner = tune.Tuner.restore(
            exp_path, trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
        # Tune restores the callbacks pickled by the interrupted run (its progress printer
        # and MLflow tracker); this run's own must replace them. No public API for it.
        tuner._local_tuner.get_run_config().callbacks = callbacks
        return tuner
    # The study lives in sqlite next to the leaderboard, so it can be loaded with Optuna:
    # optuna.load_study(study_name=<sweep>, storage="sqlite:///results/<sweep>/optuna.db")
    searcher = OptunaSearch(
        space=to_optuna(space),
        metric="objective",
        mode=mode,
        seed=spec.seed,
        study_name=name,
        storage=optuna.storages.RDBStorage(f"sqlite:///{(out_dir / 'optuna.db').resolve()}"),
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
        "data": spec.data or "built-in",
        "task": base.task,
        "epochs": base.epochs,
        "target_col": base.target_col,
    }


def _best_config(board, records: list[TrialRecord], base: TrainConfig) -> dict | None:
    if board.empty or not board["rank"].notna().any():
        return None
    best_id = board.iloc[0]["trial_id"]
    params = next(r.params for r in records if r.trial_id == best_id)
    return json.loads(json.dumps(TrainConfig.from_dict({**base.to_dict(), **params}).to_dict()))


def _print_summary(outcome: SweepOutcome, objective: str, mode: str, log) -> None:
    board = outcome.leaderboard
    if outcome.interrupted:
        log(
            f"Interrupted. Finish it with: python -m orchestrator.tune --resume --name {outcome.name}"
        )
    if board is not None and not board.empty:
        counts = board["status"].value_counts().to_dict()
        log("Trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        ranked = board[board["rank"].notna()].head(5)
        if not ranked.empty:
            params = [c for c in board.columns if c.startswith("param_")]
            skill = ["skill"] if "skill" in board.columns else []
            cols = ["rank", "trial_id", "objective", "objective_std", *skill, "seconds", *params]
            log(
                f"Top trials by {objective} ({mode}) over {outcome.n_folds} purged CV folds"
                + (" (skill = 1 - MSE / persistence MSE: > 0 beats persistence):" if skill else ":")
            )
            log(
                ranked[cols]
                .rename(columns=lambda c: c.removeprefix("param_"))
                .to_string(index=False, float_format=lambda v: f"{v:.5g}")
            )
    log(
        f"Results: {outcome.out_dir}/ ({', '.join(sorted(k for k in outcome.files if k != 'tune'))})"
    )
    log(f"Tune experiment: {outcome.files.get('tune')}")
    log(f"MLflow: {ui_hint(outcome.tracking_uri)}")
    if outcome.dashboard_url:
        log(f"Ray dashboard (while Ray runs): {outcome.dashboard_url}")
