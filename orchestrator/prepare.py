"""Everything a sweep computes once on the driver: data, holdout, CV folds and their audit.

The untouched test part is cut off here and never leaves the driver: trials receive only
the rows the train+validation anchors can reach (``SweepData.n_rows``), so no trial can read
a test row, whatever it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trainables.config import TrainConfig
from trainables.data import DEFAULT_MAX_JUMP, check_enough_rows, load_bars
from trainables.dataset import Targets
from trainables.errors import ConfigError
from trainables.labels import describe_targets
from trainables.origin import origin_of
from trainables.splits import (
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
    audit_frame,
)
from trainables.synthetic import make_bars
from trainables.table import build_table, holdout_split

__all__ = ["CV_SCHEMES", "SweepData", "make_splitter", "prepare_sweep_data"]

CV_SCHEMES = ("walk-forward", "kfold", "cpcv")


@dataclass
class SweepData:
    """The arrays every trial shares through the Ray object store (read, never copied)."""

    values: np.ndarray  # [n_rows, C] float64 feature table, rows before the holdout only
    columns: list[str]
    index: np.ndarray  # [n_rows] datetime64[ns]
    targets: Targets  # values cut to n_rows as well
    folds: list[tuple[np.ndarray, np.ndarray]]  # (train anchors, eval anchors) per fold
    seq_len_max: int
    test_first_row: int  # first row of the untouched test part (its anchors' spans start here)
    audit: pd.DataFrame = field(repr=False)
    summary: str = ""
    timestamps: str = ""  # how the data's times were read (UTC conversion), for sweep.json

    @property
    def n_rows(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        # No copy: the arrays come read-only from the object store and are only read.
        return pd.DataFrame(
            self.values, columns=self.columns, index=pd.DatetimeIndex(self.index), copy=False
        )


def make_splitter(cv: str, *, n_splits: int, seq_len: int, horizon: int, purge=None, embargo=None):
    common = dict(seq_len=seq_len, horizon=horizon, purge=purge, embargo=embargo)
    if cv == "walk-forward":
        return PurgedWalkForward(n_splits, **common)
    if cv == "kfold":
        return PurgedKFold(n_splits, **common)
    if cv == "cpcv":
        # n_splits groups, two of them evaluated at a time: C(n, 2) folds.
        return CombinatorialPurgedCV(n_splits, 2, **common)
    raise ConfigError(f"cv must be one of {list(CV_SCHEMES)}, but got cv={cv!r}")


def load_source(
    data: str | None,
    *,
    ticker: str | None,
    n_bars: int,
    seed: int,
    timezone: str | None = None,
    dst: str = "raise",
    max_jump: float = DEFAULT_MAX_JUMP,
) -> pd.DataFrame:
    """The user's bars, or the built-in generator's when no file is given."""
    if data is None:
        return make_bars(n_bars, seed=seed)
    return load_bars(data, ticker=ticker, timezone=timezone, dst=dst, max_jump=max_jump)


def prepare_sweep_data(
    base: TrainConfig,
    *,
    data: str | None,
    ticker: str | None,
    cv: str,
    n_splits: int,
    seq_len_max: int,
    n_bars: int = 4000,
    data_seed: int = 0,
    timezone: str | None = None,
    dst: str = "raise",
    max_jump: float = DEFAULT_MAX_JUMP,
) -> SweepData:
    """Load, featurise, cut the holdout off and compute the folds shared by every trial.

    Folds are computed once with the longest ``sequence_length`` any trial may use, so all
    trials are scored on the same evaluation samples and every purge is wide enough for all.
    """
    source = data or "built-in data"
    bars = load_source(
        data,
        ticker=ticker,
        n_bars=n_bars,
        seed=data_seed,
        timezone=timezone,
        dst=dst,
        max_jump=max_jump,
    )
    features, targets = build_table(bars, base)
    check_enough_rows(
        len(features), seq_len=seq_len_max, horizon=base.horizon, n_splits=n_splits, source=source
    )
    split = holdout_split(len(features), base, seq_len=seq_len_max)
    # Rows a train+val sample can reach; the test part's spans start after them.
    n_rows = int(split.train_val.max()) + base.horizon + 1
    test_first_row = int(split.test.min()) - seq_len_max + 1
    if test_first_row < n_rows:
        raise ConfigError(
            f"the holdout gap is too small: test spans start at row {test_first_row} but "
            f"train+validation spans reach row {n_rows - 1}"
        )
    splitter = make_splitter(
        cv,
        n_splits=n_splits,
        seq_len=seq_len_max,
        horizon=base.horizon,
        purge=base.purge,
        embargo=base.embargo,
    )
    rows = np.arange(n_rows)
    folds = [(np.asarray(tr), np.asarray(ev)) for tr, ev in splitter.split(rows)]
    index = features.index[:n_rows]
    audit = audit_frame(splitter.audit(rows, index=index))
    cut = Targets(
        task=targets.task,
        values=targets.values[:n_rows],
        names=list(targets.names),
        horizon=targets.horizon,
        threshold=targets.threshold,
    )
    summary = (
        f"{source}: {len(bars):,} bars -> {len(features):,} feature rows; "
        f"{n_rows:,} rows for the sweep ({cv}, {len(folds)} folds), "
        f"{len(split.test):,} test samples held out from {features.index[test_first_row]}"
    )
    if base.task == "classification":
        summary += "; classes " + describe_targets(cut, split.train_val)
    return SweepData(
        values=features.to_numpy(dtype=np.float64)[:n_rows].copy(),
        columns=list(features.columns),
        index=index.to_numpy(dtype="datetime64[ns]"),
        targets=cut,
        folds=folds,
        seq_len_max=seq_len_max,
        test_first_row=test_first_row,
        audit=audit,
        summary=summary,
        timestamps=origin.timestamps if (origin := origin_of(bars)) else "naive (built-in data)",
    )
