"""A fold and a config that ``fit`` can train: checked before any work starts."""

from __future__ import annotations

import numpy as np

from trainables.errors import ConfigError, DataError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.prep.scaling import rows_covered

__all__ = ["check_fold"]


def check_fold(cfg: TrainConfig, fold: FoldData) -> None:
    """Mismatches and non-finite inputs fail here, naming the row, not as a NaN loss later."""
    if fold.task != cfg.task:
        raise ConfigError(f"the fold was prepared for task={fold.task!r} but cfg.task={cfg.task!r}")
    if fold.sequence_length != cfg.sequence_length:
        raise ConfigError(
            f"the fold was prepared with sequence_length={fold.sequence_length} but cfg.sequence_length={cfg.sequence_length}"
        )
    if len(fold.train_idx) == 0 or len(fold.stop_idx) == 0:
        raise DataError(
            f"fold has {len(fold.train_idx)} training and {len(fold.stop_idx)} early-stopping "
            "samples"
        )
    anchors = np.concatenate([fold.train_idx, fold.stop_idx, fold.eval_idx])
    lo, hi = int(anchors.min()), int(anchors.max())
    if lo < fold.sequence_length - 1 or hi >= len(fold.x):
        first = fold.first_row  # the table's row numbers in the message, as the caller's
        raise DataError(
            f"anchor rows must lie in [{fold.sequence_length - 1 + first}, "
            f"{len(fold.x) - 1 + first}] for sequence_length={fold.sequence_length} and "
            f"{len(fold.x)} rows, but got {lo + first}..{hi + first}"
        )
    _check_finite(fold, anchors)


def _check_finite(fold: FoldData, anchors: np.ndarray) -> None:
    rows = rows_covered(anchors, fold.sequence_length, 0, len(fold.x))
    bad = np.nonzero(rows & ~np.isfinite(fold.x).all(axis=1))[0]
    if len(bad):
        col = fold.feature_names[int(np.nonzero(~np.isfinite(fold.x[bad[0]]))[0][0])]
        raise DataError(
            f"feature {col!r} is NaN/inf at row {int(bad[0]) + fold.first_row}, inside a "
            "training or evaluation window"
        )
    labels = fold.y[anchors]
    ok = labels >= 0 if fold.task == "classification" else np.isfinite(labels).all(axis=1)
    if not ok.all():
        raise DataError(f"anchor row {int(anchors[~ok][0])} has no valid label (NaN, inf or -1)")
