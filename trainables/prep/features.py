"""Model input features built from bars, all causal: row ``t`` uses rows ``<= t`` only.

Names are the users' own (``open, high, low, close, volume, sma_value``) plus a few derived
ones. Any other numeric column of the bars can be named too and is used as is; a bar column
that shares a derived feature's name is replaced by the derived computation.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from trainables.bars.checks import MAX_ABS
from trainables.bars.provenance import at_row, attach_origin, origin_of, source_of
from trainables.errors import ConfigError, DataError

__all__ = ["FEATURES", "build_features", "warmup_rows"]

FEATURES: dict[str, str] = {
    "open": "opening price of the bar",
    "high": "highest price of the bar",
    "low": "lowest price of the bar",
    "close": "closing price of the bar",
    "volume": "traded volume of the bar",
    "sma_value": "simple moving average of close over sma_window bars",
    "log_return": "log(close_t / close_{t-1})",
    "log_volume": "log(1 + volume)",
    "hl_range": "(high - low) / close, the bar's relative range",
    "volatility": "standard deviation of log_return over sma_window bars",
    "sma_gap": "close / sma_value - 1, distance from the moving average",
    "volume_ratio": "volume / its mean over sma_window bars (a volume surprise)",
    "rsi": "relative strength index over sma_window bars (simple means), 0-100",
}


def _log_return(bars: pd.DataFrame, w: int) -> pd.Series:
    return np.log(bars["close"]).diff()


def _rsi(bars: pd.DataFrame, w: int) -> pd.Series:
    step = bars["close"].diff()
    gain = step.clip(lower=0).rolling(w, min_periods=w).mean()
    loss = (-step).clip(lower=0).rolling(w, min_periods=w).mean()
    total = gain + loss
    # A window without any price move has no direction: call it neutral (50), not 0/0.
    return (100 * gain / total.where(total > 0)).where(total > 0, 50.0).where(total.notna())


def _volume_ratio(bars: pd.DataFrame, w: int) -> pd.Series:
    mean = bars["volume"].rolling(w, min_periods=w).mean()
    # A window of zero volume: this bar is zero too, which is no surprise (ratio 1).
    return (bars["volume"] / mean.where(mean > 0)).where(mean != 0, 1.0).where(mean.notna())


def _sma(bars: pd.DataFrame, w: int) -> pd.Series:
    return bars["close"].rolling(w, min_periods=w).mean()


# Each derived feature: (bar columns it reads, function of (bars, sma_window)).
_DERIVED: dict[str, tuple[tuple[str, ...], Callable[[pd.DataFrame, int], pd.Series]]] = {
    "sma_value": (("close",), _sma),
    "log_return": (("close",), _log_return),
    "log_volume": (("volume",), lambda b, w: np.log1p(b["volume"])),
    "hl_range": (("high", "low", "close"), lambda b, w: (b["high"] - b["low"]) / b["close"]),
    "volatility": (
        ("close",),
        lambda b, w: _log_return(b, w).rolling(w, min_periods=w).std(ddof=1),
    ),
    "sma_gap": (("close",), lambda b, w: b["close"] / _sma(b, w) - 1),
    "volume_ratio": (("volume",), lambda b, w: _volume_ratio(b, w)),
    "rsi": (("close",), _rsi),
}


def warmup_rows(names: Iterable[str], *, sma_window: int = 10) -> int:
    """How many leading bar rows ``build_features`` drops for these feature names."""
    need = {"log_return": 1, "sma_value": sma_window - 1, "sma_gap": sma_window - 1}
    need |= {"volume_ratio": sma_window - 1, "volatility": sma_window, "rsi": sma_window}
    return max((need.get(name, 0) for name in names), default=0)


def build_features(
    bars: pd.DataFrame,
    f_cols: Iterable[str],
    *,
    sma_window: int = 10,
    extra: Iterable[str] = (),
) -> pd.DataFrame:
    """Columns ``f_cols`` then ``extra`` (deduplicated, order kept) on the bars' index.

    The leading warm-up rows, where a rolling window is not yet full, are dropped, so every
    returned value is finite and at most ``bar_checks.MAX_ABS`` in size; a value that is not
    is a DataError naming the feature and the bars' source and row (``trainables.bars.provenance``).
    """
    if isinstance(sma_window, bool) or not isinstance(sma_window, (int, np.integer)):
        raise ConfigError(f"sma_window must be an integer >= 1, but got sma_window={sma_window!r}")
    if sma_window < 1:
        raise ConfigError(f"sma_window must be an integer >= 1, but got sma_window={sma_window}")
    names = _requested(f_cols, "f_cols") + _requested(extra, "extra")
    names = list(dict.fromkeys(names))
    if not names:
        raise ConfigError("f_cols is empty; name at least one feature, e.g. ['close']")
    available = _available(bars)
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown feature {name!r}{hint}; available: {available}")

    columns = {}
    for name in names:
        if name in _DERIVED:
            reads, compute = _DERIVED[name]
            _require_columns(bars, reads, name)
            columns[name] = compute(bars, int(sma_window)).astype(np.float64)
        else:
            column = bars[name]  # copied once, below (astype's copy= is deprecated in pandas 3)
            columns[name] = column if column.dtype == np.float64 else column.astype(np.float64)
    frame = pd.DataFrame(columns, index=bars.index)

    start = warmup_rows(names, sma_window=int(sma_window))
    if start >= len(frame):
        raise DataError(
            f"{_prefix(bars)}{len(bars):,} bars leave no rows after the {start}-row warm-up of"
            f" sma_window={sma_window}; lower sma_window or load more bars"
        )
    frame = frame.iloc[start:]
    origin = origin_of(bars)
    if origin is not None:  # so a later message can name the file's row too
        rows = origin.rows.reindex(frame.index).to_numpy()
        attach_origin(frame, origin.source, rows, origin.timestamps)
    _check_finite(frame, bars)
    return frame


def _prefix(bars: pd.DataFrame) -> str:
    source = source_of(bars)
    return f"{source}: " if source else ""


def _requested(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise ConfigError(f"{what} must be a list of feature names, but got the string {names!r}")
    return [str(n) for n in names]


def _available(bars: pd.DataFrame) -> list[str]:
    extra = [
        str(c) for c in bars.columns if c not in FEATURES and pd.api.types.is_numeric_dtype(bars[c])
    ]
    return [*FEATURES, *extra]


def _require_columns(bars: pd.DataFrame, reads: tuple[str, ...], name: str) -> None:
    missing = [c for c in reads if c not in bars.columns]
    if missing:
        raise DataError(
            f"{_prefix(bars)}feature {name!r} needs bar column(s) {missing}; the bars have"
            f" {list(bars.columns)}"
        )


def _check_finite(frame: pd.DataFrame, bars: pd.DataFrame) -> None:
    """A NaN/inf or an overflowing value after the warm-up is a data problem: say where."""
    values = frame.to_numpy()
    first = None  # (row, column) of the first bad value, row by row as np.nonzero reads it
    for k in range(values.shape[1]):  # a column at a time: no [n, F] temporaries
        column = values[:, k]
        bad = np.flatnonzero(~np.isfinite(column) | (np.abs(column) > MAX_ABS))
        if len(bad) and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), k, len(bad))
    if first is not None:
        row, k, count = first
        col = frame.columns[k]
        raise DataError(
            f"{_prefix(bars)}feature {col!r} is NaN/inf or beyond {MAX_ABS:.0e} in"
            f" {count:,} row(s) after the warm-up, first at {at_row(frame, row)}:"
            f" {float(values[row, k])!r}; check the bars there (zero volume or price?)"
        )
