"""The training losses, per sample and weighted: mse, mae, huber, cross_entropy, focal."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData

__all__ = ["WeightedLoss", "class_weight"]


class WeightedLoss:
    """``loss(out, y)`` -> (sum of w * per-sample loss, sum of w), w = the class weight of
    each sample's label (1 without class weights), so batch and epoch means weigh alike."""

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


def class_weight(cfg: TrainConfig, fold: FoldData, dev: torch.device) -> torch.Tensor | None:
    """``cfg.class_weights`` as a [3] tensor ('balanced': n / (3 * count) over the training
    labels), or None (regression, or no weights)."""
    if fold.task != "classification" or cfg.class_weights is None:
        return None
    if cfg.class_weights == "balanced":
        counts = np.bincount(fold.y[fold.train_idx], minlength=3).astype(np.float64)
        weights = len(fold.train_idx) / (3 * np.maximum(counts, 1))
    else:
        weights = np.asarray(cfg.class_weights, dtype=np.float64)
    return torch.tensor(weights, dtype=torch.float32, device=dev)
