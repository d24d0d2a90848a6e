"""Learning-rate schedules and early stopping: small objects with explicit settings."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables.parameters.train_config import TrainConfig

__all__ = ["EarlyStopping", "LRSchedule", "improves"]


def improves(value: float, best: float, min_delta: float) -> bool:
    """``value`` beats ``best`` by more than ``min_delta`` *relative* to ``best``.

    Relative, so one default works for cross-entropy losses near 1 (where 1e-4 is the users'
    absolute threshold) and for scaled-price MSEs near 1e-3 (where an absolute 1e-4 would
    ignore a 10 % improvement).
    """
    if not math.isfinite(best):
        return math.isfinite(value)
    return value < best - min_delta * abs(best)


class EarlyStopping:
    """Stop when the validation loss has not improved by more than ``min_delta`` (relative)
    for ``patience`` epochs (0 = never); keeps a CPU copy of the best weights when
    ``restore_best``. ``improved`` says whether the last ``step`` set a new best."""

    def __init__(
        self, *, patience: int = 15, min_delta: float = 1e-4, restore_best: bool = True
    ) -> None:
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best
        self.best_value, self.best_epoch, self.wait = math.inf, 0, 0
        self.improved = False
        self.best_state: dict[str, torch.Tensor] | None = None

    def step(self, epoch: int, value: float, model: nn.Module) -> bool:
        """Record ``value`` for ``epoch``; True when training should stop."""
        self.improved = improves(value, self.best_value, self.min_delta)
        if self.improved:
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
            return False
        self.wait += 1
        return self.patience > 0 and self.wait >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (with ``restore_best``)."""
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)


class LRSchedule:
    """The learning rate of every epoch (and, for 'onecycle', of every batch).

    epoch is 0-based here. 'cosine': linear warmup ``lr * (e + 1) / (W + 1)`` for
    ``W = min(warmup_epochs, epochs - 1)`` epochs, then cosine from ``learning_rate`` to
    ``min_lr``. 'step': ``lr * gamma ** (e // step_size)``. 'exponential': ``lr * gamma ** e``.
    'onecycle': torch's ``OneCycleLR`` per batch (two phases, cosine annealing, momentum not
    cycled; tested equal to it): from ``lr / 25`` up to ``lr`` at step ``0.3 * total - 1``,
    then down to ``lr / 25 / 1e4`` (or ``min_lr`` if higher) at the last step. 'plateau':
    multiply by ``plateau_factor`` after ``plateau_patience`` epochs without an improvement
    of more than ``min_delta`` in the validation loss. Nothing goes below ``min_lr``.
    """

    ONECYCLE_PCT, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4

    def __init__(self, cfg: TrainConfig) -> None:
        self.kind, self.base, self.min_lr = cfg.scheduler, cfg.learning_rate, cfg.min_lr
        self.epochs, self.warmup = cfg.epochs, min(cfg.warmup_epochs, cfg.epochs - 1)
        self.step_size, self.gamma = cfg.step_size, cfg.resolved_gamma
        self.factor, self.patience = cfg.plateau_factor, cfg.plateau_patience
        self.min_delta = cfg.min_delta
        self.current, self.best, self.bad = self.base, math.inf, 0

    @property
    def per_batch(self) -> bool:
        return self.kind == "onecycle"

    def lr(self, epoch: int, step: int = 0, steps: int = 1) -> float:
        """LR for 0-based ``epoch``; for 'onecycle', of its batch ``step`` of ``steps``."""
        e, base = epoch, self.base
        if self.kind == "cosine":
            if e < self.warmup:
                return base * (e + 1) / (self.warmup + 1)
            ratio = (e - self.warmup) / max(self.epochs - self.warmup, 1)
            return self.min_lr + (base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * ratio))
        if self.kind == "step":
            return max(self.min_lr, base * self.gamma ** (e // self.step_size))
        if self.kind == "exponential":
            return max(self.min_lr, base * self.gamma**e)
        if self.kind == "onecycle":
            return self._onecycle(e * steps + step, self.epochs * steps)
        if self.kind == "plateau":
            return self.current
        return base  # 'none'

    def _onecycle(self, s: int, total: int) -> float:
        """OneCycleLR's rate at step ``s`` (0-based) of ``total``, computed as torch does."""
        peak = self.ONECYCLE_PCT * total - 1  # the step at which the rate is learning_rate
        start = self.base / self.ONECYCLE_DIV
        end = max(self.min_lr, start / self.ONECYCLE_FINAL_DIV)
        if s <= peak:
            return _cos_between(start, self.base, s / peak)
        return _cos_between(self.base, end, (s - peak) / (total - 1 - peak))

    def observe(self, val_loss: float) -> bool:
        """Feed an epoch's validation loss (plateau only); True when the LR was reduced."""
        if self.kind != "plateau":
            return False
        if improves(val_loss, self.best, self.min_delta):
            self.best, self.bad = val_loss, 0
            return False
        self.bad += 1
        if self.bad < self.patience:
            return False
        self.bad = 0
        reduced = max(self.current * self.factor, self.min_lr)
        changed, self.current = reduced < self.current, reduced
        return changed


def _cos_between(start: float, end: float, p: float) -> float:
    """Cosine from ``start`` (p = 0) to ``end`` (p = 1), torch's ``_annealing_cos``."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(max(p, 0.0), 1.0)))
