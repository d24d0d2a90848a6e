"""One Ray Tune trial: a sampled config trained and scored fold by fold.

Each fold trains on its ``fit`` anchors, early-stops on its inner ``stop`` block (purged from
``fit``) and is scored once, by the restored best epoch, on its evaluation anchors, which
nothing before that point has seen. After each fold the trial reports the objective over
the folds done (so ASHA / the median rule can stop it) and checkpoints the finished folds
(their scores as JSON, their out-of-fold predictions as ``.npy``), so a retried trial picks
up at the fold where it died instead of starting over.

The regression objective is ``mse_ratio``: MSE over the naive forecast's MSE in original
units (``trainables.prep.naive``), pooled over folds, so it does not depend on the scaler or the
training loss a trial samples. Classification: macro-F1, averaged over folds.

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
from ray import tune

from orchestrator.stats.objective import objective_of, running_objective
from orchestrator.sweep.prepare import SweepData
from orchestrator.sweep.schedulers import RungPlan
from orchestrator.sweep.trial_reports import FoldReporter, ReportClock
from trainables.errors import TrainingError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData, prepare_fold_for

__all__ = [
    "FOLDS_FILE",
    "TrialDiverged",
    "fold_score",
    "objective_of",
    "oof_file",
    "run_trial",
    "running_objective",
]

FOLDS_FILE = "folds.json"
_BY_TARGET = ("mse_by_target", "naive_mse_by_target")


class TrialDiverged(RuntimeError):
    """Raised to mark a trial failed; a retry sees the checkpoint and fails again at once."""


def oof_file(k: int) -> str:
    """Name of fold ``k``'s out-of-fold predictions inside a trial checkpoint."""
    return f"oof_fold{k}.npy"


def fold_score(task: str, metrics: dict) -> dict:
    """The fold's record: every scalar metric plus the per-target MSEs pooling needs."""
    out = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    if task == "regression":
        out.update({k: [float(v) for v in metrics[k]] for k in _BY_TARGET})
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)


# ---------------------------------------------------------------------- checkpoints


def _load_done(checkpoint) -> tuple[dict, list[np.ndarray]]:
    if checkpoint is None:
        return {"folds": [], "diverged": None}, []
    with checkpoint.as_directory() as d:
        done = json.loads((Path(d) / FOLDS_FILE).read_text())
        oof = [
            np.load(Path(d) / oof_file(f["fold"]), allow_pickle=False)
            for f in done["folds"]
            if (Path(d) / oof_file(f["fold"])).is_file()
        ]
    return done, oof


def _report(
    done: dict, task: str, n_folds: int, extra: dict, *, oof=None, partial=None, mid_fold=False
) -> None:
    """Report to Tune. After a fold: the objective so far, with a checkpoint of the done folds.

    Mid-fold (orchestrator/sweep/trial_reports.py; ``partial``: the current fold's best
    early-stopping score, if any): the estimate over the done folds and the partial one, no
    checkpoint, so ASHA can stop a bad trial in a fold, or a progress report.
    """
    name, _ = objective_of(task)
    scores = [f[name] for f in done["folds"]]
    metrics = {
        "objective": running_objective(done["folds"], task, partial),
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
    if mid_fold:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / FOLDS_FILE).write_text(json.dumps(done))
        for f, pred in zip(done["folds"], oof or [], strict=False):
            np.save(Path(d) / oof_file(f["fold"]), pred, allow_pickle=False)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


# ---------------------------------------------------------------------- folds


def _fold_data(cfg: TrainConfig, data: SweepData, k: int) -> FoldData:
    fit_idx, stop_idx, eval_idx = data.folds[k]
    # Only the rows fold k reads, once: walk-forward fold 0 reads the first third.
    return prepare_fold_for(
        cfg, data.frame(), data.targets, fit_idx, stop_idx, eval_idx, only_rows_read=True
    )


def _train_fold(cfg: TrainConfig, fold: FoldData, workers: int, cpus: float, gpus: float, reporter):
    if workers <= 1:
        # torch: in the trial's process, not the driver's
        from trainables.training.trainer import fit

        return fit(
            cfg,
            fold,
            log=None,
            gpu_share=gpus or None,
            on_epoch=reporter.on_epoch,
            on_batch=reporter.on_batch,
        )
    from orchestrator.sweep.distributed import fit_distributed

    return fit_distributed(cfg, fold, workers=workers, cpus=cpus, gpus=gpus)


def run_trial(
    config: dict,
    *,
    data: SweepData,
    base: dict,
    workers: int = 1,
    cpus: float = 1.0,
    gpus: float = 0.0,
    fail_at_fold: int | None = None,
    rungs: list[float] | None = None,
) -> None:
    """Tune function trainable. ``base`` is the full default config; ``config`` the sample;
    ``rungs``: the scheduler's, for the mid-fold estimates it acts on (None: every epoch's;
    orchestrator/sweep/trial_reports.py)."""
    # torch loads in the trial's process only: the sweep's driver, which pickles this
    # function by reference, never needs it (a second or more of its start-up).
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    cfg = TrainConfig.from_dict({**base, **config})
    done, oof = _load_done(tune.get_checkpoint())
    if done["diverged"]:
        raise TrialDiverged(done["diverged"])
    name, _ = objective_of(cfg.task)
    n_folds = len(data.folds)
    plan, clock = RungPlan(rungs), ReportClock()

    def send(extra: dict, partial) -> None:
        _report(done, cfg.task, n_folds, extra, partial=partial, mid_fold=True)

    for k in range(len(done["folds"]), n_folds):
        _maybe_inject_fault(fail_at_fold, k)
        start = time.perf_counter()
        fold = _fold_data(cfg, data, k)
        prep_seconds = time.perf_counter() - start
        reporter = FoldReporter(cfg, fold, k, send=send, plan=plan, clock=clock)
        try:
            result = _train_fold(cfg, fold, workers, cpus, gpus, reporter)
        except TrainingError as err:
            _diverged(done, cfg.task, n_folds, k, str(err))
        scores = fold_score(cfg.task, result.metrics)
        if not math.isfinite(scores.get(name, float("nan"))):
            _diverged(done, cfg.task, n_folds, k, f"objective {name} is not finite")
        done["folds"].append(
            {
                "fold": k,
                **scores,
                "best_epoch": int(result.best_epoch),
                "epochs": len(result.history),
                "seconds": float(result.seconds),
                "wall_seconds": time.perf_counter() - start,
                "prep_seconds": prep_seconds,  # building the fold's arrays
                "batch_size": int(result.batch_size),
            }
        )
        oof.append(np.asarray(result.predictions, dtype=np.float64))
        extra = {"fold": k, "fold_objective": scores[name]}
        _report(done, cfg.task, n_folds, extra, oof=oof)
        plan.fold_end(float(k + 1))
        clock.sent(time.perf_counter())


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


def _maybe_inject_fault(fail_at_fold: int | None, k: int) -> None:
    """Test hook: crash once at fold ``k``; a marker in the trial dir lets the retry pass."""
    if fail_at_fold is None or k != fail_at_fold:
        return
    marker = Path(tune.get_context().get_trial_dir()) / "injected-fault"
    if not marker.exists():
        marker.write_text("crashed once")
        raise RuntimeError(f"injected fault at fold {k}")
