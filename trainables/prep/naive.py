"""The naive forecast each regression target is judged against, in original units.

A score that ranks trials or decides a verdict is a ratio to a forecast that needs no model
and fits the target (docs/sweeps.md, "The objective"):

* **persistence** ("the value ``horizon`` bars ahead is the value now") for *level* targets,
  whose next value is close to the current one: prices, the moving average, volume, the
  rolling volatility;
* the **training mean** (the mean of the target over the anchors the model trains on) for
  *return-like* targets that swing around a level: ``log_return``, ``sma_gap``, ``rsi``,
  ``hl_range``, ``volume_ratio``. For them persistence is a poor baseline (a return with a
  lag-1 autocorrelation of 0.32 is forecast ~26% better by a constant than by its last
  value), so beating it would say little.

A column of the user's own (not a built-in feature) is treated as a level (persistence)
unless it is named in ``RETURN_LIKE``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LEVEL",
    "RETURN_LIKE",
    "naive_forecast",
    "naive_kind",
    "naive_kinds",
    "residual_applies",
]

LEVEL = ("open", "high", "low", "close", "sma_value", "volume", "log_volume", "volatility")
RETURN_LIKE = ("log_return", "sma_gap", "rsi", "hl_range", "volume_ratio")

PERSISTENCE = "persistence"
TRAINING_MEAN = "training mean"


def naive_kind(target: str) -> str:
    """``"persistence"`` for a level target, ``"training mean"`` for a return-like one."""
    return TRAINING_MEAN if target in RETURN_LIKE else PERSISTENCE


def naive_kinds(targets: list[str]) -> list[str]:
    return [naive_kind(t) for t in targets]


def naive_forecast(
    targets: list[str], now: np.ndarray, train_mean: np.ndarray, n: int | None = None
) -> np.ndarray:
    """``[n, T]`` naive forecasts in original units.

    ``now``: ``[n, T]`` the target columns at each anchor row (persistence);
    ``train_mean``: ``[T]`` each target's mean over the training anchors.
    """
    now = np.asarray(now, dtype=np.float64)
    now = now[:, None] if now.ndim == 1 else now
    n = len(now) if n is None else n
    mean = np.broadcast_to(np.asarray(train_mean, dtype=np.float64), (n, len(targets)))
    use_mean = np.array([naive_kind(t) == TRAINING_MEAN for t in targets])
    return np.where(use_mean[None, :], mean, now[:n])


def residual_applies(inputs: list[str], targets: list[str]) -> bool:
    """Whether a model predicts each target as "its last input value plus a change".

    Only for level targets whose naive forecast is persistence, and only when each is an
    input: the untrained model then *is* the naive forecast. A return-like target starts
    from the scaled training mean instead (about zero), its own naive forecast: "the next
    return equals this one" is a poor start (the lag-1 autocorrelation would need to be 0.5
    for it to beat the mean) and regularisation would pull towards it.
    """
    return bool(targets) and all(t in inputs and naive_kind(t) == PERSISTENCE for t in targets)
