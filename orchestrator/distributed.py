"""Train one fold with Ray Train's TorchTrainer (DDP), launched from inside a Tune trial.

Used when a sweep runs with ``--workers-per-trial > 1``. The workers run the very same
``trainables.trainer.fit``; it sees ``torch.distributed`` initialised by Ray Train and
wraps the model in DistributedDataParallel, each rank training on its shard of every epoch.
Rank 0 reports the fold's scores back; the trial reads them from the Result.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import ray.train
import ray.train.torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from trainables.config import TrainConfig
from trainables.dataset import FoldData
from trainables.trainer import fit

__all__ = ["fit_distributed"]


def _worker_loop(loop_config: dict) -> None:
    cfg = TrainConfig.from_dict(loop_config["cfg"])
    fold: FoldData = loop_config["fold"]
    result = fit(cfg, fold, log=None, device=ray.train.torch.get_device())
    payload = {
        "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
        "predictions": result.predictions.tolist(),
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "seconds": result.seconds,
        "batch_size": result.batch_size,
    }
    # Every rank must report (it is a collective); only rank 0's metrics reach the Result.
    ray.train.report({"fold_result": json.dumps(payload)})


def fit_distributed(
    cfg: TrainConfig,
    fold: FoldData,
    *,
    workers: int,
    use_gpu: bool,
    storage_path: str | None = None,
):
    """Run ``fit`` on ``workers`` DDP workers; returns a FitResult-like namespace."""
    import numpy as np

    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg.to_dict(), "fold": fold},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(storage_path=storage_path),
    )
    payload = json.loads(trainer.fit().metrics["fold_result"])
    return SimpleNamespace(
        metrics=payload["metrics"],
        predictions=np.asarray(payload["predictions"], dtype=np.float64),
        best_epoch=payload["best_epoch"],
        history=[None] * payload["epochs"],
        seconds=payload["seconds"],
        batch_size=payload["batch_size"],
    )
