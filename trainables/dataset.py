"""One fold's arrays, ready for the trainer: scaler fit on training rows only.

``prepare_fold`` is the single place where a fold's scaler is fit, so the rule
"fitted statistics see training rows only" is enforced here and tested here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainables.errors import ConfigError, DataError
from trainables.scaling import make_scaler, rows_covered

__all__ = ["FoldData", "Targets", "prepare_fold"]


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
    """Scaled arrays of one fold. Index ``x``/``y`` by anchor row; windows come from ``x``."""

    x: np.ndarray  # [n, F] float32, scaled input features
    y: np.ndarray  # regression: [n, T] float32 scaled targets; classification: [n] int64
    y_now: np.ndarray | None  # regression: [n, T] scaled target columns at the anchor row itself
    train_idx: np.ndarray  # anchors the model trains on
    eval_idx: np.ndarray  # anchors it is evaluated on
    seq_len: int
    horizon: int
    task: str
    feature_names: list[str]
    target_names: list[str]
    scaler: object  # trainables.scaling scaler, fit on training rows only

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @property
    def n_outputs(self) -> int:
        return 3 if self.task == "classification" else self.y.shape[1]


def prepare_fold(
    features: pd.DataFrame,
    targets: Targets,
    train_idx: np.ndarray,
    eval_idx: np.ndarray,
    *,
    f_cols: list[str],
    seq_len: int,
    scaler: str = "minmax",
) -> FoldData:
    """Fit the scaler on rows inside training spans only and scale inputs and targets."""
    train_idx = np.asarray(train_idx, dtype=np.int64)
    eval_idx = np.asarray(eval_idx, dtype=np.int64)
    if len(train_idx) == 0 or len(eval_idx) == 0:
        raise DataError(
            f"fold has {len(train_idx)} training and {len(eval_idx)} evaluation samples"
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
    raw = features[columns].to_numpy(dtype=np.float64)
    fit_rows = rows_covered(train_idx, seq_len, targets.horizon, n)
    fitted = make_scaler(scaler, columns).fit(raw[fit_rows])

    x = fitted.transform(raw[:, [columns.index(c) for c in f_cols]], f_cols)
    if regression:
        y = fitted.transform(np.nan_to_num(targets.values), target_cols)
        y_now = fitted.transform(raw[:, [columns.index(c) for c in target_cols]], target_cols)
    else:
        y, y_now = targets.values.astype(np.int64), None
    return FoldData(
        x=np.ascontiguousarray(x),
        y=np.ascontiguousarray(y),
        y_now=y_now,
        train_idx=train_idx,
        eval_idx=eval_idx,
        seq_len=seq_len,
        horizon=targets.horizon,
        task=targets.task,
        feature_names=list(f_cols),
        target_names=list(targets.names),
        scaler=fitted,
    )
