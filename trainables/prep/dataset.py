"""One fold's arrays, ready for the trainer: scaler fit on training rows only.

``prepare_fold`` is the single place where a fold's scaler is fit, so the rule
"fitted statistics see training rows only" is enforced here and tested here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trainables.errors import ConfigError, DataError
from trainables.prep.scaling import make_scaler, rows_covered

if TYPE_CHECKING:
    from trainables.parameters.train_config import TrainConfig

__all__ = ["FoldData", "Targets", "prepare_fold", "prepare_fold_for", "scaled_columns"]


@dataclass(frozen=True)
class Targets:
    """What the model learns to predict for each anchor row ``i``.

    regression: ``values[i]`` are the raw target columns at row ``i + horizon`` (NaN where
    ``i + horizon`` is past the end). classification: ``values[i]`` is the class
    0 = down, 1 = flat, 2 = up of the return over ``horizon`` bars (-1 where undefined).
    """

    task: str
    values: np.ndarray
    names: list[str]
    horizon: int
    threshold: float | None = None

    @property
    def n_outputs(self) -> int:
        return 3 if self.task == "classification" else len(self.names)

    def class_balance(self, anchors: np.ndarray | None = None) -> dict[str, float]:
        """Share of each class among ``anchors`` (all defined rows when None)."""
        if self.task != "classification":
            raise ConfigError("class balance exists only for task='classification'")
        v = self.values if anchors is None else self.values[anchors]
        v = v[v >= 0]
        counts = np.bincount(v, minlength=3)
        total = max(int(counts.sum()), 1)
        return {name: counts[k] / total for k, name in enumerate(("down", "flat", "up"))}


@dataclass
class FoldData:
    """Scaled arrays of one fold. Index ``x``/``y`` by anchor row; windows come from ``x``.

    Three sets of anchors: the model trains on ``train_idx``, early-stops on ``stop_idx``
    (validated every epoch) and, when ``eval_idx`` is not empty, the restored best epoch
    predicts ``eval_idx`` once at the end (a CV fold's scored samples; promotion and
    ``trainables.train`` score their test part separately and leave it empty).
    """

    x: np.ndarray  # [n, F] float32, scaled input features
    y: np.ndarray  # regression: [n, T] float32 scaled targets; classification: [n] int64
    y_now: np.ndarray | None  # regression: [n, T] scaled target columns at the anchor row itself
    train_idx: np.ndarray  # anchors the model trains on
    stop_idx: np.ndarray  # anchors it early-stops on
    eval_idx: np.ndarray  # anchors the final model is scored on (may be empty)
    sequence_length: int
    horizon: int
    task: str
    feature_names: list[str]
    target_names: list[str]
    scaler: object  # trainables.prep.scaling scaler, fit on training rows only
    # regression, original units (float64, exact: scoring never round-trips the scaler):
    y_raw: np.ndarray | None = None  # [n, T] targets (NaN where undefined)
    now_raw: np.ndarray | None = None  # [n, T] the target columns at the anchor row
    # The table's row that row 0 of these arrays is: 0 unless built with only_rows_read,
    # when the arrays hold only the rows the fold reads and every anchor above is counted
    # from here (table row = anchor + first_row).
    first_row: int = 0

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @property
    def n_outputs(self) -> int:
        return 3 if self.task == "classification" else self.y.shape[1]

    @property
    def scored_idx(self) -> np.ndarray:
        """What the fitted model is finally scored on: ``eval_idx``, else ``stop_idx``."""
        return self.eval_idx if len(self.eval_idx) else self.stop_idx

    def train_mean(self) -> np.ndarray:
        """[T] each regression target's mean over the training anchors (original units)."""
        return np.nanmean(self.y_raw[self.train_idx], axis=0)


def _anchors(a: np.ndarray | None) -> np.ndarray:
    return np.zeros(0, dtype=np.int64) if a is None else np.asarray(a, dtype=np.int64)


def prepare_fold(
    features: pd.DataFrame,
    targets: Targets,
    train_idx: np.ndarray,
    stop_idx: np.ndarray,
    eval_idx: np.ndarray | None = None,
    *,
    f_cols: list[str],
    sequence_length: int,
    scaler: str = "minmax",
    only_rows_read: bool = False,
) -> FoldData:
    """Fit the scaler on rows inside training spans only and scale inputs and targets.

    ``stop_idx``: the early-stopping anchors; ``eval_idx``: anchors scored once after
    training (optional). Neither is seen by the scaler. ``only_rows_read``: build only the
    rows the fold's windows, targets and scaler read, from the first window's first row to
    the last anchor's target, with the anchors counted from there (``FoldData.first_row``):
    a sweep's walk-forward fold 0 then builds a third of the table, not all of it. Without
    it the arrays cover every row (what ``trainables.train`` needs to score its test part
    with the same arrays).
    """
    train_idx, stop_idx, eval_idx = _anchors(train_idx), _anchors(stop_idx), _anchors(eval_idx)
    if len(train_idx) == 0 or len(stop_idx) == 0:
        raise DataError(
            f"fold has {len(train_idx)} training and {len(stop_idx)} early-stopping samples"
        )
    missing = [c for c in f_cols if c not in features.columns]
    if missing:
        raise ConfigError(
            f"f_cols {missing} are not among the built features {list(features.columns)}"
        )
    regression = targets.task == "regression"
    target_cols = list(targets.names) if regression else []
    columns = list(dict.fromkeys([*f_cols, *target_cols]))
    missing = [c for c in target_cols if c not in features.columns]
    if missing:
        raise ConfigError(f"target column(s) {missing} are not among the built features")

    n = len(features)
    lo, hi = 0, n
    if only_rows_read:
        lo, hi = _rows_read(train_idx, stop_idx, eval_idx, sequence_length, targets.horizon, n)
        train_idx, stop_idx, eval_idx = train_idx - lo, stop_idx - lo, eval_idx - lo
    raw = {c: _column(features, c, lo, hi) for c in columns}  # the fold's rows only
    fit_rows = rows_covered(train_idx, sequence_length, targets.horizon, hi - lo)
    fitted = make_scaler(scaler, columns).fit(np.column_stack([raw[c][fit_rows] for c in columns]))

    x = scaled_columns(fitted, raw, f_cols)
    y_raw = now_raw = None
    if regression:
        y_raw = np.asarray(targets.values, dtype=np.float64).reshape(n, -1)[lo:hi]
        now_raw = np.column_stack([raw[c] for c in target_cols])
        y = fitted.transform(np.nan_to_num(y_raw), target_cols)
        y_now = fitted.transform(now_raw, target_cols)
    else:
        y, y_now = targets.values[lo:hi].astype(np.int64), None
    return FoldData(
        x=x,
        y=np.ascontiguousarray(y),
        y_now=y_now,
        train_idx=train_idx,
        stop_idx=stop_idx,
        eval_idx=eval_idx,
        sequence_length=sequence_length,
        horizon=targets.horizon,
        task=targets.task,
        feature_names=list(f_cols),
        target_names=list(targets.names),
        scaler=fitted,
        y_raw=y_raw,
        now_raw=now_raw,
        first_row=lo,
    )


def _column(features: pd.DataFrame, name: str, lo: int, hi: int) -> np.ndarray:
    """Rows [lo, hi) of one column as float64: a view of a sweep's shared table (a frame over
    one float64 array), a copy of those rows only otherwise."""
    return np.asarray(features[name].to_numpy()[lo:hi], dtype=np.float64)


def scaled_columns(fitted, columns, names: list[str]) -> np.ndarray:
    """[rows, F] float32: ``columns[name]`` (a frame's columns, or arrays) scaled a column at
    a time: the same arithmetic, element by element, as ``fitted.transform`` of the
    [rows, F] float64 block, without that block's float64 copies."""
    first = np.asarray(columns[names[0]])
    x = np.empty((len(first), len(names)), dtype=np.float32)
    for j, c in enumerate(names):
        column = np.asarray(columns[c], dtype=np.float64)
        x[:, j] = fitted.transform(column[:, None], [c])[:, 0]
    return x


def _rows_read(train_idx, stop_idx, eval_idx, sequence_length: int, horizon: int, n: int):
    """[lo, hi): from the first anchor's window start to the last anchor's target row (the
    scaler reads the training anchors' targets; a window reads sequence_length rows)."""
    anchors = np.concatenate([train_idx, stop_idx, eval_idx])
    lo = max(0, int(anchors.min()) - sequence_length + 1)
    hi = min(n, int(anchors.max()) + horizon + 1)
    return lo, hi


def prepare_fold_for(
    cfg: TrainConfig,
    features: pd.DataFrame,
    targets: Targets,
    train_idx: np.ndarray,
    stop_idx: np.ndarray,
    eval_idx: np.ndarray | None = None,
    *,
    only_rows_read: bool = False,
) -> FoldData:
    """:func:`prepare_fold` with the config's ``f_cols``, ``sequence_length`` and ``scaler``:
    how every entry point (trial, promotion, baselines, the train CLI) builds a fold."""
    return prepare_fold(
        features,
        targets,
        train_idx,
        stop_idx,
        eval_idx,
        f_cols=list(cfg.f_cols),
        sequence_length=cfg.sequence_length,
        scaler=cfg.scaler,
        only_rows_read=only_rows_read,
    )
