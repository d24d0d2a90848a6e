"""Load bar data from CSV or Parquet and check it, with one clear line per problem.

Output format (also what ``synthetic.make_bars`` returns): a ``DatetimeIndex`` named
``timestamp``, sorted and unique; float64 columns ``open, high, low, close, volume`` in lower
case, then every other numeric column of the file. Rows in messages are counted from 0 in
file order (after picking the ticker) and come with their timestamp.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from trainables.errors import ConfigError, DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "TICKER_NAMES",
    "TIMESTAMP_NAMES",
    "bars_fingerprint",
    "bars_from_frame",
    "check_enough_rows",
    "load_bars",
    "validate_bars",
]

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
_TIMESTAMP_NAMES = ("timestamp", "datetime", "date", "time")
_TICKER_NAMES = ("ticker", "symbol")
# The names looked for, in order, when no column is named (a database reader selects them).
TIMESTAMP_NAMES, TICKER_NAMES = _TIMESTAMP_NAMES, _TICKER_NAMES
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def load_bars(
    path: str | Path,
    *,
    ticker: str | None = None,
    timestamp_col: str | None = None,
    ticker_col: str | None = None,
) -> pd.DataFrame:
    """Read one ticker's bars from a CSV or Parquet file and validate them."""
    path = Path(path)
    source = str(path)
    return bars_from_frame(
        _read(path, source),
        source,
        ticker=ticker,
        timestamp_col=timestamp_col,
        ticker_col=ticker_col,
    )


def bars_from_frame(
    df: pd.DataFrame,
    source: str,
    *,
    ticker: str | None = None,
    timestamp_col: str | None = None,
    ticker_col: str | None = None,
) -> pd.DataFrame:
    """A frame as a file or a database gave it -> checked bars: what ``load_bars`` does after
    reading (column names, ticker, timestamp parsing, then ``validate_bars``)."""
    df = _lowercase_columns(df, source)
    df = _pick_ticker(df, source, ticker=ticker, ticker_col=ticker_col)
    df = _set_timestamp_index(df, source, timestamp_col=timestamp_col)
    return validate_bars(df, source)


def validate_bars(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a frame indexed by timestamps and return it in the bar format.

    Raises DataError for a missing column, a non-numeric, NaN/inf or non-positive value,
    or unsorted/duplicate timestamps.
    """
    df = _lowercase_columns(df, source)
    if len(df) == 0:
        raise DataError(f"{source}: no rows")
    if pd.api.types.is_numeric_dtype(df.index):
        raise DataError(f"{source}: the index holds numbers, not timestamps; index by time")
    index = _parse_timestamps(pd.Series(df.index), source, "the index")
    for name in REQUIRED_COLUMNS:
        if name not in df.columns:
            raise DataError(_missing_column(source, name, list(df.columns)))

    columns: dict[str, np.ndarray] = {}
    for name in df.columns:
        required = name in REQUIRED_COLUMNS
        values = _numeric(df[name], source, name, index, strict=required)
        if values is not None:
            columns[name] = values
    ordered = [*REQUIRED_COLUMNS, *(c for c in columns if c not in REQUIRED_COLUMNS)]
    out = pd.DataFrame({c: columns[c] for c in ordered}, index=pd.DatetimeIndex(index))
    out.index.name = "timestamp"

    for name in out.columns:
        _check_finite(out[name], source, name)
    for name in ("open", "high", "low", "close"):
        _check_positive(out[name], source, name, allow_zero=False)
    _check_positive(out["volume"], source, "volume", allow_zero=True)
    _check_order(out.index, source)
    return out


def check_enough_rows(
    n_rows: int, *, seq_len: int, horizon: int, n_splits: int, source: str
) -> None:
    """Raise DataError unless ``n_rows`` can hold a training block and ``n_splits`` folds.

    The first window and the last label take ``seq_len + horizon - 1`` rows; the training
    block and each evaluation block need at least one span (``seq_len + horizon`` rows) so
    that purging leaves samples on both sides. This is a floor, not a guarantee: the
    splitters check their own sizes.
    """
    for name, value in (("seq_len", seq_len), ("horizon", horizon), ("n_splits", n_splits)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, but got {name}={value!r}")
    span = seq_len + horizon
    need = span - 1 + (n_splits + 1) * span
    if n_rows < need:
        folds = f"{n_splits} fold" + ("s" if n_splits != 1 else "")
        raise DataError(
            f"{source}: {n_rows:,} rows are too few for seq_len={seq_len} + horizon={horizon}"
            f" + {folds} (need at least {need:,})"
        )


def bars_fingerprint(bars: pd.DataFrame) -> str:
    """``sha256:<hex>`` of the rows a run reads: timestamps, column names and float64 values.

    Two loads of the same bars give the same fingerprint whatever the file format (CSV,
    Parquet, a database); any changed, added or removed row or column changes it.
    """
    h = hashlib.sha256()
    # In nanoseconds whatever the index's unit: a database or Parquet may give microseconds.
    h.update(np.ascontiguousarray(bars.index.as_unit("ns").asi8).tobytes())
    h.update("\x1f".join(map(str, bars.columns)).encode())
    h.update(np.ascontiguousarray(bars.to_numpy(dtype=np.float64)).tobytes())
    return f"sha256:{h.hexdigest()}"


# --- reading -------------------------------------------------------------------------------


def _read(path: Path, source: str) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith(_CSV_SUFFIXES):
        kind = "CSV"
    elif name.endswith(_PARQUET_SUFFIXES):
        kind = "Parquet"
    else:
        suffix = "".join(path.suffixes) or "no suffix"
        raise DataError(
            f"{source}: unsupported format ({suffix}); use .csv (optionally .gz/.bz2/.zip/.xz),"
            " .parquet or .pq"
        )
    if not path.exists():
        raise DataError(f"{source}: no such file")
    if not path.is_file():
        raise DataError(f"{source}: not a file")
    try:
        if kind == "CSV":
            return pd.read_csv(path)
        return pd.read_parquet(path, engine="pyarrow")
    except (OSError, ValueError, pa.ArrowException) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{source}: cannot read as {kind}: {first_line}") from err


def _lowercase_columns(df: pd.DataFrame, source: str) -> pd.DataFrame:
    seen: dict[str, str] = {}
    for original in df.columns:
        key = str(original).strip().lower()
        if key in seen:
            raise DataError(
                f"{source}: columns {seen[key]!r} and {original!r} both mean {key!r}; keep one"
            )
        seen[key] = str(original)
    return df.set_axis(list(seen), axis=1)


def _find_column(
    df: pd.DataFrame, source: str, given: str | None, candidates: tuple[str, ...], what: str
) -> str | None:
    """The column named ``given`` (case-insensitive), else the first of ``candidates``."""
    if given is not None:
        key = str(given).strip().lower()
        if key not in df.columns:
            raise DataError(_missing_column(source, key, list(df.columns), what=what))
        return key
    return next((c for c in candidates if c in df.columns), None)


def _pick_ticker(
    df: pd.DataFrame, source: str, *, ticker: str | None, ticker_col: str | None
) -> pd.DataFrame:
    col = _find_column(df, source, ticker_col, _TICKER_NAMES, "ticker column")
    if col is None:
        if ticker is not None:
            raise DataError(
                f"{source}: ticker={ticker!r} was given but there is no ticker column (looked"
                f" for {', '.join(_TICKER_NAMES)}; pass ticker_col=...); columns are"
                f" {list(df.columns)}"
            )
        return df
    labels = df[col].astype(str)
    present = list(dict.fromkeys(labels))
    if ticker is None:
        if len(present) > 1:
            raise DataError(
                f"{source}: column {col!r} holds {len(present)} tickers {_preview(present)};"
                " pick one with ticker=..."
            )
        return df.drop(columns=col)
    wanted = str(ticker)
    if wanted not in present:
        # A unique case-insensitive match is the same ticker written differently.
        folded = [t for t in present if t.lower() == wanted.lower()]
        if len(folded) != 1:
            close = difflib.get_close_matches(wanted, present, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"{source}: ticker {wanted!r} is not in column {col!r}{hint};"
                f" tickers present: {_preview(present)}"
            )
        wanted = folded[0]
    # Keep the index: a Parquet file may hold the timestamps there.
    return df.loc[(labels == wanted).to_numpy()].drop(columns=col)


def _set_timestamp_index(
    df: pd.DataFrame, source: str, *, timestamp_col: str | None
) -> pd.DataFrame:
    col = _find_column(df, source, timestamp_col, _TIMESTAMP_NAMES, "timestamp column")
    if col is not None:
        index = _parse_timestamps(df[col], source, f"column {col!r}")
        return df.drop(columns=col).set_axis(pd.DatetimeIndex(index), axis=0)
    if isinstance(df.index, pd.DatetimeIndex):  # Parquet written with a timestamp index
        return df
    raise DataError(
        f"{source}: no timestamp column (looked for {', '.join(_TIMESTAMP_NAMES)};"
        f" pass timestamp_col=...); columns are {list(df.columns)}"
    )


# --- checks --------------------------------------------------------------------------------


def _parse_timestamps(values: pd.Series, source: str, where: str) -> pd.Series:
    values = values.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed = pd.to_datetime(values, unit=_epoch_unit(values), errors="coerce")
    else:
        try:
            parsed = pd.to_datetime(values, errors="coerce")
        except (ValueError, TypeError) as err:  # e.g. mixed time zones
            raise DataError(f"{source}: cannot parse timestamps in {where}: {err}") from err
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{source}: {where} has {len(bad):,} missing or unparseable timestamp(s),"
            f" first at row {row} (value {values.iloc[row]!r})"
        )
    return parsed


def _epoch_unit(values: pd.Series) -> str:
    """Unix epoch numbers: pick the unit from the magnitude (seconds up to nanoseconds)."""
    top = float(np.nanmax(np.abs(values.to_numpy(dtype=np.float64)))) if len(values) else 0.0
    for unit, limit in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if top < limit:
            return unit
    return "ns"


def _numeric(
    column: pd.Series, source: str, name: str, index: pd.Series, *, strict: bool
) -> np.ndarray | None:
    """Float64 values; a non-numeric value is an error in a required column, else drops it."""
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64) if strict else None
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64)
    if not strict:
        return None
    coerced = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(coerced.isna().to_numpy() & column.notna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{source}: column {name!r} has {len(bad):,} non-numeric value(s), first at row"
            f" {row} ({index.iloc[row]}): {column.iloc[row]!r}"
        )
    return coerced.to_numpy(dtype=np.float64)


def _check_finite(column: pd.Series, source: str, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(column.to_numpy()))
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{source}: column {name!r} has {len(bad):,} NaN/inf value(s), first at row {row}"
            f" ({column.index[row]})"
        )


def _check_positive(column: pd.Series, source: str, name: str, *, allow_zero: bool) -> None:
    values = column.to_numpy()
    bad = np.flatnonzero(values < 0 if allow_zero else values <= 0)
    if len(bad):
        row = int(bad[0])
        rule = "negative" if allow_zero else "zero or negative"
        raise DataError(
            f"{source}: column {name!r} has {len(bad):,} {rule} value(s), first at row {row}"
            f" ({column.index[row]}): {values[row]!r}"
        )


def _check_order(index: pd.DatetimeIndex, source: str) -> None:
    stamps = index.asi8
    step = np.diff(stamps)
    back = np.flatnonzero(step < 0)
    if len(back):
        row = int(back[0]) + 1
        raise DataError(
            f"{source}: timestamps are not sorted: row {row} ({index[row]}) comes after row"
            f" {row - 1} ({index[row - 1]}); sort the file by time"
        )
    same = np.flatnonzero(step == 0)
    if len(same):
        row = int(same[0]) + 1
        raise DataError(
            f"{source}: duplicate timestamp {index[row]} at rows {row - 1} and {row}"
            f" ({len(same):,} duplicate(s) in all)"
        )


def _missing_column(source: str, name: str, columns: list[str], *, what: str = "column") -> str:
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{source}: no {what} {name!r}{hint}; columns are {list(columns)}"


def _preview(items: list[str], limit: int = 20) -> str:
    if len(items) <= limit:
        return str(items)
    return f"{items[:limit]} and {len(items) - limit:,} more"
