"""The one training loop: ``fit(cfg, fold)`` trains a SequenceModel on one fold.

No Ray here. The fold's arrays go to the device once; each batch is a gather of windows
from the scaled series (no DataLoader, no per-sample Python). Per epoch: train, validate on
the fold's early-stopping anchors, step the schedule, early-stop (keeping the best
weights), call ``on_epoch``; at the end the restored best epoch predicts the fold's
evaluation anchors once. Under ``torch.distributed`` (world size > 1, e.g. a Ray Train
worker) the model is wrapped in DistributedDataParallel and each rank trains a strided shard
of the same permutation.

Where the rest lives: inference in ``inference``, losses in ``losses``, the optimizer and
gradients in ``optim``, the out-of-memory retry in ``oom``, the CPU speed-ups that use
torch internals in ``fast_paths`` (one switch), device/AMP/determinism in ``devices``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from trainables.errors import TrainingError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.prep.fold_checks import check_fold
from trainables.prep.naive import residual_applies
from trainables.prep.windows import gather_windows
from trainables.training import ddp, fast_paths
from trainables.training.devices import Deterministic, autocast, resolve_amp, resolve_device
from trainables.training.gpu_probe import choose_batch_size
from trainables.training.inference import PREDICT_BATCH, evaluate, predict_scaled
from trainables.training.losses import WeightedLoss, class_weight
from trainables.training.metrics import classification_metrics, fold_outputs
from trainables.training.network import SequenceModel
from trainables.training.oom import Snapshot, retry_on_oom
from trainables.training.optim import gradients, make_optimizer, set_lr
from trainables.training.schedules import EarlyStopping, LRSchedule

__all__ = [
    "PREDICT_BATCH",
    "EarlyStopping",
    "EpochRecord",
    "FitResult",
    "LRSchedule",
    "evaluate",
    "fit",
    "predict_scaled",
    "resolve_amp",
    "resolve_device",
]


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    lr: float  # learning rate at the epoch's start
    grad_norm: float  # mean total gradient norm before clipping
    seconds: float
    batch_size: int
    val_f1: float | None = None  # classification: macro F1 on the early-stopping anchors
    # regression: per-target MSE on the early-stopping anchors in scaled units (times the
    # scaler's scale squared: original units), whatever the training loss
    val_mse: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int
    best_val_loss: float
    final_train_loss: float
    final_val_loss: float
    stopped_reason: str  # 'early_stopping' | 'max_epochs' | 'callback'
    metrics: dict  # task metrics of the returned model on fold.scored_idx
    # [n, T] regression in original units, or [n, 3] class probabilities, for
    # fold.scored_idx (eval_idx, else stop_idx): row k belongs to fold.scored_idx[k]
    predictions: np.ndarray
    batch_size: int
    amp: str  # 'bf16' | 'fp16' | 'off', as run
    device: str
    seconds: float
    model: SequenceModel = field(repr=False)  # best weights (restore_best), on the CPU


def fit(
    cfg: TrainConfig,
    fold: FoldData,
    *,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = print,
    gpu_share: float | None = None,
    on_batch: Callable[[int, int, int], None] | None = None,
) -> FitResult:
    """Train on ``fold.train_idx``, validate and early-stop on ``fold.stop_idx``, then
    predict ``fold.eval_idx`` once with the restored best epoch (``fold.stop_idx`` when
    ``eval_idx`` is empty).

    ``on_epoch(record)`` runs after every epoch; returning True stops training.
    ``on_batch(epoch, samples, samples_per_epoch)`` runs after every training batch with the
    samples this rank trained so far in the epoch (progress within long epochs).
    ``device`` overrides ``cfg.device``; ``log=None`` is silent. ``gpu_share`` (0-1] is the
    part of the GPU this run may use (a sweep's fractional ``--gpus-per-trial``): the batch
    probe of ``batch_size='auto'`` keeps within it.
    """
    start = time.perf_counter()
    check_fold(cfg, fold)
    dev = resolve_device(device, cfg.device)
    amp = resolve_amp(cfg.amp, dev)
    with Deterministic(dev), fast_paths.unfilled_memory():
        trainer = _Trainer(cfg, fold, dev, amp, log=log, budget=_memory_budget(dev, gpu_share))
        trainer.on_batch = on_batch
        reason = trainer.run(on_epoch)
        return trainer.result(reason, start)


@dataclass
class _Validation:
    loss: float
    f1: float | None  # classification
    mse: list[float] | None  # regression, per target


class _Trainer:
    """One fit: the fold on the device, the model, optimizer, schedule and early stopping."""

    def __init__(
        self,
        cfg: TrainConfig,
        fold: FoldData,
        dev: torch.device,
        amp: str,
        *,
        log: Callable[[str], None] | None,
        budget: int | None,
    ) -> None:
        self.cfg, self.fold, self.dev, self.amp = cfg, fold, dev, amp
        self.rank, self.world = ddp.rank_world()
        self.say = log if (log is not None and self.rank == 0) else (lambda _msg: None)
        torch.manual_seed(cfg.seed)  # model init: the same on every rank
        residual = _residual_index(cfg, fold)
        self.core = SequenceModel(cfg, fold.n_features, fold.n_outputs, residual_index=residual)
        self.model = ddp.wrap(self.core.to(dev), dev, self.world)
        torch.manual_seed(cfg.seed + self.rank)  # dropout masks differ between ranks
        self.gen = torch.Generator().manual_seed(cfg.seed)  # the permutation: same on every rank
        # The fold goes to the device once; batches are gathers from these tensors.
        self.x = torch.from_numpy(fold.x).to(dev)  # [n, F]
        self.y = torch.from_numpy(fold.y).to(dev)  # [n, T] float32 or [n] int64
        self.train_idx = torch.from_numpy(fold.train_idx).to(dev)
        self.stop_idx = torch.from_numpy(fold.stop_idx).to(dev)
        self.optimizer = make_optimizer(cfg, self.model)
        self.grads = gradients(list(self.model.parameters()), single_process=self.world == 1)
        self.max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # 0: no clipping
        self.schedule = LRSchedule(cfg)
        self.criterion = WeightedLoss(cfg, class_weight(cfg, fold, dev))
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self.stopper = EarlyStopping(
            patience=cfg.patience, min_delta=cfg.min_delta, restore_best=cfg.restore_best
        )
        self.batch = choose_batch_size(
            cfg,
            n_features=fold.n_features,
            n_outputs=fold.n_outputs,
            device=dev,
            log=self.say,
            max_batch=max(1, min(8192, len(fold.train_idx))),
            memory_budget_bytes=budget,
        )
        self.history: list[EpochRecord] = []
        self.on_batch: Callable[[int, int, int], None] | None = None
        self.say(self._start_line())
        if residual is not None:
            self.say(
                f"residual: predicting the change of {fold.target_names} from the last input value"
            )

    # ------------------------------------------------------------------ the loop

    def run(self, on_epoch: Callable[[EpochRecord], bool | None] | None) -> str:
        """Train epoch by epoch; returns why it stopped (FitResult.stopped_reason)."""
        for epoch in range(1, self.cfg.epochs + 1):
            t0 = time.perf_counter()
            ((train_loss, grad_norm, lr), val), self.batch = retry_on_oom(
                lambda batch, e=epoch: (self.train_epoch(e, batch), self.validate(e)),
                self.batch,
                snapshot=Snapshot(self.core, self.optimizer, self.gen),
                epoch=epoch,
                device=self.dev,
                log=self.say,
            )
            stop = self.stopper.step(epoch, val.loss, self.core)  # keeps the best weights
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                val_loss=val.loss,
                lr=lr,
                grad_norm=grad_norm,
                seconds=time.perf_counter() - t0,
                batch_size=self.batch,
                val_f1=val.f1,
                val_mse=val.mse,
            )
            self.history.append(record)
            self.say(self._epoch_line(record))
            if self.schedule.observe(val.loss):
                self.say(
                    f"(no improvement for {self.schedule.patience} epochs, "
                    f"LR reduced to {self.schedule.current:.6f})"
                )
            asked = bool(on_epoch(record)) if on_epoch is not None else False
            if ddp.agree(asked, self.dev, self.world):  # any rank's request stops them all
                self.say(f"Stopped by the epoch callback at epoch {epoch}")
                return "callback"
            if stop:
                best = self.stopper.best_epoch
                self.say(f"Early stopping triggered at epoch {epoch}. Best epoch was {best}")
                return "early_stopping"
        return "max_epochs"

    def train_epoch(self, epoch: int, batch: int) -> tuple[float, float, float]:
        """One pass over the shuffled training anchors: (mean loss, mean pre-clip grad norm,
        the learning rate at its start)."""
        self.model.train()
        perm = torch.randperm(len(self.train_idx), generator=self.gen).to(self.dev)
        order = self.train_idx[ddp.shard(perm, self.rank, self.world)]
        n_batches = math.ceil(len(order) / batch)
        first_lr = self.schedule.lr(epoch - 1, 0, n_batches)
        sums, weights, norms = [], [], []
        for k in range(n_batches):
            if k == 0 or self.schedule.per_batch:
                set_lr(self.optimizer, self.schedule.lr(epoch - 1, k, n_batches))
            loss_sum, weight, norm = self.train_step(order[k * batch : (k + 1) * batch])
            # Kept on the device: one sync per epoch, not per batch.
            sums.append(loss_sum)
            weights.append(weight)
            norms.append(norm)
            if self.on_batch is not None:
                self.on_batch(epoch, min((k + 1) * batch, len(order)), len(order))
        return (*self._epoch_means(epoch, sums, weights, norms), first_lr)

    def train_step(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimizer step on the windows ending at ``idx``: (loss sum, weight, norm)."""
        xb = gather_windows(self.x, idx, self.fold.sequence_length)  # [B, L, F]
        with autocast(self.dev, self.amp):
            out = self.model(xb)  # [B, n_outputs]
        loss_sum, weight = self.criterion(out, self.y[idx])
        self.grads.zero()
        self.scaler.scale(loss_sum / weight).backward()  # fp16 only: a scaled loss
        self.scaler.unscale_(self.optimizer)  # clip and measure the true gradient
        norm = self.grads.clip(self.max_norm)  # the norm before clipping
        self.scaler.step(self.optimizer)  # skipped by fp16 when the gradient overflowed
        self.scaler.update()
        return loss_sum.detach(), weight.detach(), norm.detach()

    def validate(self, epoch: int) -> _Validation:
        """Loss (and F1 or per-target MSE) of the current weights on the stop anchors."""
        out = predict_scaled(  # unpadded: it decides early stopping only (inference.py)
            self.core, self.x, self.stop_idx, self.fold.sequence_length, amp=self.amp, pad=False
        )
        y = self.y[self.stop_idx]
        loss_sum, weight = self.criterion(out, y)
        loss = float(ddp.mean_over_ranks(loss_sum / weight, self.world))
        if not math.isfinite(loss):
            raise TrainingError(
                f"validation loss became {loss} at epoch {epoch}; lower learning_rate or grad_clip"
            )
        if self.fold.task == "classification":
            labels = self.fold.y[self.fold.stop_idx]
            f1 = classification_metrics(labels, out.argmax(dim=1).cpu().numpy())["macro_f1"]
            return _Validation(loss, f1, None)
        mse = (out.float() - y).square().mean(dim=0)  # [n_stop, T] -> [T]
        return _Validation(loss, None, [float(v) for v in mse.cpu()])

    def result(self, reason: str, start: float) -> FitResult:
        """The best epoch's weights predict the scored anchors once; ``start`` is the fit's
        ``perf_counter`` at its start."""
        self.stopper.restore(self.core)
        scored = torch.from_numpy(self.fold.scored_idx).to(self.dev)
        out = predict_scaled(self.core, self.x, scored, self.fold.sequence_length, amp=self.amp)
        predictions, metrics = fold_outputs(out.cpu().numpy(), self.fold, self.fold.scored_idx)
        best, best_epoch = self.stopper.best_value, self.stopper.best_epoch
        seconds = time.perf_counter() - start
        self.say(
            f"Training complete! Best Val Loss: {best:.6f} at epoch {best_epoch} ({seconds:.1f}s)"
        )
        return FitResult(
            history=self.history,
            best_epoch=best_epoch,
            best_val_loss=best,
            final_train_loss=self.history[-1].train_loss,
            final_val_loss=self.history[-1].val_loss,
            stopped_reason=reason,
            metrics=metrics,
            predictions=predictions,
            batch_size=self.batch,
            amp=self.amp,
            device=str(self.dev),
            seconds=seconds,
            model=self.core.to("cpu").eval(),
        )

    # ------------------------------------------------------------------ helpers

    def _epoch_means(
        self, epoch: int, sums: list, weights: list, norms: list
    ) -> tuple[float, float]:
        """An epoch's mean loss over every rank and mean finite gradient norm; a non-finite
        batch loss stops the run, naming the batch."""
        sums_t = torch.stack(sums)
        bad = ~torch.isfinite(sums_t)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0]) + 1
            raise TrainingError(
                f"loss became {float(sums_t[first - 1])} at epoch {epoch} (batch {first}); "
                "lower learning_rate or grad_clip"
            )
        total = torch.stack([sums_t.sum(), torch.stack(weights).sum()]).double()
        total = ddp.sum_over_ranks(total, self.world)  # the same mean on every rank
        norms_t = torch.stack(norms)
        finite = norms_t[torch.isfinite(norms_t)]  # fp16 overflow steps are skipped anyway
        grad_norm = float(finite.mean()) if finite.numel() else math.inf
        return float(total[0] / total[1]), grad_norm

    def _start_line(self) -> str:
        dev, fold = self.dev, self.fold
        where = f"{dev} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else str(dev)
        return (
            f"Device: {where} | AMP: {self.amp} | batch {self.batch} | "
            f"{len(fold.train_idx):,} train / {len(fold.stop_idx):,} early-stopping samples"
            + (f" / {len(fold.eval_idx):,} eval samples" if len(fold.eval_idx) else "")
            + (f" | {self.world} ranks" if self.world > 1 else "")
        )

    def _epoch_line(self, r: EpochRecord) -> str:
        f1 = f", Val F1: {r.val_f1:.4f}" if r.val_f1 is not None else ""
        return (
            f"Epoch {r.epoch}/{self.cfg.epochs} - Train Loss: {r.train_loss:.6f}, "
            f"Val Loss: {r.val_loss:.6f}{f1}, LR: {r.lr:.6f}, Grad Norm: {r.grad_norm:.3f}, "
            f"Time: {r.seconds:.1f}s" + (" (new best)" if self.stopper.improved else "")
        )


def _memory_budget(dev: torch.device, gpu_share: float | None) -> int | None:
    """Bytes of GPU memory a fractional ``gpu_share`` may use; None for all of it / CPU."""
    if gpu_share is None or dev.type != "cuda" or not 0 < gpu_share < 1:
        return None
    return int(gpu_share * torch.cuda.get_device_properties(dev).total_memory)


def _residual_index(cfg: TrainConfig, fold: FoldData) -> list[int] | None:
    if not cfg.residual or fold.task != "regression":
        return None
    if not residual_applies(fold.feature_names, fold.target_names):
        return None
    return [fold.feature_names.index(t) for t in fold.target_names]
