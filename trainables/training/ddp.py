"""What the trainer needs of ``torch.distributed`` (DDP ranks, e.g. Ray Train workers)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["agree", "mean_over_ranks", "rank_world", "shard", "sum_over_ranks", "wrap"]


def rank_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap(model: nn.Module, dev: torch.device, world: int) -> nn.Module:
    """``model`` in DistributedDataParallel when several ranks train it, else itself."""
    if world == 1:
        return model
    ids = [dev.index] if dev.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(perm: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's strided share of one permutation; equal shares, so every rank runs the
    same number of steps."""
    if world == 1:
        return perm
    return perm[: len(perm) - len(perm) % world][rank::world]


def sum_over_ranks(value: torch.Tensor, world: int) -> torch.Tensor:
    """``value`` summed over the ranks (in place), so each one decides the same."""
    if world > 1:
        dist.all_reduce(value)
    return value


def mean_over_ranks(value: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of ``value`` over the ranks."""
    return sum_over_ranks(value, world) / world if world > 1 else value


def agree(flag: bool, dev: torch.device, world: int) -> bool:
    """Any rank's stop request stops every rank (DDP ranks must run the same steps)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
