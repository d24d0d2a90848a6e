"""The one training loop: ``fit(cfg, fold)`` trains a SequenceModel on one fold.

No Ray here. The fold's arrays go to the device once; each batch is a gather of windows
from the scaled series (no DataLoader, no per-sample Python). Per epoch: train, validate on
the fold's early-stopping anchors, step the schedule, early-stop, call ``on_epoch``; at the
end the restored best epoch predicts the fold's evaluation anchors once.
Under ``torch.distributed`` (world size > 1, e.g. a Ray Train worker) the model is wrapped in
DistributedDataParallel and each rank trains a strided shard of the same permutation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from trainables.config import TrainConfig
from trainables.dataset import FoldData
from trainables.devices import Deterministic, autocast, resolve_amp, resolve_device
from trainables.errors import ConfigError, DataError, TrainingError
from trainables.gpu_probe import choose_batch_size, is_oom
from trainables.metrics import classification_metrics, fold_outputs
from trainables.model import SequenceModel
from trainables.scaling import rows_covered
from trainables.schedules import EarlyStopping, LRSchedule, improves
from trainables.windows import gather_windows

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

# Inference runs in batches of exactly this many windows (the last one zero-padded): with a
# fixed shape, a window's output does not depend on its neighbours, so predictions from
# artifacts.predict() equal the trainer's bit for bit.
PREDICT_BATCH = 1024


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


# ---------------------------------------------------------------------- loss and inference


class _Loss:
    """Weighted per-sample losses; ``__call__`` returns (sum of w * loss, sum of w)."""

    def __init__(self, cfg: TrainConfig, class_weight: torch.Tensor | None) -> None:
        self.kind, self.delta, self.gamma = cfg.resolved_loss, cfg.huber_delta, cfg.focal_gamma
        self.class_weight = class_weight

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = out.float()
        if self.kind == "mse":
            per = (out - y).square().mean(dim=1)  # [B, T] -> [B]
        elif self.kind == "mae":
            per = (out - y).abs().mean(dim=1)
        elif self.kind == "huber":
            per = F.huber_loss(out, y, reduction="none", delta=self.delta).mean(dim=1)
        else:
            per = F.cross_entropy(out, y, reduction="none")  # [B, 3] -> [B]
            if self.kind == "focal":
                per = (1 - torch.exp(-per)).pow(self.gamma) * per  # down-weights easy samples
        if self.class_weight is None:
            return per.sum(), per.new_tensor(float(per.numel()))
        w = self.class_weight[y]
        return (w * per).sum(), w.sum()


@torch.no_grad()
def predict_scaled(
    model: nn.Module, x: torch.Tensor, anchors: torch.Tensor, seq_len: int, *, amp: str = "off"
) -> torch.Tensor:
    """Model outputs for ``anchors``: ``[n] -> [n, n_outputs]`` float32 on x's device."""
    model.eval()
    outs = []
    for b in range(0, len(anchors), PREDICT_BATCH):
        idx = anchors[b : b + PREDICT_BATCH]
        xb = gather_windows(x, idx, seq_len)  # [b, L, F]
        if len(idx) < PREDICT_BATCH:
            xb = torch.cat([xb, xb.new_zeros(PREDICT_BATCH - len(idx), *xb.shape[1:])])
        with autocast(x.device, amp):
            outs.append(model(xb)[: len(idx)].float())
    if not outs:
        return torch.empty(0, getattr(model, "n_outputs", 1), device=x.device)
    return torch.cat(outs)


def evaluate(
    model: SequenceModel,
    fold: FoldData,
    anchors: np.ndarray,
    *,
    amp: str = "off",
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, dict]:
    """Predictions (original units / probabilities) and task metrics for any anchors of
    ``fold`` (e.g. the test anchors after training on train and early-stopping on val)."""
    anchors = np.asarray(anchors, dtype=np.int64)
    dev = torch.device(device)
    model = model.to(dev)
    x = torch.from_numpy(fold.x).to(dev)
    out = predict_scaled(model, x, torch.from_numpy(anchors).to(dev), fold.seq_len, amp=amp)
    return fold_outputs(out.cpu().numpy(), fold, anchors)


# ---------------------------------------------------------------------- the loop


def fit(
    cfg: TrainConfig,
    fold: FoldData,
    *,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = print,
    gpu_share: float | None = None,
) -> FitResult:
    """Train on ``fold.train_idx``, validate and early-stop on ``fold.stop_idx``, then
    predict ``fold.eval_idx`` once with the restored best epoch (``fold.stop_idx`` when
    ``eval_idx`` is empty).

    ``on_epoch(record)`` runs after every epoch; returning True stops training.
    ``device`` overrides ``cfg.device``; ``log=None`` is silent. ``gpu_share`` (0-1] is the
    part of the GPU this run may use (a sweep's fractional ``--gpus-per-trial``): the batch
    probe of ``batch_size='auto'`` keeps within it.
    """
    start = time.perf_counter()
    _check_fold(cfg, fold)
    rank, world = _dist_rank_world()
    say = log if (log is not None and rank == 0) else (lambda _msg: None)
    dev = resolve_device(device, cfg.device)
    amp = resolve_amp(cfg.amp, dev)
    determinism = Deterministic(dev)
    try:
        budget = None
        if gpu_share is not None and dev.type == "cuda" and 0 < gpu_share < 1:
            budget = int(gpu_share * torch.cuda.get_device_properties(dev).total_memory)
        return _fit(cfg, fold, dev, amp, on_epoch, say, rank, world, start, budget)
    finally:
        determinism.restore()


def _fit(cfg, fold, dev, amp, on_epoch, say, rank, world, start, budget) -> FitResult:
    L, classification = fold.seq_len, fold.task == "classification"
    n_out = fold.n_outputs
    torch.manual_seed(cfg.seed)  # model init: the same on every rank
    residual = _residual_index(cfg, fold)
    core = SequenceModel(cfg, fold.n_features, n_out, residual_index=residual).to(dev)
    model: nn.Module = core
    if world > 1:
        ids = [dev.index] if dev.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(core, device_ids=ids)
    torch.manual_seed(cfg.seed + rank)  # dropout masks differ between ranks
    gen = torch.Generator().manual_seed(cfg.seed)  # the permutation: the same on every rank

    # The fold goes to the device once; batches are gathers from these tensors.
    x = torch.from_numpy(fold.x).to(dev)  # [n, F]
    y = torch.from_numpy(fold.y).to(dev)  # [n, T] float32 or [n] int64
    train_idx = torch.from_numpy(fold.train_idx).to(dev)
    stop_idx = torch.from_numpy(fold.stop_idx).to(dev)

    optimizer = _make_optimizer(cfg, model)
    grads = _Grads(list(model.parameters()), flat=world == 1)
    schedule = LRSchedule(cfg)
    criterion = _Loss(cfg, _class_weight(cfg, fold, dev) if classification else None)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    stopper = EarlyStopping(
        patience=cfg.patience, min_delta=cfg.min_delta, restore_best=cfg.restore_best
    )
    batch = choose_batch_size(
        cfg,
        n_features=fold.n_features,
        n_outputs=n_out,
        device=dev,
        log=say,
        max_batch=max(1, min(8192, len(fold.train_idx))),
        memory_budget_bytes=budget,
    )
    where = f"{dev} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else str(dev)
    say(
        f"Device: {where} | AMP: {amp} | batch {batch} | {len(fold.train_idx):,} train / "
        f"{len(fold.stop_idx):,} early-stopping samples"
        + (f" / {len(fold.eval_idx):,} eval samples" if len(fold.eval_idx) else "")
        + (f" | {world} ranks" if world > 1 else "")
    )
    if residual is not None:
        say(f"residual: predicting the change of {fold.target_names} from the last input value")

    def train_epoch(epoch: int, batch: int) -> tuple[float, float]:
        """One pass over a shuffled training set; returns (mean loss, mean pre-clip grad norm)."""
        model.train()
        perm = torch.randperm(len(train_idx), generator=gen).to(dev)
        if world > 1:  # equal shards, so every rank runs the same number of steps
            perm = perm[: len(perm) - len(perm) % world][rank::world]
        order = train_idx[perm]
        n_batches = math.ceil(len(order) / batch)
        sums, weights, norms = [], [], []
        for k in range(n_batches):
            if schedule.per_batch:
                _set_lr(optimizer, schedule.lr(epoch - 1, k / n_batches))
            idx = order[k * batch : (k + 1) * batch]
            xb = gather_windows(x, idx, L)  # [B, L, F]
            with autocast(dev, amp):
                out = model(xb)  # [B, n_out]
            loss_sum, weight = criterion(out, y[idx])
            loss = loss_sum / weight
            grads.zero()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # clip and measure the true gradient
            else:
                loss.backward()
            norm = grads.clip(cfg.grad_clip if cfg.grad_clip > 0 else math.inf)  # pre-clip
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            # Kept on the device: one sync per epoch, not per batch.
            sums.append(loss_sum.detach())
            weights.append(weight.detach())
            norms.append(norm.detach())
        sums_t = torch.stack(sums)
        bad = ~torch.isfinite(sums_t)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0]) + 1
            raise TrainingError(
                f"loss became {float(sums_t[first - 1])} at epoch {epoch} (batch {first}); "
                "lower learning_rate or grad_clip"
            )
        total = torch.stack([sums_t.sum(), torch.stack(weights).sum()]).double()
        if world > 1:
            dist.all_reduce(total)  # every rank sees the same mean, so decides the same
        norms_t = torch.stack(norms)
        finite = norms_t[torch.isfinite(norms_t)]  # fp16 overflow steps are skipped anyway
        grad_norm = float(finite.mean()) if finite.numel() else math.inf
        return float(total[0] / total[1]), grad_norm

    def validate() -> tuple[float, float | None, list[float] | None]:
        out = predict_scaled(core, x, stop_idx, L, amp=amp)  # [n_stop, n_out]
        loss_sum, weight = criterion(out, y[stop_idx])
        val = loss_sum / weight
        if world > 1:
            dist.all_reduce(val)
            val = val / world
        if classification:
            labels = fold.y[fold.stop_idx]
            f1 = classification_metrics(labels, out.argmax(dim=1).cpu().numpy())["macro_f1"]
            return float(val), f1, None
        mse = (out.float() - y[stop_idx]).square().mean(dim=0)  # [n_stop, T] -> [T]
        return float(val), None, [float(v) for v in mse.cpu()]

    history: list[EpochRecord] = []
    reason = "max_epochs"
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        lr = schedule.lr(epoch - 1)
        _set_lr(optimizer, lr)
        snapshot = _Snapshot(core, optimizer, gen)
        while True:
            try:
                train_loss, grad_norm = train_epoch(epoch, batch)
                val_loss, val_f1, val_mse = validate()
                break
            except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError
                # Under DDP only the rank that ran out halves its batch; the ranks then
                # disagree, so multi-GPU runs should use a probed or conservative batch size.
                if not is_oom(err):
                    raise
            # Outside the except block, so the failed batch's tensors can be freed.
            if batch <= 1:
                raise TrainingError(
                    f"out of memory at epoch {epoch} even with batch_size=1 on {dev}"
                )
            say(
                f"out of memory at batch size {batch} (epoch {epoch}); redoing the epoch with batch size {batch // 2}"
            )
            batch //= 2
            snapshot.restore()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if not math.isfinite(val_loss):
            raise TrainingError(
                f"validation loss became {val_loss} at epoch {epoch}; lower learning_rate or grad_clip"
            )
        improved = improves(val_loss, stopper.best_value, stopper.min_delta)
        stop = stopper.step(epoch, val_loss, core)
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            lr=lr,
            grad_norm=grad_norm,
            seconds=time.perf_counter() - t0,
            batch_size=batch,
            val_f1=val_f1,
            val_mse=val_mse,
        )
        history.append(record)
        f1_text = f", Val F1: {val_f1:.4f}" if val_f1 is not None else ""
        say(
            f"Epoch {epoch}/{cfg.epochs} - Train Loss: {train_loss:.6f}, Val Loss: {val_loss:.6f}"
            f"{f1_text}, LR: {lr:.6f}, Grad Norm: {grad_norm:.3f}, Time: {record.seconds:.1f}s"
            + (" (new best)" if improved else "")
        )
        if schedule.observe(val_loss):
            say(
                f"(no improvement for {schedule.patience} epochs, LR reduced to {schedule.current:.6f})"
            )
        if _agree(bool(on_epoch(record)) if on_epoch is not None else False, dev, world):
            reason = "callback"
            say(f"Stopped by the epoch callback at epoch {epoch}")
            break
        if stop:
            reason = "early_stopping"
            say(f"Early stopping triggered at epoch {epoch}. Best epoch was {stopper.best_epoch}")
            break

    stopper.restore(core)
    scored = torch.from_numpy(fold.scored_idx).to(dev)
    out = predict_scaled(core, x, scored, L, amp=amp)
    predictions, metrics = fold_outputs(out.cpu().numpy(), fold, fold.scored_idx)
    seconds = time.perf_counter() - start
    say(
        f"Training complete! Best Val Loss: {stopper.best_value:.6f} at epoch {stopper.best_epoch} ({seconds:.1f}s)"
    )
    return FitResult(
        history=history,
        best_epoch=stopper.best_epoch,
        best_val_loss=stopper.best_value,
        final_train_loss=history[-1].train_loss,
        final_val_loss=history[-1].val_loss,
        stopped_reason=reason,
        metrics=metrics,
        predictions=predictions,
        batch_size=batch,
        amp=amp,
        device=str(dev),
        seconds=seconds,
        model=core.to("cpu").eval(),
    )


# ---------------------------------------------------------------------- helpers


def _check_fold(cfg: TrainConfig, fold: FoldData) -> None:
    """Mismatches and non-finite inputs fail here, naming the row, not as a NaN loss later."""
    if fold.task != cfg.task:
        raise ConfigError(f"the fold was prepared for task={fold.task!r} but cfg.task={cfg.task!r}")
    if fold.seq_len != cfg.sequence_length:
        raise ConfigError(
            f"the fold was prepared with seq_len={fold.seq_len} but cfg.sequence_length={cfg.sequence_length}"
        )
    if len(fold.train_idx) == 0 or len(fold.stop_idx) == 0:
        raise DataError(
            f"fold has {len(fold.train_idx)} training and {len(fold.stop_idx)} early-stopping "
            "samples"
        )
    anchors = np.concatenate([fold.train_idx, fold.stop_idx, fold.eval_idx])
    lo, hi = int(anchors.min()), int(anchors.max())
    if lo < fold.seq_len - 1 or hi >= len(fold.x):
        raise DataError(
            f"anchor rows must lie in [{fold.seq_len - 1}, {len(fold.x) - 1}] for seq_len={fold.seq_len} "
            f"and {len(fold.x)} rows, but got {lo}..{hi}"
        )
    rows = rows_covered(anchors, fold.seq_len, 0, len(fold.x))
    bad = np.nonzero(rows & ~np.isfinite(fold.x).all(axis=1))[0]
    if len(bad):
        col = fold.feature_names[int(np.nonzero(~np.isfinite(fold.x[bad[0]]))[0][0])]
        raise DataError(
            f"feature {col!r} is NaN/inf at row {int(bad[0])}, inside a training or evaluation window"
        )
    labels = fold.y[anchors]
    ok = labels >= 0 if fold.task == "classification" else np.isfinite(labels).all(axis=1)
    if not ok.all():
        raise DataError(f"anchor row {int(anchors[~ok][0])} has no valid label (NaN, inf or -1)")


def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _agree(flag: bool, dev: torch.device, world: int) -> bool:
    """Any rank's stop request stops every rank (DDP ranks must run the same steps)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _residual_index(cfg: TrainConfig, fold: FoldData) -> list[int] | None:
    if not cfg.residual or fold.task != "regression":
        return None
    if not all(t in fold.feature_names for t in fold.target_names):
        return None  # a target that is no input has no "last value" to add the change to
    return [fold.feature_names.index(t) for t in fold.target_names]


def _class_weight(cfg: TrainConfig, fold: FoldData, dev: torch.device) -> torch.Tensor | None:
    if cfg.class_weights is None:
        return None
    if cfg.class_weights == "balanced":  # n / (3 * count_c) over the training labels
        counts = np.bincount(fold.y[fold.train_idx], minlength=3).astype(np.float64)
        weights = len(fold.train_idx) / (3 * np.maximum(counts, 1))
    else:
        weights = np.asarray(cfg.class_weights, dtype=np.float64)
    return torch.tensor(weights, dtype=torch.float32, device=dev)


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer, fused where torch has a fused kernel for the device.

    Fused = one kernel updates every parameter instead of ~10 small ops per tensor; on a
    small CPU model (hidden 64) it cuts the optimizer's share of a step from ~15% to ~6%.
    The update rule is the same; results can differ from the unfused one in the last bits.
    """
    params = list(model.parameters())
    lr, wd = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "adamw":
        cls, kwargs = torch.optim.AdamW, {"lr": lr, "weight_decay": wd}
    elif cfg.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, {"lr": lr, "weight_decay": wd}
    else:
        cls, kwargs = torch.optim.SGD, {"lr": lr, "momentum": cfg.momentum, "weight_decay": wd}
    if all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return cls(params, fused=True, **kwargs)
        except RuntimeError:  # no fused kernel in this torch build for these tensors
            pass
    return cls(params, **kwargs)


class _Grads:
    """Zeroing and max-norm clipping of the gradients, once per training step.

    With ``flat`` (a single process) every parameter's ``.grad`` is a view of one buffer, and
    autograd accumulates into an existing ``.grad`` in place, so zeroing, the norm and the
    clip are one op each instead of ~25 small per-tensor ops (about 3% of a small CPU
    model's step). Under DDP, whose reducer owns the gradients, it is the usual
    ``.grad = None`` and ``clip_grad_norm_``.
    """

    def __init__(self, params: list[nn.Parameter], *, flat: bool) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.flat: torch.Tensor | None = None
        kinds = {(p.device, p.dtype) for p in self.params}
        if flat and len(kinds) == 1:
            device, dtype = kinds.pop()
            n = sum(p.numel() for p in self.params)
            self.flat = torch.zeros(n, device=device, dtype=dtype)
            offset = 0
            for p in self.params:
                p.grad = self.flat[offset : offset + p.numel()].view_as(p)
                offset += p.numel()

    def zero(self) -> None:
        if self.flat is not None:
            self.flat.zero_()
        else:
            for p in self.params:
                p.grad = None

    def clip(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a total 2-norm of at most ``max_norm``; returns the norm
        before clipping (a 0-d tensor, left on the device)."""
        if self.flat is None:
            return nn.utils.clip_grad_norm_(self.params, max_norm)
        norm = torch.linalg.vector_norm(self.flat)
        if math.isfinite(max_norm):
            # The same rule as clip_grad_norm_: a factor of min(1, max_norm / norm).
            self.flat.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class _Snapshot:
    """CPU copy of the model, optimizer and permutation RNG at an epoch's start, so an
    epoch that ran out of memory half-way is redone from where it began."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, gen: torch.Generator
    ) -> None:
        self.model, self.optimizer, self.gen = model, optimizer, gen
        self.model_state = {
            k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
        }
        self.opt_state = _to_cpu(optimizer.state_dict())
        self.gen_state = gen.get_state()

    def restore(self) -> None:
        self.model.load_state_dict(self.model_state)
        self.optimizer.load_state_dict(self.opt_state)
        self.gen.set_state(self.gen_state)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
