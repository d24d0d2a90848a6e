"""Timestamps of bars: parsing, UTC offsets, local time zones and daylight saving.

* Text is read as ISO 8601 (pandas ``format="ISO8601"``); text in another layout is read in
  the one format pandas infers from the first readable value (never guessed value by value,
  which could read one date day-first and the next month-first).
* Numbers (also text that reads as numbers) are dates written as ``YYYYMMDD`` when they
  all lie in 19000101..21001231, else Unix epochs in s, ms, us or ns by magnitude (UTC).
* Times with a UTC offset are converted to UTC, also when the offset changes within the file
  (New York local time: -05:00 in winter, -04:00 in summer); a time zone stored with the
  data (a Parquet ``timestamp[tz=...]`` column) likewise. An offset cannot tell the zone's
  name, so the note says which offsets were seen.
* Naive times are kept as they are, or with ``timezone=ZONE`` read as local times of that
  zone (``zoneinfo`` names) and converted to UTC. A time in the hour that repeats when
  daylight saving ends, or in the hour that is skipped when it starts, is an error naming
  the row unless ``dst`` says how to resolve it: ``infer`` (the repeated hour in file
  order, a skipped time shifted forward) or ``drop`` (the row is left out).

Rows in messages are file rows: ``rows[i]`` is the file row of position ``i``.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from trainables.errors import ConfigError, DataError

__all__ = ["DST_CHOICES", "Parsed", "parse_timestamps", "to_utc"]

DST_CHOICES = ("raise", "infer", "drop")
# A UTC offset after a time of day (so the "-01" ending a date "2020-01-01" is none).
_OFFSET = r"(Z|[+-]\d{2}(?::?\d{2})?)$"
_TIME_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*" + _OFFSET


@dataclass(frozen=True)
class Parsed:
    """Parsed timestamps, what they were (``text``, ``epoch``, ``datetime``) and any offsets."""

    values: pd.Series
    kind: str
    offsets: tuple[str, ...] = ()


def parse_timestamps(values: pd.Series, source: str, where: str, rows: np.ndarray) -> Parsed:
    """Timestamps from a column (or an index) of text, epoch numbers or datetimes."""
    values = values.reset_index(drop=True)
    offsets: tuple[str, ...] = ()
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed, kind = values, "datetime"
    elif pd.api.types.is_bool_dtype(values):
        raise DataError(f"{source}: {where} holds true/false values, not timestamps")
    elif pd.api.types.is_numeric_dtype(values) or _mostly_numbers(values):
        # Numbers (also in a text column, with a few bad values): dates written as
        # YYYYMMDD, else Unix epochs.
        numbers = pd.to_numeric(values, errors="coerce")
        if _yyyymmdd(numbers):
            text = numbers.astype("Int64").astype(str)
            parsed, kind = pd.to_datetime(text, format="%Y%m%d", errors="coerce"), "text"
        else:
            unit = _epoch_unit(numbers)
            parsed, kind = pd.to_datetime(numbers, unit=unit, errors="coerce"), "epoch"
    else:
        (parsed, offsets), kind = _parse_text(values, source, where, rows), "text"
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{source}: {where} has {len(bad):,} missing or unparseable timestamp(s),"
            f" first at row {rows[i]} (value {_shown(values.iloc[i])})"
        )
    return Parsed(parsed, kind, offsets)


def to_utc(
    index: pd.DatetimeIndex,
    parsed: Parsed,
    source: str,
    rows: np.ndarray,
    *,
    timezone: str | None = None,
    dst: str = "raise",
) -> tuple[pd.DatetimeIndex, np.ndarray | None, str]:
    """(index, positions kept or None for all, a note on how the times were read)."""
    if dst not in DST_CHOICES:
        raise ConfigError(f"--dst must be one of {list(DST_CHOICES)}, but got {dst!r}")
    if index.tz is not None:
        seen = ", ".join(parsed.offsets) if parsed.offsets else str(index.tz)
        if timezone is not None:
            raise ConfigError(
                f"{source}: the timestamps carry a time zone or UTC offset ({seen}) and are "
                f"converted to UTC; --timezone {timezone} is only for naive local times: drop it"
            )
        if seen in ("UTC", "+00:00"):
            return index.tz_convert("UTC"), None, "UTC"
        what = "UTC offsets" if parsed.offsets else "time zone"
        return index.tz_convert("UTC"), None, f"converted to UTC from {what} {seen}"
    if timezone is None:
        return index, None, "naive, as in the file (no time zone)"
    if parsed.kind == "epoch":
        raise ConfigError(
            f"{source}: the timestamps are Unix epoch numbers, which count from UTC; "
            f"--timezone {timezone} is only for naive local times: drop it"
        )
    zone = _zone(timezone)
    keep = _dst_rows(index, zone, source, rows, dst)
    kept = index if keep is None else index[keep]
    ambiguous = "infer" if dst == "infer" else "raise"
    nonexistent = "shift_forward" if dst == "infer" else "raise"
    try:
        local = kept.tz_localize(zone, ambiguous=ambiguous, nonexistent=nonexistent)
    except ValueError as err:  # 'infer' needs both copies of the repeated hour, in order
        raise DataError(
            f"{source}: cannot tell which copy of the repeated hour at a daylight saving change "
            f"in {timezone} a time is ({err}); pass --dst drop to leave those rows out"
        ) from err
    note = f"read as {timezone} local time, converted to UTC"
    if keep is not None:
        note += f" ({int((~keep).sum()):,} row(s) at a daylight saving change dropped)"
    return local.tz_convert("UTC"), keep, note


# ---------------------------------------------------------------------- helpers


def _parse_text(
    values: pd.Series, source: str, where: str, rows: np.ndarray
) -> tuple[pd.Series, tuple[str, ...]]:
    try:
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):  # several UTC offsets, or an offset on some rows only
        return _parse_offsets(values, source, where, rows)
    offsets = _offsets_of(values) if getattr(parsed.dt, "tz", None) is not None else ()
    if parsed.isna().sum() > values.isna().sum():
        # Not ISO 8601: the layout pandas infers from the first value it can read, for all.
        layout = next(
            (g for v in values.dropna().head(20) if (g := guess_datetime_format(str(v)))), None
        )
        if layout is not None:
            try:
                other = pd.to_datetime(values, format=layout, errors="coerce")
            except (ValueError, TypeError):
                other = None
            if other is not None and other.isna().sum() < parsed.isna().sum():
                parsed, offsets = other, ()
    return parsed, offsets


def _parse_offsets(
    values: pd.Series, source: str, where: str, rows: np.ndarray
) -> tuple[pd.Series, tuple[str, ...]]:
    text = values.astype(str).str.strip()
    present = values.notna().to_numpy()
    has = text.str.extract(_TIME_OFFSET, flags=re.IGNORECASE, expand=False).notna().to_numpy()
    if (present & ~has).any() and (present & has).any():
        i, j = int(np.flatnonzero(present & has)[0]), int(np.flatnonzero(present & ~has)[0])
        raise DataError(
            f"{source}: {where} mixes times with and without a UTC offset: row {rows[i]}"
            f" {text.iloc[i]!r} has one, row {rows[j]} {text.iloc[j]!r} has none; give every"
            " time an offset, or none"
        )
    try:
        parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    except (ValueError, TypeError) as err:
        raise DataError(
            f"{source}: cannot parse timestamps in {where}: {_first_line(err)}"
        ) from err
    return parsed, _offsets_of(values)


def _offsets_of(values: pd.Series) -> tuple[str, ...]:
    """The distinct UTC offsets written in the text, as +HH:MM, in order of appearance."""
    text = values.dropna().astype(str).str.strip()
    found = text.str.extract(_TIME_OFFSET, flags=re.IGNORECASE, expand=False).dropna()
    return tuple(dict.fromkeys(_normal_offset(o) for o in found))


def _normal_offset(text: str) -> str:
    if text.upper() == "Z":
        return "+00:00"
    digits = text[1:].replace(":", "")
    return f"{text[0]}{digits[:2]}:{digits[2:4] or '00'}"


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(
            f"--timezone {name!r} is not a time zone name (use an IANA name such as "
            f"America/New_York, Europe/London or UTC)"
        ) from err


def _dst_rows(
    index: pd.DatetimeIndex, zone: zoneinfo.ZoneInfo, source: str, rows: np.ndarray, dst: str
) -> np.ndarray | None:
    """Check the daylight saving changes; with dst='drop' the positions to keep."""
    n = len(index)
    repeated = np.asarray(
        index.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward").isna()
    )
    skipped = np.asarray(
        index.tz_localize(zone, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT").isna()
    )
    if dst == "drop":
        return ~(repeated | skipped) if (repeated | skipped).any() else None
    if dst == "raise":
        for mask, what in (
            (repeated, "repeats when daylight saving time ends"),
            (skipped, "is skipped when daylight saving time starts"),
        ):
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                raise DataError(
                    f"{source}: {index[i]} at row {rows[i]} is not one moment in {zone.key}: "
                    f"that hour {what} ({int(mask.sum()):,} such row(s)); pass --dst infer or "
                    f"--dst drop (docs/data.md)"
                )
    return None


def _epoch_unit(values: pd.Series) -> str:
    """Unix epoch numbers: pick the unit from the magnitude (seconds up to nanoseconds)."""
    numbers = values.to_numpy(dtype=np.float64)
    finite = numbers[np.isfinite(numbers)]
    top = float(np.max(np.abs(finite))) if len(finite) else 0.0
    for unit, limit in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if top < limit:
            return unit
    return "ns"


def _yyyymmdd(numbers: pd.Series) -> bool:
    """Whole numbers 19000101..21001231 are dates (as epoch seconds they would be 1970)."""
    present = numbers.dropna().to_numpy(dtype=np.float64)
    if len(present) == 0:
        return False
    whole = (present == np.round(present)).all()
    return bool(whole and present.min() >= 19000101 and present.max() <= 21001231)


def _mostly_numbers(values: pd.Series) -> bool:
    present = values.dropna()
    if len(present) == 0:
        return False
    return bool(pd.to_numeric(present, errors="coerce").notna().mean() > 0.5)


def _shown(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "empty"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
