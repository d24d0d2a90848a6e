"""``python -m orchestrator.promote``: the sweep's best configs become final models.

    python -m orchestrator.promote --name smoke-20261121-101500 --top-k 3 --seeds 3

For each of the top-k ranked trials of ``results/<name>/leaderboard.parquet``, once per seed:
retrain on the train+validation part of the sweep's data (train on the final split's train
part, early-stop on its val part after the purge + embargo gap) and evaluate once on the
untouched test part, next to persistence / ridge (or majority class / logistic regression)
on the same rows. All (rank, seed) jobs run inside ONE Ray Train ``TorchTrainer``
(``--workers`` DDP workers, a GPU each when the cluster has them), so workers start once.

Writes ``results/<name>/models/<rank>/seed<k>/`` (model.pt, config.json, scaler.json,
training_metrics.json, predictions.parquet), ``models/<rank>/predictions.parquet`` (the seed
ensemble), ``promoted.json``, ``report.html`` and ``report.md``, and logs the chosen model
(rank 1's seed ensemble) to MLflow and its model registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import ray
import ray.train
import ray.train.torch
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray.train import Checkpoint, CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from requests.exceptions import RequestException
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.baselines import baseline_outputs, baseline_scores, evaluate_runs
from orchestrator.holdout import (
    HoldoutGuard,
    Pick,
    TrainingTable,
    check_settings,
    jsonable,
    load_holdout,
    read_sweep,
    top_configs,
    write_json,
)
from orchestrator.leaderboard import read_leaderboard
from orchestrator.report import summary_lines, write_report
from orchestrator.tracking import SweepTracker, default_tracking_uri
from trainables.artifacts import save_run
from trainables.atomic import replace_folder
from trainables.cli import ArgumentParser, command_line, interrupt_exit_code
from trainables.config import TrainConfig
from trainables.dataset import prepare_fold
from trainables.errors import ConfigError, OrchestratorError, TrainingError
from trainables.trainer import fit

__all__ = ["EXPERIMENT", "PromoteSpec", "log_final_model", "main", "promote"]

# What a tracking store can throw (as orchestrator.tracking); anything else is a bug.
TRACKING_ERRORS = (MlflowException, RequestException, SQLAlchemyError, OSError)


@dataclass(frozen=True)
class PromoteSpec:
    """Everything a promotion needs, defaults written once (the CLI reads them from here)."""

    name: str
    results_dir: str = "results"
    top_k: int = 3
    seeds: int = 3
    workers: int = 1
    cpus_per_worker: int = 1
    epochs: int | None = None  # None: each trial's own epochs (early stopping still applies)
    num_cpus: int | None = None  # local Ray only; None = all cores
    address: str | None = None  # None: the sweep's
    mlflow_uri: str | None = None  # None: the sweep's
    registered_name: str | None = None  # None: lstm-<name>
    report: bool = True
    overrides: dict = field(default_factory=dict)  # training settings for every promoted model

    def __post_init__(self) -> None:
        check_settings(self.overrides)
        TrainConfig().replace(**self.overrides)  # unknown names / bad values fail here, early
        for flag, value, low in (
            ("--top-k", self.top_k, 1),
            ("--seeds", self.seeds, 1),
            ("--workers", self.workers, 1),
            ("--cpus-per-worker", self.cpus_per_worker, 1),
            ("--epochs", self.epochs, 1),
        ):
            if value is not None and value < low:
                raise ConfigError(f"{flag} must be >= {low}, but got {value}")


# ---------------------------------------------------------------------- Ray Train


def _train_loop(loop_config: dict) -> list[dict]:
    """Ray Train worker: every (rank, seed) job in turn; rank 0 saves each run as a checkpoint."""
    torch.set_num_threads(loop_config["threads"])
    # This worker process is ours alone: Ray Train logs every report at INFO through the root
    # logger (and its print patch doubles print lines), which would bury our progress line.
    logging.getLogger().setLevel(logging.WARNING)
    table: TrainingTable = ray.get(loop_config["table"])
    ctx = ray.train.get_context()
    lead = ctx.get_world_rank() == 0
    device = ray.train.torch.get_device()
    done = []
    for job in loop_config["jobs"]:
        cfg = TrainConfig.from_dict(job["cfg"])
        fold = prepare_fold(
            table.frame(),
            table.targets,
            table.fit_idx.copy(),  # writable copies: the object store's arrays are read-only
            table.stop_idx.copy(),
            f_cols=list(cfg.f_cols),
            seq_len=cfg.sequence_length,
            scaler=cfg.scaler,
        )
        summary = {"dir": job["dir"], "rank": job["rank"], "k": job["k"], "seed": cfg.seed}
        try:
            result = fit(cfg, fold, log=None, device=device)
        except TrainingError as err:  # one diverging seed must not cost the others
            summary.update(status="failed", reason=str(err))
            ray.train.report({"job": json.dumps(summary)})
            done.append(summary)
            continue
        summary.update(
            status="ok",
            best_epoch=result.best_epoch,
            epochs_run=len(result.history),
            stopped_reason=result.stopped_reason,
            early_stopping_loss=result.best_val_loss,
            seconds=result.seconds,
            device=result.device,
        )
        if lead:
            sys.stdout.write(
                f"promote: rank {job['rank']} seed {cfg.seed}: {len(result.history)} epochs "
                f"(best {result.best_epoch}), early-stopping loss {result.best_val_loss:.6g}, "
                f"{result.seconds:.1f}s\n"
            )
            sys.stdout.flush()
            with tempfile.TemporaryDirectory() as d:
                save_run(d, result=result, cfg=cfg, fold=fold, index=pd.DatetimeIndex(table.index))
                ray.train.report(
                    {"job": json.dumps(summary)},
                    checkpoint=Checkpoint.from_directory(d),
                    checkpoint_dir_name=job["dir"],
                )
        else:
            ray.train.report({"job": json.dumps(summary)})  # a collective: every rank reports
        done.append(summary)
    return done


def _train_all(
    picks: list[Pick], table: TrainingTable, spec: PromoteSpec, models_dir: Path, storage: str, log
) -> list[dict]:
    """Train every (rank, seed) job in one TorchTrainer; copy each run to models_dir."""
    jobs = [
        {
            "dir": f"rank{p.rank}-seed{k}",  # the checkpoint's folder name
            "rank": p.rank,
            "k": k,
            "cfg": p.cfg.replace(seed=p.cfg.seed + k).to_dict(),
        }
        for p in picks
        for k in range(spec.seeds)
    ]
    use_gpu = ray.cluster_resources().get("GPU", 0) >= spec.workers
    run_name = f"promote-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log(
        f"Training {len(jobs)} model(s) ({len(picks)} config(s) x {spec.seeds} seed(s)) in one "
        f"TorchTrainer: {spec.workers} worker(s), {'a GPU' if use_gpu else 'CPU'} each"
    )
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "table": ray.put(table),
            "jobs": jobs,
            "threads": spec.cpus_per_worker,
        },
        scaling_config=ScalingConfig(
            num_workers=spec.workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": spec.cpus_per_worker, **({"GPU": 1} if use_gpu else {})},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage,
            checkpoint_config=CheckpointConfig(num_to_keep=None),
            # Ray Train's per-report INFO lines would bury the one progress line per model.
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )
    try:
        result = trainer.fit()
        for checkpoint, _ in result.best_checkpoints or []:
            rank, seed = Path(checkpoint.path).name.removeprefix("rank").split("-seed")
            checkpoint.to_directory(str(models_dir / rank / f"seed{seed}"))
    except ray.train.TrainingFailedError as err:
        raise TrainingError(f"promotion training failed: {err}") from err
    finally:
        if "://" not in storage:  # a local run folder: only copies of models_dir's runs
            shutil.rmtree(Path(storage) / run_name, ignore_errors=True)
    return list(result.return_value or [])


def _start_ray(spec: PromoteSpec, sweep: dict, log) -> bool:
    if ray.is_initialized():
        return False
    address = spec.address or sweep.get("address")
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=spec.num_cpus or os.cpu_count(), include_dashboard=False)
    log(f"Ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
    return True


# ---------------------------------------------------------------------- MLflow

# The sweep's experiment (orchestrator.sweep logs there); the promoted run is a child of the
# sweep's parent run.
EXPERIMENT = "lstm-sweeps"


def log_final_model(
    uri: str, *, sweep_name: str, registered_name: str, model_dir: Path, index: dict, log
) -> dict | None:
    """Log the chosen model as a child run of the sweep's parent run, with its test metrics
    and files, and register it. No pickles: the version's source is the logged folder of
    model.pt and JSON files. Tracking problems print one line; they never fail a promotion."""
    chosen = index["chosen"]
    metrics = {f"test_{k}": v for k, v in chosen["test"].items()}
    for name, values in index["baselines"].items():
        metrics.update({f"{name.replace(' ', '_')}_test_{k}": v for k, v in values.items()})
    metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    model = next(m for m in index["models"] if m["rank"] == chosen["rank"])
    params = {"rank": chosen["rank"], "kind": chosen["kind"], "seeds": index["seeds"]}
    with SweepTracker(
        uri, experiment=EXPERIMENT, run_name=sweep_name, params={}, resume=True, log=log
    ) as tracker:
        run_id = tracker.log_trial(
            f"promoted-{index['created']}",
            params={**params, **model["params"]},
            fold_metrics=[],
            summary=metrics,
            status="FINISHED",
        )
        if run_id is None:
            return None
        try:
            client = MlflowClient(tracking_uri=uri)
            client.log_artifacts(run_id, str(model_dir), artifact_path="model")
            client.log_artifact(run_id, str(model_dir.parents[1] / "promoted.json"))
            try:
                client.create_registered_model(registered_name)
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            source = f"{client.get_run(run_id).info.artifact_uri}/model"
            version = client.create_model_version(registered_name, source=source, run_id=run_id)
        except TRACKING_ERRORS as err:
            log(f"MLflow at {uri}: could not register the promoted model ({err}); going on")
            return {"run_id": run_id}
    log(f"MLflow: run {run_id}, registered as {registered_name!r} version {version.version}")
    return {"run_id": run_id, "registered_model": registered_name, "version": int(version.version)}


# ---------------------------------------------------------------------- the run


def promote(spec: PromoteSpec, *, log=print) -> dict:
    """Run a promotion; returns the ``promoted.json`` index (also written to disk)."""
    start = time.perf_counter()
    out_dir = Path(spec.results_dir) / spec.name
    sweep = read_sweep(out_dir)
    data = load_holdout(out_dir, sweep=sweep)
    board = read_leaderboard(out_dir)
    settings = {**spec.overrides, **({"epochs": spec.epochs} if spec.epochs else {})}
    picks = top_configs(board, data.base, top_k=spec.top_k, settings=settings)
    if not picks:
        raise ConfigError(f"sweep {spec.name!r} has no completed trial to promote")
    if len(picks) < spec.top_k:
        log(
            f"The sweep has {len(picks)} completed trial(s); promoting those (--top-k {spec.top_k})"
        )
    guard = HoldoutGuard(data)
    table = guard.training_table()
    log(
        f"Promoting the top {len(picks)} of sweep {spec.name!r} x {spec.seeds} seeds on "
        f"{data.source}: {len(table.fit_idx):,} training and {len(table.stop_idx):,} "
        f"early-stopping samples from rows 0..{table.n_rows - 1}; the test part "
        f"({len(data.split.test):,} samples from row {data.test_first_row}) stays closed"
    )
    linear, majority = baseline_outputs(table, picks[0].cfg)

    staging = out_dir / f".models-partial-{os.getpid()}"
    storage = sweep.get("storage")
    storage = f"{storage.rstrip('/')}/{spec.name}" if storage else str(out_dir.resolve())
    started = _start_ray(spec, sweep, log)
    try:
        t0 = time.perf_counter()
        jobs = _train_all(picks, table, spec, staging, storage, log)
        train_wall = time.perf_counter() - t0
        if started:
            ray.shutdown()
            started = False
        for j in jobs:
            if j["status"] == "failed":
                log(f"rank {j['rank']} seed {j['seed']} failed: {j['reason']}")
        if not any(j["status"] == "ok" for j in jobs):
            raise TrainingError("every promoted model failed to train; see the lines above")

        # Training is over: only now does the test part open.
        guard.finish_training()
        test = guard.test_part()
        baselines = baseline_scores(linear, majority, test)
        result = evaluate_runs(picks, jobs, staging, test, baselines)
        # The previous models/ stays until the new one is in place (trainables.atomic).
        replace_folder(staging, out_dir / "models")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if started:
            ray.shutdown()

    # Chosen by the sweep's CV rank, never by test scores: picking on the test part would
    # make the reported test numbers optimistic.
    chosen = next(m for m in result["models"] if "ensemble_test" in m)
    index = {
        "sweep": spec.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "task": data.base.task,
        "objective": sweep.get("objective"),
        "top_k": spec.top_k,
        "seeds": spec.seeds,
        "workers": spec.workers,
        "settings": settings,
        "data": data.summary(),
        "holdout_guard": guard.to_dict(),
        "audit": data.audit().to_dict(orient="records"),
        **result,
        "baselines": baselines,
        "chosen": {
            "rank": chosen["rank"],
            "kind": "seed ensemble (mean of the rank's seeds)",
            "path": chosen["path"],
            "test": chosen["ensemble_test"],
            "verdict": chosen["verdict"],
        },
        "timings": {"train_wall_seconds": train_wall},
    }
    write_json(out_dir / "promoted.json", index)
    index["chosen"]["mlflow"] = log_final_model(
        spec.mlflow_uri or sweep.get("mlflow_uri") or default_tracking_uri(Path(spec.results_dir)),
        sweep_name=spec.name,
        registered_name=spec.registered_name or f"lstm-{spec.name}",
        model_dir=out_dir / chosen["path"],
        index=index,
        log=log,
    )
    index["timings"]["total_seconds"] = time.perf_counter() - start
    index = jsonable(index)  # what promoted.json holds: plain JSON values
    write_json(out_dir / "promoted.json", index)
    if spec.report:
        html, md = write_report(out_dir)
        log(f"Report: {html} ({md.name})")
    for line in summary_lines(index):
        log(line)
    log(f"Results: {out_dir}/ (models/, promoted.json, report.html, report.md)")
    return index


# ---------------------------------------------------------------------- CLI


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE (e.g. --set patience=10), not {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)  # 1e-3, true, [a, b] as a user writes them


def build_parser() -> argparse.ArgumentParser:
    d = PromoteSpec("x")
    p = ArgumentParser(  # its errors are one line (ConfigError), not the whole usage
        prog="python -m orchestrator.promote",
        description="Retrain a sweep's best configs on train+validation (several seeds, "
        "Ray Train), judge them once on the untouched test part against baselines, save, "
        "register and report them. See docs/promotion.md.",
    )
    p.add_argument("--name", required=True, help="the sweep's name (a folder in --results-dir)")
    p.add_argument("--results-dir", default=d.results_dir, help="default: %(default)s")
    p.add_argument("--top-k", type=int, default=d.top_k, help="configs (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=d.seeds, help="per config (default: %(default)s)")
    p.add_argument(
        "--workers", type=int, default=d.workers, help="DDP workers (default: %(default)s)"
    )
    p.add_argument(
        "--cpus-per-worker", type=int, default=d.cpus_per_worker, help="default: %(default)s"
    )
    p.add_argument("--epochs", type=int, help="max epochs (default: the trial's)")
    p.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all)")
    p.add_argument("--address", help="Ray cluster to attach to (default: the sweep's)")
    p.add_argument("--mlflow-uri", help="tracking store (default: the sweep's)")
    p.add_argument("--registered-name", help="model registry name (default: lstm-<name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training setting for every promoted model, e.g. --set patience=10 "
        "(not the data settings: those stay the sweep's)",
    )
    p.add_argument("--no-report", dest="report", action="store_false")
    return p


def main(argv: list[str] | None = None) -> int:
    with command_line(signals=False):
        try:
            args = vars(build_parser().parse_args(argv))
            args["overrides"] = dict(args["overrides"])
            promote(PromoteSpec(**args))
        except OrchestratorError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            print(
                "interrupted: no models were written (the staging folder is removed)",
                file=sys.stderr,
            )
            return interrupt_exit_code(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
