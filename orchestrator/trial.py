"""One Ray Tune trial: a sampled config trained and scored fold by fold.

After each fold the trial reports the running mean of the objective (so ASHA / the median
rule can stop it) and checkpoints the finished folds as JSON, so a retried trial picks up
at the fold where it died instead of starting over.

With ``workers_per_trial > 1`` each fold is trained by a Ray Train ``TorchTrainer`` (DDP)
launched from inside the trial; with 1 the same trainer runs in the trial's own process.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ray import tune

from orchestrator.prepare import SweepData
from trainables.config import TrainConfig
from trainables.dataset import FoldData, prepare_fold
from trainables.errors import TrainingError
from trainables.trainer import fit

__all__ = ["FOLDS_FILE", "TrialDiverged", "objective_of", "run_trial"]

FOLDS_FILE = "folds.json"


class TrialDiverged(RuntimeError):
    """Raised to mark a trial failed; a retry sees the checkpoint and fails again at once."""


def objective_of(task: str) -> tuple[str, str]:
    """(metric name, mode) optimised by the sweep for a task."""
    return ("macro_f1", "max") if task == "classification" else ("val_mse", "min")


def fold_score(task: str, result, fold: FoldData) -> dict[str, float]:
    """The fold's comparable score: macro-F1, or MSE in scaled target units.

    Scaled MSE does not depend on the training loss a trial picked (mse, huber, ...), so
    trials stay comparable, and with loss='mse' it equals the trainer's validation loss.
    """
    metrics = {k: float(v) for k, v in result.metrics.items() if _is_number(v)}
    if task == "regression":
        pred = fold.scaler.transform(result.predictions, fold.target_names)
        true = fold.y[fold.eval_idx]
        metrics["val_mse"] = float(np.mean((pred - true) ** 2))
        # Persistence (the target's value at the anchor) on the same rows: skill > 0 beats it.
        naive = float(np.mean((fold.y_now[fold.eval_idx] - true) ** 2))
        metrics["persistence_mse"] = naive
        metrics["skill"] = 1.0 - metrics["val_mse"] / naive if naive > 0 else float("nan")
    return metrics


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)


def _load_done(checkpoint) -> dict:
    if checkpoint is None:
        return {"folds": [], "diverged": None}
    with checkpoint.as_directory() as d:
        return json.loads((Path(d) / FOLDS_FILE).read_text())


def _report(
    done: dict, task: str, n_folds: int, extra: dict, *, partial: float | None = None
) -> None:
    """Report to Tune. After a fold: the running mean, with a checkpoint of the done folds.

    Mid-fold (``partial`` = the current fold's best validation score so far): the estimate
    mean(done folds + partial), no checkpoint, so ASHA can stop a bad trial inside a fold.
    """
    name, _ = objective_of(task)
    scores = [f[name] for f in done["folds"]]
    estimate = scores if partial is None else [*scores, partial]
    metrics = {
        "objective": float(np.mean(estimate)) if estimate else float("nan"),
        "objective_std": float(np.std(scores)) if scores else float("nan"),
        "folds_done": len(scores),
        "train_seconds": float(sum(f["seconds"] for f in done["folds"])),
        "epochs_run": int(sum(f["epochs"] for f in done["folds"])),
        "n_folds": n_folds,
        # The driver builds the leaderboard and MLflow runs from this (no checkpoint reads).
        "folds_json": json.dumps(done["folds"]),
        # ASHA's clock: folds done plus the share of the current fold's epoch budget.
        "progress": float(len(scores)),
        **extra,
    }
    if partial is not None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / FOLDS_FILE).write_text(json.dumps(done))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _train_fold(
    cfg: TrainConfig,
    data: SweepData,
    k: int,
    workers: int,
    cpus: float,
    gpus: float,
    on_epoch=None,
):
    """Train fold ``k``; returns (FitResult-like with metrics/predictions, FoldData)."""
    train_idx, eval_idx = data.folds[k]
    fold = prepare_fold(
        data.frame(),
        data.targets,
        train_idx,
        eval_idx,
        f_cols=list(cfg.f_cols),
        seq_len=cfg.sequence_length,
        scaler=cfg.scaler,
    )
    if workers <= 1:
        return fit(cfg, fold, log=None, gpu_share=gpus or None, on_epoch=on_epoch), fold
    from orchestrator.distributed import fit_distributed

    return fit_distributed(cfg, fold, workers=workers, cpus=cpus, gpus=gpus), fold


def run_trial(
    config: dict,
    *,
    data: SweepData,
    base: dict,
    workers: int = 1,
    cpus: float = 1.0,
    gpus: float = 0.0,
    fail_at_fold: int | None = None,
) -> None:
    """Tune function trainable. ``base`` is the full default config; ``config`` the sample."""
    torch.set_num_threads(max(1, int(cpus)))
    cfg = TrainConfig.from_dict({**base, **config})
    done = _load_done(tune.get_checkpoint())
    if done["diverged"]:
        raise TrialDiverged(done["diverged"])
    name, _ = objective_of(cfg.task)
    for k in range(len(done["folds"]), len(data.folds)):
        _maybe_inject_fault(fail_at_fold, k)
        start = time.perf_counter()
        on_epoch = _epoch_reporter(cfg, done, k, len(data.folds))
        try:
            result, fold = _train_fold(cfg, data, k, workers, cpus, gpus, on_epoch)
        except TrainingError as err:
            _diverged(done, cfg.task, len(data.folds), k, str(err))
        scores = fold_score(cfg.task, result, fold)
        if not math.isfinite(scores.get(name, float("nan"))):
            _diverged(done, cfg.task, len(data.folds), k, f"objective {name} is not finite")
        done["folds"].append(
            {
                "fold": k,
                **scores,
                "best_epoch": int(result.best_epoch),
                "epochs": len(result.history),
                "seconds": float(result.seconds),
                "wall_seconds": time.perf_counter() - start,
                "batch_size": int(result.batch_size),
            }
        )
        _report(done, cfg.task, len(data.folds), {"fold": k, "fold_objective": scores[name]})


def _diverged(done: dict, task: str, n_folds: int, k: int, reason: str) -> None:
    """Checkpoint the failure (so a retry fails at once, untrained) and fail the trial."""
    done["diverged"] = f"fold {k}: {reason}"
    _report(
        done,
        task,
        n_folds,
        {"fold": k, "fold_objective": float("nan"), "failure": done["diverged"]},
    )
    raise TrialDiverged(done["diverged"])


def _epoch_reporter(cfg: TrainConfig, done: dict, k: int, n_folds: int):
    """Per-epoch reports inside fold ``k``, when the epoch's validation score is the objective.

    That holds for classification (macro-F1) and for regression trained with MSE (its
    validation loss is the scaled MSE); other losses are only scored at fold ends.
    """
    classification = cfg.task == "classification"
    if not classification and cfg.resolved_loss != "mse":
        return None
    best = [None]

    def on_epoch(rec) -> None:
        value = rec.val_f1 if classification else rec.val_loss
        if value is None or not math.isfinite(value):
            return
        better = max if classification else min
        best[0] = value if best[0] is None else better(best[0], value)
        _report(
            done,
            cfg.task,
            n_folds,
            # Strictly below k + 1: a fold's end (and, for the last fold, the scheduler's
            # max_t) is reached only by the fold-end report that records the fold's score.
            {"progress": k + rec.epoch / (cfg.epochs + 1), "epoch": rec.epoch},
            partial=best[0],
        )

    return on_epoch


def _maybe_inject_fault(fail_at_fold: int | None, k: int) -> None:
    """Test hook: crash once at fold ``k``; a marker in the trial dir lets the retry pass."""
    if fail_at_fold is None or k != fail_at_fold:
        return
    marker = Path(tune.get_context().get_trial_dir()) / "injected-fault"
    if not marker.exists():
        marker.write_text("crashed once")
        raise RuntimeError(f"injected fault at fold {k}")
