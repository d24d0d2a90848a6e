"""Train one fold with Ray Train's TorchTrainer (DDP), launched from inside a Tune trial.

Used when a sweep runs with ``--workers-per-trial > 1``. The workers run the very same
``trainables.training.trainer.fit``; it sees ``torch.distributed`` initialised by Ray Train and
wraps the model in DistributedDataParallel, each rank training on its shard of every epoch.
Rank 0 reports the fold's scores back; the trial reads them from the Result.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import ray.train
import ray.train.torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from orchestrator.runtime.ray_session import on_this_ray
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.training.trainer import fit

__all__ = ["fit_distributed"]

RESULT_FILE = "fold_result.json"


def _worker_loop(loop_config: dict) -> None:
    cfg = TrainConfig.from_dict(loop_config["cfg"])
    fold: FoldData = loop_config["fold"]
    result = fit(
        cfg,
        fold,
        log=None,
        device=ray.train.torch.get_device(),
        gpu_share=loop_config["gpus"] or None,
    )
    payload = {
        # Scalars plus the per-target lists the objective pools (JSON-ready values only).
        "metrics": {
            k: v for k, v in result.metrics.items() if isinstance(v, (int, float, list, str))
        },
        "predictions": result.predictions.tolist(),
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "seconds": result.seconds,
        "batch_size": result.batch_size,
    }
    # Every rank must report (it is a collective). Train V2 keeps only metrics that come
    # with a checkpoint, so rank 0 hands its result over as a small JSON checkpoint.
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report({})
        return
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / RESULT_FILE).write_text(json.dumps(payload))
        ray.train.report({}, checkpoint=ray.train.Checkpoint.from_directory(d))


def _fit_payload(trainer: TorchTrainer) -> dict:
    with trainer.fit().checkpoint.as_directory() as d:
        return json.loads((Path(d) / RESULT_FILE).read_text())


def fit_distributed(
    cfg: TrainConfig,
    fold: FoldData,
    *,
    workers: int,
    cpus: float = 1.0,
    gpus: float = 0.0,
    storage_path: str | None = None,
):
    """Run ``fit`` on ``workers`` DDP workers; returns a FitResult-like namespace.

    Each worker asks for ``cpus`` CPUs and ``gpus`` GPUs (the sweep's per-trial settings).
    """
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg.to_dict(), "fold": fold, "gpus": gpus},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=gpus > 0, resources_per_worker=resources
        ),
        run_config=RunConfig(storage_path=storage_path),
    )
    # In a task that knows this Ray's address: no State API tracebacks where another Ray runs.
    payload = on_this_ray(_fit_payload, trainer)
    return SimpleNamespace(
        metrics=payload["metrics"],
        predictions=np.asarray(payload["predictions"], dtype=np.float64),
        best_epoch=payload["best_epoch"],
        history=[None] * payload["epochs"],
        seconds=payload["seconds"],
        batch_size=payload["batch_size"],
    )
