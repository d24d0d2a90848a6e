"""Out-of-memory recovery: redo an epoch from its start at half the batch size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from trainables.errors import TrainingError
from trainables.training.gpu_probe import is_oom

__all__ = ["Snapshot", "retry_on_oom"]

T = TypeVar("T")


class Snapshot:
    """CPU copy of the model, optimizer and permutation RNG at an epoch's start, so an
    epoch that ran out of memory half-way is redone from where it began."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, gen: torch.Generator
    ) -> None:
        self.model, self.optimizer, self.gen = model, optimizer, gen
        self.model_state = _to_cpu(model.state_dict())
        self.opt_state = _to_cpu(optimizer.state_dict())
        self.gen_state = gen.get_state()

    def restore(self) -> None:
        self.model.load_state_dict(self.model_state)
        self.optimizer.load_state_dict(self.opt_state)
        self.gen.set_state(self.gen_state)


def retry_on_oom(
    step: Callable[[int], T],
    batch: int,
    *,
    snapshot: Snapshot,
    epoch: int,
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[T, int]:
    """``step(batch)``; after an out-of-memory error, ``snapshot.restore()`` and again at
    half the batch size, down to 1. Returns (step's result, the batch size it ran with).

    Under DDP only the rank that ran out halves its batch; the ranks then disagree, so
    multi-GPU runs should use a probed or conservative batch size.
    """
    while True:
        try:
            return step(batch), batch
        except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError
            if not is_oom(err):
                raise
        # Outside the except block, so the failed batch's tensors can be freed.
        if batch <= 1:
            raise TrainingError(
                f"out of memory at epoch {epoch} even with batch_size=1 on {device}"
            )
        log(
            f"out of memory at batch size {batch} (epoch {epoch}); "
            f"redoing the epoch with batch size {batch // 2}"
        )
        batch //= 2
        snapshot.restore()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
