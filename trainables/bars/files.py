"""Load bar data from CSV or Parquet and check it, with one clear line per problem.

Output format (also what ``synthetic.make_bars`` returns): a ``DatetimeIndex`` named
``timestamp``, sorted and unique (UTC when the file's times carry an offset or a zone, or
``timezone`` is given); float64 columns ``open, high, low, close, volume`` in lower case, then
every other numeric column of the file. Rows in messages are the file's data rows counted
from 0 (whatever ticker is picked) and come with their timestamp; the frame carries that
mapping for later messages (``trainables.bars.provenance``).

The checks themselves live in ``trainables.bars.timestamps`` (times, zones, daylight saving) and
``trainables.bars.checks`` (values, order, jumps, constant stretches, gaps).
"""

from __future__ import annotations

import bz2
import codecs
import ctypes
import difflib
import gzip
import hashlib
import lzma
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from trainables.bars.checks import (
    DEFAULT_MAX_JUMP,
    check_constant_close,
    check_gaps,
    check_jumps,
    check_magnitude,
    check_max_jump,
    check_order,
    check_values,
    numeric_values,
)
from trainables.bars.provenance import attach_origin
from trainables.bars.timestamps import Parsed, parse_timestamps, to_utc
from trainables.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_MAX_JUMP",
    "REQUIRED_COLUMNS",
    "TICKER_NAMES",
    "TIMESTAMP_NAMES",
    "bars_fingerprint",
    "bars_from_frame",
    "check_enough_rows",
    "load_bars",
    "read_table",
    "split_tickers",
    "validate_bars",
]

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
_TIMESTAMP_NAMES = ("timestamp", "datetime", "date", "time")
_TICKER_NAMES = ("ticker", "symbol")
# The names looked for, in order, when no column is named (a database reader selects them).
TIMESTAMP_NAMES, TICKER_NAMES = _TIMESTAMP_NAMES, _TICKER_NAMES
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
# What a damaged or mislabelled file makes the readers raise (truncated archives included).
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    pa.ArrowException,
    zipfile.BadZipFile,
    lzma.LZMAError,
)


def load_bars(
    path: str | Path,
    *,
    ticker: str | None = None,
    timestamp_col: str | None = None,
    ticker_col: str | None = None,
    timezone: str | None = None,
    dst: str = "raise",
    max_jump: float = DEFAULT_MAX_JUMP,
) -> pd.DataFrame:
    """Read one ticker's bars from a CSV or Parquet file and validate them.

    ``timezone``: the zone of naive local times (converted to UTC); ``dst``: how to read a
    time at a daylight saving change (``raise``, ``infer``, ``drop``); ``max_jump``: the
    largest |log return| of a price between consecutive bars (``inf``: no limit).
    """
    path = Path(path)
    source = str(path)
    return bars_from_frame(
        _read(path, source),
        source,
        ticker=ticker,
        timestamp_col=timestamp_col,
        ticker_col=ticker_col,
        timezone=timezone,
        dst=dst,
        max_jump=max_jump,
    )


def bars_from_frame(
    df: pd.DataFrame,
    source: str,
    *,
    ticker: str | None = None,
    timestamp_col: str | None = None,
    ticker_col: str | None = None,
    timezone: str | None = None,
    dst: str = "raise",
    max_jump: float = DEFAULT_MAX_JUMP,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """A frame as a file or a database gave it -> checked bars: what ``load_bars`` does after
    reading (column names, ticker, timestamp parsing, then ``validate_bars``). ``rows``: the
    file's row of each of ``df``'s rows (default 0, 1, ...), for messages: one ticker's part
    of a file (``split_tickers``) keeps the file's own row numbers."""
    df = _lowercase_columns(df, source)
    rows = np.arange(len(df)) if rows is None else np.asarray(rows)
    df, rows = _pick_ticker(df, source, rows, ticker=ticker, ticker_col=ticker_col)
    df, parsed = _set_timestamp_index(df, source, rows, timestamp_col=timestamp_col)
    bars = _validate(df, source, rows, parsed, timezone=timezone, dst=dst, max_jump=max_jump)
    del df, rows, parsed
    release_memory()  # the reader's and the checks' temporaries
    return bars


def validate_bars(
    df: pd.DataFrame,
    source: str,
    *,
    timezone: str | None = None,
    dst: str = "raise",
    max_jump: float = DEFAULT_MAX_JUMP,
) -> pd.DataFrame:
    """Check a frame indexed by timestamps and return it in the bar format.

    Every frame-level check of ``load_bars``: column names and types, NaN/inf, prices > 0,
    absurd values, time zones (``timezone``, ``dst``), order, duplicates, jumps
    (``max_jump``), a constant close (error), long constant stretches and time gaps
    (``DataWarning``). Rows in messages are positions in ``df``, counted from 0.
    """
    df = _lowercase_columns(df, source)
    if pd.api.types.is_numeric_dtype(df.index) and len(df):
        raise DataError(f"{source}: the index holds numbers, not timestamps; index by time")
    rows = np.arange(len(df))
    parsed = parse_timestamps(pd.Series(df.index), source, "the index", rows)
    return _validate(df, source, rows, parsed, timezone=timezone, dst=dst, max_jump=max_jump)


def _validate(
    df: pd.DataFrame,
    source: str,
    rows: np.ndarray,
    parsed: Parsed,
    *,
    timezone: str | None,
    dst: str,
    max_jump: float,
) -> pd.DataFrame:
    max_jump = check_max_jump(max_jump)
    if len(df) == 0:
        raise DataError(f"{source}: no rows")
    index, keep, note = to_utc(
        pd.DatetimeIndex(parsed.values), parsed, source, rows, timezone=timezone, dst=dst
    )
    if keep is not None:
        df, rows = df.iloc[keep], rows[keep]
    for name in REQUIRED_COLUMNS:
        if name not in df.columns:
            raise DataError(_missing_column(source, name, list(df.columns)))

    columns: dict[str, np.ndarray] = {}
    for name in df.columns:
        required = name in REQUIRED_COLUMNS
        values = numeric_values(df[name], source, name, index, rows, strict=required)
        if values is not None:
            columns[name] = values
    ordered = [*REQUIRED_COLUMNS, *(c for c in columns if c not in REQUIRED_COLUMNS)]
    out = pd.DataFrame({c: columns[c] for c in ordered}, index=index)
    out.index.name = "timestamp"

    check_values(out, source, rows)
    check_order(out.index, source, rows)
    check_jumps(out, source, rows, max_jump=max_jump)
    check_magnitude(out, source, rows)
    check_constant_close(out["close"], source, rows)
    check_gaps(out.index, source, rows)
    return attach_origin(out, source, rows, note)


def check_enough_rows(
    n_rows: int, *, sequence_length: int, horizon: int, n_splits: int, source: str
) -> None:
    """Raise DataError unless ``n_rows`` can hold a training block and ``n_splits`` folds.

    The first window and the last label take ``sequence_length + horizon - 1`` rows; the training
    block and each evaluation block need at least one span (``sequence_length + horizon`` rows) so
    that purging leaves samples on both sides. This is a floor, not a guarantee: the
    splitters check their own sizes.
    """
    for name, value in (
        ("sequence_length", sequence_length),
        ("horizon", horizon),
        ("n_splits", n_splits),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, but got {name}={value!r}")
    span = sequence_length + horizon
    need = span - 1 + (n_splits + 1) * span
    if n_rows < need:
        folds = f"{n_splits} fold" + ("s" if n_splits != 1 else "")
        raise DataError(
            f"{source}: {n_rows:,} rows are too few for sequence_length={sequence_length} + horizon={horizon}"
            f" + {folds} (need at least {need:,})"
        )


_HASH_ROWS = 65_536  # rows hashed at a time


def bars_fingerprint(bars: pd.DataFrame) -> str:
    """``sha256:<hex>`` of the rows a run reads: timestamps, column names and float64 values.

    Two loads of the same bars give the same fingerprint whatever the file format (CSV,
    Parquet, a database); any changed, added or removed row or column changes it.
    """
    h = hashlib.sha256()
    # In nanoseconds whatever the index's unit: a database or Parquet may give microseconds.
    h.update(np.ascontiguousarray(bars.index.as_unit("ns").asi8))
    h.update("\x1f".join(map(str, bars.columns)).encode())
    # The float64 values row by row, fed a block of rows at a time: the same bytes as the
    # whole [n, C] array's, without three copies of it at 2M bars.
    for start in range(0, len(bars), _HASH_ROWS):
        block = bars.iloc[start : start + _HASH_ROWS].to_numpy(dtype=np.float64)
        h.update(np.ascontiguousarray(block))
    return f"sha256:{h.hexdigest()}"


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file's rows as they are, before any check (``load_bars`` checks them);
    DataError naming the file when it cannot be read."""
    path = Path(path)
    return _read(path, str(path))


def split_tickers(
    df: pd.DataFrame, source: str, *, ticker_col: str | None = None
) -> tuple[str, dict[str, tuple[pd.DataFrame, np.ndarray]]]:
    """A multi-ticker frame cut by ticker, in one pass: (the ticker column's name, ticker ->
    (its rows, their row numbers in ``df``)), tickers as text in the order they first appear.
    Each part goes to ``bars_from_frame(part, ..., ticker=T, rows=rows)``, which checks it as
    ``load_bars(path, ticker=T)`` checks that ticker (the same bars, the same messages)."""
    df = _lowercase_columns(df, source)
    col = _find_column(df, source, ticker_col, _TICKER_NAMES, "ticker column")
    if col is None:
        raise DataError(
            f"{source}: no ticker column (looked for {', '.join(_TICKER_NAMES)}); a universe "
            f"needs one; columns are {list(df.columns)}"
        )
    labels = df[col].astype(str).to_numpy()
    codes, names = pd.factorize(labels, sort=False)  # first-seen order, one pass
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    parts = {}
    for k, name in enumerate(names):
        rows = order[bounds[k] : bounds[k + 1]]
        parts[str(name)] = (df.iloc[rows], rows)
    return col, parts


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
    except UnicodeDecodeError as err:
        # The reader decodes in chunks and counts from its chunk's start: find the offset
        # in the file (of the decompressed text, for .gz/.bz2/.zip/.xz) by decoding it here.
        offset, byte = _first_bad_utf8(path)
        if offset is None:
            offset, byte = err.start, err.object[err.start]
        raise DataError(
            f"{source}: cannot read as CSV: not UTF-8 text (byte {byte:#04x} at byte "
            f"{offset:,}); save the file as UTF-8"
        ) from err
    except _READ_ERRORS as err:  # the reader's own message, first line: it names the problem
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{source}: cannot read as {kind}: {first_line}") from err


def release_memory() -> None:
    """Give freed memory back to the system after a big step (reading, checking, building
    the features): Arrow's allocator kept ~2 copies of the rows' numbers it had used on the
    way from a Parquet file or a database result to a DataFrame, and glibc's heap the
    temporaries of a few MB each that pandas frees into it; at 2M bars the two held 160
    bytes a bar beyond the 48 of the bars themselves, for the whole sweep."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl): nothing to trim
        return None


_LIBC = _glibc()


def _first_bad_utf8(path: Path) -> tuple[int | None, int]:
    """(offset, value) of the first byte of ``path`` that is not UTF-8, or (None, 0)."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    try:
        with _open_decompressed(path) as stream:
            while True:
                chunk = stream.read(1 << 20)
                pending = len(decoder.getstate()[0])  # bytes held back from the last chunk
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as err:  # err.start counts from pending + chunk
                    return offset - pending + err.start, err.object[err.start]
                if not chunk:
                    return None, 0
                offset += len(chunk)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, IndexError):
        return None, 0


def _open_decompressed(path: Path):
    """A binary stream of ``path``'s text (decompressed as pandas infers from the name)."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        archive = zipfile.ZipFile(path)
        return archive.open(archive.namelist()[0])
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
    return opener(path, "rb")


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
    df: pd.DataFrame,
    source: str,
    rows: np.ndarray,
    *,
    ticker: str | None,
    ticker_col: str | None,
) -> tuple[pd.DataFrame, np.ndarray]:
    col = _find_column(df, source, ticker_col, _TICKER_NAMES, "ticker column")
    if col is None:
        if ticker is not None:
            raise DataError(
                f"{source}: --ticker {ticker} was given but there is no ticker column (looked"
                f" for {', '.join(_TICKER_NAMES)}); columns are {list(df.columns)}"
            )
        return df, rows
    labels = df[col].astype(str)
    present = list(dict.fromkeys(labels))
    if ticker is None:
        if len(present) > 1:
            raise DataError(
                f"{source}: column {col!r} holds {len(present)} tickers {_preview(present)};"
                " pick one with --ticker"
            )
        return df.drop(columns=col), rows
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
    mask = (labels == wanted).to_numpy()
    return df.loc[mask].drop(columns=col), rows[mask]


def _set_timestamp_index(
    df: pd.DataFrame, source: str, rows: np.ndarray, *, timestamp_col: str | None
) -> tuple[pd.DataFrame, Parsed]:
    col = _find_column(df, source, timestamp_col, _TIMESTAMP_NAMES, "timestamp column")
    if col is not None:
        parsed = parse_timestamps(df[col], source, f"column {col!r}", rows)
        index = pd.DatetimeIndex(parsed.values)
        return df.drop(columns=col).set_axis(index, axis=0), parsed
    if isinstance(df.index, pd.DatetimeIndex):  # Parquet written with a timestamp index
        return df, parse_timestamps(pd.Series(df.index), source, "the index", rows)
    raise DataError(
        f"{source}: no timestamp column (looked for {', '.join(_TIMESTAMP_NAMES)}; name the"
        f" column 'timestamp'); columns are {list(df.columns)}"
    )


# --- messages ------------------------------------------------------------------------------


def _missing_column(source: str, name: str, columns: list[str], *, what: str = "column") -> str:
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{source}: no {what} {name!r}{hint}; columns are {list(columns)}"


def _preview(items: list[str], limit: int = 20) -> str:
    if len(items) <= limit:
        return str(items)
    return f"{items[:limit]} and {len(items) - limit:,} more"
