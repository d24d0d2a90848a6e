"""From bars to the model's table, as one training config says: features, targets, final split.

The one place that turns a ``TrainConfig`` into features + targets and the chronological
train / validation / test split, shared by ``trainables.train``, sweeps and promotion, so the
three always cut the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainables.bars.provenance import source_of
from trainables.errors import DataError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import Targets
from trainables.prep.features import build_features
from trainables.prep.labels import make_targets
from trainables.prep.splits import FinalSplit, final_split

__all__ = ["TableArrays", "build_table", "holdout_split"]


@dataclass
class TableArrays:
    """A feature table as plain arrays (what is shipped to Ray workers): the rows a sweep's
    trials or a promotion's models may read, and their targets, cut to the same rows."""

    values: np.ndarray  # [n_rows, C] float64 features
    columns: list[str]
    index: np.ndarray  # [n_rows] datetime64[ns]
    targets: Targets  # values cut to n_rows as well

    @property
    def n_rows(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        # No copy: the arrays may come read-only from Ray's object store; they are only read.
        return pd.DataFrame(
            self.values, columns=self.columns, index=pd.DatetimeIndex(self.index), copy=False
        )


def build_table(bars: pd.DataFrame, cfg: TrainConfig) -> tuple[pd.DataFrame, Targets]:
    """Features (``f_cols`` plus the target column) and the targets of ``cfg.task``."""
    extra = [cfg.target_col] if cfg.target_col else []
    features = build_features(bars, cfg.f_cols, sma_window=cfg.sma_window, extra=extra)
    try:
        targets = make_targets(
            features,
            bars,
            task=cfg.task,
            f_cols=list(cfg.f_cols),
            target_col=cfg.target_col,
            horizon=cfg.horizon,
            threshold=cfg.threshold,
        )
    except DataError as err:  # too few rows for the horizon: say which data
        raise DataError(f"{source_of(bars, 'the built-in data')}: {err}") from None
    return features, targets


def holdout_split(
    n_rows: int, cfg: TrainConfig, *, sequence_length: int | None = None
) -> FinalSplit:
    """``cfg``'s train / validation / test split of ``n_rows`` rows, purged and embargoed.

    ``sequence_length`` overrides ``cfg.sequence_length`` (a sweep uses its longest window, so the
    gaps are wide enough for every trial).
    """
    return final_split(
        n_rows,
        sequence_length=sequence_length or cfg.sequence_length,
        horizon=cfg.horizon,
        train=cfg.train_split,
        val=cfg.val_split,
        test=cfg.test_split,
        purge=cfg.purge,
        embargo=cfg.embargo,
    )
