"""Training the promoted models: every (rank, seed) job in one Ray Train ``TorchTrainer``.

Each job trains on the final split's train part, early-stopping on its validation part
(after the purge + embargo gap), then refits a fresh model from the same seed on
train+validation for the best epoch count found (``fit_and_refit``). Rank 0 saves the refit
model with ``trainables.artifacts.save_run`` (its training_metrics.json also holds the
early-stopping run) and hands it back as a checkpoint; ``train_all`` copies each to
``models_dir/<rank>/seed<k>/``. The workers start once for all jobs.

Progress lines travel from rank 0 to the driver through a Ray queue and are printed there;
the driver does not forward the workers' output (``log_to_driver=False``), so Ray's own
lines (its core workers' warnings) stay in Ray's log files, as they do in a sweep.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint, CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue

from orchestrator.promotion.holdout import Pick, TrainingTable, write_json
from orchestrator.runtime.ray_session import on_this_ray
from trainables.artifacts import save_run
from trainables.errors import TrainingError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import prepare_fold_for
from trainables.training.trainer import fit

__all__ = ["fit_and_refit", "train_all"]


def _fold(table: TrainingTable, cfg: TrainConfig, train_idx: np.ndarray):
    # writable copies: the object store's arrays are read-only
    return prepare_fold_for(
        cfg, table.frame(), table.targets, train_idx.copy(), table.stop_idx.copy()
    )


def fit_and_refit(cfg: TrainConfig, table: TrainingTable, device):
    """Train on the train part, early-stopping on validation; then refit a fresh model from
    the same seed on train+validation for the best epoch count found.

    The refit keeps the first run's learning-rate schedule (same ``epochs``) and stops after
    ``best_epoch`` epochs; with nothing held out it cannot early-stop, so patience is off and
    the last epoch's weights are kept. Returns (early-stopping result, refit result, refit
    config, refit fold).
    """
    early = fit(cfg, _fold(table, cfg, table.fit_idx), log=None, device=device)
    refit_cfg = cfg.replace(patience=0, restore_best=False)
    fold = _fold(table, refit_cfg, table.refit_idx)
    final = fit(
        refit_cfg,
        fold,
        on_epoch=lambda record: record.epoch >= early.best_epoch,
        log=None,
        device=device,
    )
    return early, final, refit_cfg, fold


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
        summary = {"dir": job["dir"], "rank": job["rank"], "k": job["k"], "seed": cfg.seed}
        try:
            early, final, refit_cfg, fold = fit_and_refit(cfg, table, device)
        except TrainingError as err:  # one diverging seed must not cost the others
            summary.update(status="failed", reason=str(err))
            ray.train.report({"job": json.dumps(summary)})
            done.append(summary)
            continue
        summary.update(
            status="ok",
            best_epoch=early.best_epoch,
            epochs_run=len(early.history),
            stopped_reason=early.stopped_reason,
            early_stopping_loss=early.best_val_loss,
            refit_epochs=len(final.history),
            refit_samples=len(fold.train_idx),
            seconds=early.seconds + final.seconds,
            device=final.device,
        )
        if lead:
            loop_config["progress"].put(
                f"promote: rank {job['rank']} seed {cfg.seed}: best epoch {early.best_epoch} of "
                f"{len(early.history)} (early-stopping loss {early.best_val_loss:.6g}), refit on "
                f"train+validation for {len(final.history)} epoch(s), "
                f"{early.seconds + final.seconds:.1f}s"
            )
            with tempfile.TemporaryDirectory() as d:
                index = pd.DatetimeIndex(table.index)
                save_run(d, result=final, cfg=refit_cfg, fold=fold, index=index)
                _add_early_stopping_record(Path(d), early, len(fold.train_idx))
                ray.train.report(
                    {"job": json.dumps(summary)},
                    checkpoint=Checkpoint.from_directory(d),
                    checkpoint_dir_name=job["dir"],
                )
        else:
            ray.train.report({"job": json.dumps(summary)})  # a collective: every rank reports
        done.append(summary)
    return done


def _add_early_stopping_record(run_dir: Path, early, refit_samples: int) -> None:
    """training_metrics.json holds the refit's curves; add the run that found the epoch count."""
    path = run_dir / "training_metrics.json"
    info = json.loads(path.read_text())
    info["refit"] = {
        "trained_on": "train+validation",
        "samples": refit_samples,
        "epochs": info["epochs_run"],
        "note": "val_losses of the refit are in-sample: the refit trains on the validation part",
    }
    info["early_stopping_run"] = {
        "trained_on": "train",
        "train_losses": [r.train_loss for r in early.history],
        "val_losses": [r.val_loss for r in early.history],
        "best_epoch": early.best_epoch,
        "best_val_loss": early.best_val_loss,
        "stopped_reason": early.stopped_reason,
        "metrics": early.metrics,
    }
    write_json(path, info)


@contextmanager
def _relay(progress: Queue, log):
    """Print the workers' progress lines while the block runs, then the last of them."""
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                log(progress.get(timeout=0.5))
            except Empty:
                continue

    thread = threading.Thread(target=pump, name="promote-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        while not progress.empty():
            log(progress.get_nowait())
        progress.shutdown()


def train_all(
    picks: list[Pick],
    table: TrainingTable,
    *,
    seeds: int,
    workers: int,
    cpus_per_worker: int,
    models_dir: Path,
    storage: str,
    log,
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
        for k in range(seeds)
    ]
    use_gpu = ray.cluster_resources().get("GPU", 0) >= workers
    run_name = f"promote-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log(
        f"Training {len(jobs)} model(s) ({len(picks)} config(s) x {seeds} seed(s)) in one "
        f"TorchTrainer: {workers} worker(s), {'a GPU' if use_gpu else 'CPU'} each"
    )
    progress = Queue()  # rank 0's progress lines, printed by the driver as they come
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "table": ray.put(table),
            "jobs": jobs,
            "threads": cpus_per_worker,
            "progress": progress,
        },
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {})},
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
        # In a task that knows this Ray's address (orchestrator.runtime.ray_session.on_this_ray): no
        # State API tracebacks from Ray Train where another Ray runs on the machine. Rank
        # 0's progress lines come back through the queue meanwhile.
        with _relay(progress, log):
            jobs_done, failure = on_this_ray(_fit_and_copy, trainer, models_dir)
    finally:
        if "://" not in storage:  # a local run folder: only copies of models_dir's runs
            shutil.rmtree(Path(storage) / run_name, ignore_errors=True)
    if failure is not None:
        raise TrainingError(f"promotion training failed: {failure}")
    return jobs_done


def _fit_and_copy(trainer: TorchTrainer, models_dir: Path) -> tuple[list, str | None]:
    """(job summaries, None), or ([], why) when training failed; each run is copied to
    ``models_dir/<rank>/seed<k>/``."""
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as err:
        return [], str(err)
    for checkpoint, _ in result.best_checkpoints or []:
        rank, seed = Path(checkpoint.path).name.removeprefix("rank").split("-seed")
        checkpoint.to_directory(str(models_dir / rank / f"seed{seed}"))
    return list(result.return_value or []), None
