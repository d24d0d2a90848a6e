"""Targets for each anchor row: future feature values (regression) or up/flat/down classes.

The label of anchor row ``i`` looks ``horizon`` rows ahead, so the last ``horizon`` rows
have none (NaN for regression, -1 for classification). Splitters never use those rows as
anchors (valid anchors end at ``n - 1 - horizon``).
"""

from __future__ import annotations

import difflib
import math

import numpy as np
import pandas as pd

from trainables.errors import ConfigError, DataError
from trainables.parameters.train_config import choices_of
from trainables.prep.dataset import Targets

__all__ = ["CLASS_NAMES", "TASKS", "describe_targets", "make_targets"]

TASKS = choices_of("task")
CLASS_NAMES = ("down", "flat", "up")


def make_targets(
    features: pd.DataFrame,
    bars: pd.DataFrame,
    *,
    task: str,
    f_cols: list[str],
    target_col: str | None = None,
    horizon: int = 1,
    threshold: float = 0.001,
) -> Targets:
    """Labels aligned row for row with ``features``.

    regression: ``values[i] = features[names][i + horizon]`` with ``names = f_cols`` when
    ``target_col`` is None (the users' multi-output model), else ``[target_col]``.
    classification: the class of the ``horizon``-bar log return of close from row ``i``:
    0 down (< -threshold), 1 flat, 2 up (> threshold).
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {list(TASKS)}, but got task={task!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon must be an integer >= 1, but got horizon={horizon!r}")
    horizon = int(horizon)
    if horizon >= len(features):
        raise DataError(
            f"horizon={horizon} leaves no labelled rows among {len(features):,} feature rows"
        )
    if task == "regression":
        names = _target_names(features, f_cols, target_col)
        future = features[names].shift(-horizon)  # row i holds the value at row i + horizon
        return Targets(
            task=task, values=future.to_numpy(dtype=np.float64), names=names, horizon=horizon
        )

    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.floating, np.integer))
        or not math.isfinite(threshold)
        or threshold < 0
    ):
        raise ConfigError(
            f"threshold must be a finite number >= 0, but got threshold={threshold!r}"
        )
    close = _aligned_close(features, bars)
    log_close = np.log(close)
    change = np.full(len(close), np.nan)
    change[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    classes = np.full(len(close), -1, dtype=np.int64)
    defined = ~np.isnan(change)
    classes[defined] = 1
    classes[defined & (change < -threshold)] = 0
    classes[defined & (change > threshold)] = 2
    return Targets(
        task=task,
        values=classes,
        names=list(CLASS_NAMES),
        horizon=horizon,
        threshold=float(threshold),
    )


def describe_targets(targets: Targets, anchors: np.ndarray | None = None) -> str:
    """One line about the labels of ``anchors`` (all labelled rows when None).

    classification: ``down 31.2% / flat 37.5% / up 31.3% over 2,940 samples``.
    regression: mean and std of each target.
    """
    values = targets.values if anchors is None else targets.values[np.asarray(anchors)]
    if targets.task == "classification":
        n = int((values >= 0).sum())
        balance = targets.class_balance(anchors)
        shares = " / ".join(f"{name} {100 * share:.1f}%" for name, share in balance.items())
        return f"{shares} over {n:,} samples"
    values = values.reshape(len(values), -1)
    defined = ~np.isnan(values).any(axis=1)
    values = values[defined]
    if len(values) == 0:
        return "no labelled samples"
    parts = [
        f"{name} +{targets.horizon}: mean {values[:, k].mean():.4g}, std {values[:, k].std():.4g}"
        for k, name in enumerate(targets.names)
    ]
    return f"{'; '.join(parts)} over {len(values):,} samples"


def _target_names(features: pd.DataFrame, f_cols: list[str], target_col: str | None) -> list[str]:
    if isinstance(f_cols, str):
        raise ConfigError(f"f_cols must be a list of feature names, but got the string {f_cols!r}")
    names = list(dict.fromkeys(f_cols)) if target_col is None else [target_col]
    if not names:
        raise ConfigError("f_cols is empty and no target_col is set: nothing to predict")
    available = [str(c) for c in features.columns]
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(str(name), available, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            what = "target_col" if target_col is not None else "f_cols entry"
            raise ConfigError(
                f"{what} {name!r} is not among the built features{hint}: {available};"
                " add it to f_cols or to the extra features"
            )
    return names


def _aligned_close(features: pd.DataFrame, bars: pd.DataFrame) -> np.ndarray:
    if "close" not in bars.columns:
        raise DataError(
            f"classification needs a 'close' column; the bars have {list(bars.columns)}"
        )
    missing = features.index.difference(bars.index)
    if len(missing):
        raise DataError(
            f"{len(missing):,} feature rows have no bar, first at {missing[0]};"
            " build features from these bars"
        )
    return bars["close"].loc[features.index].to_numpy(dtype=np.float64)
