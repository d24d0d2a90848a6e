"""Sliding windows over a series without copying the series per window.

A window for anchor ``i`` is rows ``[i - seq_len + 1, i]``. ``sliding_windows`` returns a
strided view (no copy); ``gather_windows`` materialises only the windows of one batch.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["gather_windows", "sliding_windows"]


def sliding_windows(series: np.ndarray | torch.Tensor, seq_len: int):
    """All windows as a view: ``[n, F] -> [n - seq_len + 1, seq_len, F]``.

    Window ``k`` ends at row ``k + seq_len - 1``, so anchor ``i`` is window ``i - seq_len + 1``.
    """
    if isinstance(series, torch.Tensor):
        # unfold gives [n - L + 1, F, L]; transpose back to time-major. Both are views.
        return series.unfold(0, seq_len, 1).transpose(1, 2)
    return np.lib.stride_tricks.sliding_window_view(series, seq_len, axis=0).transpose(0, 2, 1)


def gather_windows(series: torch.Tensor, anchors: torch.Tensor, seq_len: int) -> torch.Tensor:
    """The windows ending at ``anchors``: ``[n, F], [B] -> [B, seq_len, F]`` (copies only these)."""
    return sliding_windows(series, seq_len)[anchors - (seq_len - 1)]
