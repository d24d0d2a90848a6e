"""Inference of a trained SequenceModel: raw outputs for anchors, and fold predictions."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainables.prep.dataset import FoldData
from trainables.prep.windows import gather_windows
from trainables.training.devices import autocast
from trainables.training.metrics import fold_outputs
from trainables.training.network import SequenceModel

__all__ = ["PREDICT_BATCH", "evaluate", "predict_scaled"]

# Inference runs in batches of exactly this many windows (the last one zero-padded): with a
# fixed shape, a window's output does not depend on its neighbours, so predictions from
# artifacts.predict() equal the trainer's bit for bit.
PREDICT_BATCH = 1024


@torch.no_grad()
def predict_scaled(
    model: nn.Module,
    x: torch.Tensor,
    anchors: torch.Tensor,
    sequence_length: int,
    *,
    amp: str = "off",
    pad: bool = True,
) -> torch.Tensor:
    """Model outputs for ``anchors``: ``[n] -> [n, n_outputs]`` float32 on x's device.

    ``pad=False``: the last batch runs at its own size instead of a padded PREDICT_BATCH,
    for the trainer's per-epoch validation, which only decides early stopping: on a small
    early-stopping block (a few hundred anchors, every epoch) the padding was most of its
    cost, a fifth of a daily-space trial's time. Predictions that leave the trainer keep
    the padding, so ``artifacts.predict`` still gives them bit for bit.
    """
    model.eval()
    outs = []
    for b in range(0, len(anchors), PREDICT_BATCH):
        idx = anchors[b : b + PREDICT_BATCH]
        xb = gather_windows(x, idx, sequence_length)  # [b, L, F]
        if pad and len(idx) < PREDICT_BATCH:
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
    out = predict_scaled(model, x, torch.from_numpy(anchors).to(dev), fold.sequence_length, amp=amp)
    return fold_outputs(out.cpu().numpy(), fold, anchors)
