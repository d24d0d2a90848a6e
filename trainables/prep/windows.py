"""Sliding windows over a series without copying the series per window.

A window for anchor ``i`` is rows ``[i - sequence_length + 1, i]``. ``sliding_windows`` returns a
strided view (no copy); ``gather_windows`` materialises only the windows of one batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # no torch import for numpy callers (a sweep's driver never loads torch)
    import torch

__all__ = ["gather_windows", "sliding_windows"]


def sliding_windows(series: np.ndarray | torch.Tensor, sequence_length: int):
    """All windows as a view: ``[n, F] -> [n - sequence_length + 1, sequence_length, F]``.

    Window ``k`` ends at row ``k + sequence_length - 1``, so anchor ``i`` is window ``i - sequence_length + 1``.
    """
    if hasattr(series, "unfold"):  # a torch.Tensor (checked without importing torch)
        # unfold gives [n - L + 1, F, L]; transpose back to time-major. Both are views.
        return series.unfold(0, sequence_length, 1).transpose(1, 2)
    return np.lib.stride_tricks.sliding_window_view(series, sequence_length, axis=0).transpose(
        0, 2, 1
    )


def gather_windows(
    series: torch.Tensor, anchors: torch.Tensor, sequence_length: int
) -> torch.Tensor:
    """The windows ending at ``anchors``: ``[n, F], [B] -> [B, sequence_length, F]`` (copies only these)."""
    return sliding_windows(series, sequence_length)[anchors - (sequence_length - 1)]
