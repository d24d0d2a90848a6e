"""The optimizer, its learning rate and the gradients' zeroing and clipping."""

from __future__ import annotations

import torch
from torch import nn

from trainables.parameters.train_config import TrainConfig
from trainables.training import fast_paths

__all__ = ["Gradients", "gradients", "make_optimizer", "set_lr"]


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
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
    cls = fast_paths.eager_optimizer(cls)  # no compiler import (trainables/training/fast_paths.py, 4)
    if all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return cls(params, fused=True, **kwargs)
        except RuntimeError:  # no fused kernel in this torch build for these tensors
            pass
    return cls(params, **kwargs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class Gradients:
    """Zeroing and max-norm clipping of the gradients, once per training step (plain torch)."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = [p for p in params if p.requires_grad]

    def zero(self) -> None:
        for p in self.params:
            p.grad = None

    def clip(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a total 2-norm of at most ``max_norm`` (inf: never); returns
        the norm before clipping (a 0-d tensor, left on the device)."""
        return nn.utils.clip_grad_norm_(self.params, max_norm)


def gradients(
    params: list[nn.Parameter], *, single_process: bool
) -> Gradients | fast_paths.FlatGrads:
    """The fast path's one-buffer gradients where they apply (one process, switched on),
    else the plain ones. DDP's reducer owns the gradients, so it gets the plain ones."""
    flat = fast_paths.flat_gradients(params) if single_process else None
    return flat if flat is not None else Gradients(params)
