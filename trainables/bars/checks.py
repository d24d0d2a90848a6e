"""The value checks of bars, each failing with one line that names the source, column and row.

Errors (``DataError``): a column that is not numbers (its dtype named), NaN/inf, a price
<= 0 or a volume < 0, a value beyond ``MAX_ABS``, unsorted or repeated timestamps, a price
that jumps by more than ``max_jump`` in |log return| between consecutive bars, a close
that never changes. Warnings (``DataWarning``): a long stretch of unchanged closes, a time
gap longer than weekends and holidays explain. docs/data.md lists them with examples.

``rows[i]`` is the file row of position ``i`` and ``index[i]`` its timestamp; messages show
both: ``row 600 (2020-01-26 00:00:00)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from trainables.errors import ConfigError, DataError, DataWarning

__all__ = [
    "DEFAULT_MAX_JUMP",
    "MAX_ABS",
    "check_constant_close",
    "check_gaps",
    "check_jumps",
    "check_magnitude",
    "check_max_jump",
    "check_order",
    "check_values",
    "numeric_values",
]

# Squares of values up to 1e18 stay finite even in float32 (max 3.4e38): larger values would
# overflow a loss or an error metric; no price or volume is that large.
MAX_ABS = 1e18
# A price may move by a factor of up to e^2 = 7.4 between consecutive bars: real moves
# (-86% .. +639%) pass, a decimal point in the wrong place (x10) or a stray 1e30 does not.
DEFAULT_MAX_JUMP = 2.0
FLAT_MIN_BARS, FLAT_SHARE = 24, 0.05  # warn about unchanged closes over this many bars
GAP_SLACK = pd.Timedelta(days=4)  # a long weekend with a holiday, on top of the usual step
_PRICES = ("open", "high", "low", "close")


def numeric_values(
    column: pd.Series, source: str, name: str, index, rows, *, strict: bool
) -> np.ndarray | None:
    """Float64 values of a column of numbers. A column of anything else is an error when
    ``strict`` (OHLCV), else ``None`` (the column is dropped)."""
    dtype = column.dtype
    other_kind = (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
    )
    if other_kind:
        if not strict:
            return None
        raise DataError(
            f"{source}: column {name!r} has dtype {dtype}, not numbers; store it as integers"
            " or floats"
        )
    if pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    if not strict:
        return None
    try:
        coerced = pd.to_numeric(column, errors="coerce")
    except (TypeError, ValueError) as err:  # e.g. lists or bytes from a nested Parquet type
        raise DataError(
            f"{source}: column {name!r} has dtype {dtype} holding"
            f" {type(column.dropna().iloc[0]).__name__ if column.notna().any() else 'no'}"
            " values, not numbers"
        ) from err
    bad = np.flatnonzero(coerced.isna().to_numpy() & column.notna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{source}: column {name!r} has {len(bad):,} non-numeric value(s), first at"
            f" {_at(index, rows, i)}: {column.iloc[i]!r} (the column is read as text, dtype {dtype})"
        )
    return coerced.to_numpy(dtype=np.float64, na_value=np.nan)


def check_values(frame: pd.DataFrame, source: str, rows: np.ndarray) -> None:
    """Finite everywhere, prices > 0, volume >= 0."""
    where = (frame.index, rows)
    for name in frame.columns:
        values = frame[name].to_numpy()
        _first(~np.isfinite(values), source, name, "NaN/inf value(s)", where, values, show=False)
    for name in _PRICES:
        values = frame[name].to_numpy()
        _first(values <= 0, source, name, "zero or negative value(s)", where, values)
    values = frame["volume"].to_numpy()
    _first(values < 0, source, "volume", "negative value(s)", where, values)


def check_magnitude(frame: pd.DataFrame, source: str, rows: np.ndarray) -> None:
    """Nothing beyond ``MAX_ABS`` (after the jumps, which name a lone absurd price better)."""
    for name in frame.columns:
        values = frame[name].to_numpy()
        _first(
            np.abs(values) > MAX_ABS,
            source,
            name,
            f"value(s) beyond {MAX_ABS:.0e} in size",
            (frame.index, rows),
            values,
            hint="; values that large overflow the arithmetic of training: fix or rescale it",
        )


def check_order(index: pd.DatetimeIndex, source: str, rows: np.ndarray) -> None:
    stamps = index.asi8
    step = np.diff(stamps)
    back = np.flatnonzero(step < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(
            f"{source}: timestamps are not sorted: {_at(index, rows, i)} comes after"
            f" {_at(index, rows, i - 1)};"
            " sort the file by time"
        )
    same = np.flatnonzero(step == 0)
    if len(same):
        i = int(same[0]) + 1
        hint = ""
        if index.tz is None:
            hint = "; local times repeating at a daylight saving change? see --timezone, --dst"
        raise DataError(
            f"{source}: duplicate timestamp {index[i]} at rows {rows[i - 1]} and {rows[i]}"
            f" ({len(same):,} duplicate(s) in all){hint}"
        )


def check_max_jump(max_jump: float) -> float:
    if isinstance(max_jump, bool) or not isinstance(max_jump, (int, float)) or not max_jump > 0:
        raise ConfigError(
            f"--max-jump must be a |log return| > 0 (inf turns the check off), but got {max_jump!r}"
        )
    return float(max_jump)


def check_jumps(frame: pd.DataFrame, source: str, rows: np.ndarray, *, max_jump: float) -> None:
    """No price moves by more than ``max_jump`` in |log return| from one bar to the next."""
    if math.isinf(max_jump):
        return
    for name in _PRICES:
        values = frame[name].to_numpy()
        moves = np.abs(np.diff(np.log(values)))
        bad = np.flatnonzero(moves > max_jump)
        if len(bad):
            i = int(bad[0]) + 1
            raise DataError(
                f"{source}: column {name!r} jumps from {_num(values[i - 1])} at"
                f" {_at(frame.index, rows, i - 1)} to {_num(values[i])} at"
                f" {_at(frame.index, rows, i)}, a log return of {moves[i - 1]:.3g}"
                f" ({len(bad):,} move(s) above --max-jump {max_jump:g} in all); fix the row,"
                " or raise --max-jump if the move is real"
            )


def check_constant_close(close: pd.Series, source: str, rows: np.ndarray) -> None:
    """A close that never changes is an error; a long unchanged stretch is a warning."""
    values = close.to_numpy()
    n = len(values)
    if n > 1 and (values == values[0]).all():
        raise DataError(
            f"{source}: column 'close' never changes (all {n:,} bars close at"
            f" {_num(values[0])}): there is nothing to forecast"
        )
    starts = np.r_[0, np.flatnonzero(np.diff(values) != 0) + 1]
    lengths = np.diff(np.r_[starts, n])
    limit = max(FLAT_MIN_BARS, math.ceil(FLAT_SHARE * n))
    long = np.flatnonzero(lengths >= limit)
    if len(long):
        k = int(long[np.argmax(lengths[long])])
        first, last = int(starts[k]), int(starts[k] + lengths[k] - 1)
        warnings.warn(
            f"{source}: column 'close' stays at {_num(values[first])} for {lengths[k]:,} bars,"
            f" {_at(close.index, rows, first)} to {_at(close.index, rows, last)} ({len(long):,} such stretch(es) of"
            f" {limit:,}+ bars): a CV fold or test part inside it has zero persistence error",
            DataWarning,
            stacklevel=4,
        )


def check_gaps(index: pd.DatetimeIndex, source: str, rows: np.ndarray) -> None:
    """Warn about time gaps longer than the usual bar step plus ``GAP_SLACK``."""
    if len(index) < 3:
        return
    steps = pd.Series(index).diff().iloc[1:].reset_index(drop=True)
    usual = steps.median()
    big = np.flatnonzero((steps > usual + GAP_SLACK).to_numpy())
    if len(big):
        k = int(big[np.argmax(steps.iloc[big].to_numpy())])
        warnings.warn(
            f"{source}: {len(big):,} time gap(s) longer than the usual step"
            f" ({_duration(usual)}) plus 4 days of weekend and holidays, the longest"
            f" {_duration(steps.iloc[k])} from {_at(index, rows, k)}"
            f" to {_at(index, rows, k + 1)}: a window across a gap joins bars far apart in time",
            DataWarning,
            stacklevel=4,
        )


# ---------------------------------------------------------------------- helpers


def _first(mask, source, name, what, where, values, *, show=True, hint="") -> None:
    bad = np.flatnonzero(mask)
    if len(bad):
        i = int(bad[0])
        value = f": {_num(values[i])}" if show else ""
        raise DataError(
            f"{source}: column {name!r} has {len(bad):,} {what}, first at"
            f" {_at(*where, i)}{value}{hint}"
        )


def _at(index, rows: np.ndarray, i: int) -> str:
    return f"row {rows[i]} ({index[i]})"


def _num(value) -> str:
    """``-1.0``, ``1e+300``: a number as Python writes it, not ``np.float64(-1.0)``."""
    return repr(float(value))


def _duration(delta: pd.Timedelta) -> str:
    """``30d 1h``, ``1h``, ``15min``: a time step as people write it."""
    c = delta.components
    parts = [f"{c.days}d" if c.days else "", f"{c.hours}h" if c.hours else ""]
    parts += [f"{c.minutes}min" if c.minutes else "", f"{c.seconds}s" if c.seconds else ""]
    return " ".join(p for p in parts if p) or str(delta)
