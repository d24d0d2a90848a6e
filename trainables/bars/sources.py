"""Where bars come from: a CSV/Parquet file or a database table, view or query.

``BarSource`` holds what the command line says (``--data``, ``--data-env``, ``--table``,
``--query``, ``--ticker``, ``--start``, ``--end``); ``read_bars(source)`` returns checked
bars in the format of ``trainables.bars.files`` (the same checks and messages as a file).

``--data`` is a file path or a SQLAlchemy-style URL: ``postgresql://user@host:5432/db``
(``postgresql+psycopg://`` and friends are accepted too: the driver part is ignored) or
``sqlite:///path/bars.db``. ``--data-env VAR`` names an environment variable holding it, so
a password stays off the command line and out of every record. Messages, logs and records
show the URL through ``public_url``/``describe``: never with its password.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from trainables.bars.database import Request, read_database
from trainables.bars.files import DEFAULT_MAX_JUMP, REQUIRED_COLUMNS, bars_from_frame, load_bars
from trainables.errors import ConfigError, DataError
from trainables.prep.features import FEATURES

__all__ = [
    "BarSource",
    "add_source_arguments",
    "cut_range",
    "is_database_url",
    "parse_url",
    "public_url",
    "range_text",
    "read_bars",
    "run_columns",
    "strict_numbers",
    "time_of",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BACKENDS = ("postgresql", "postgres", "sqlite")


def is_database_url(text: str | None) -> bool:
    """``scheme://...``: a database URL (or an unsupported one), not a file path."""
    return bool(text) and _SCHEME.match(text) is not None


def parse_url(text: str, shown: str) -> URL:
    scheme = _SCHEME.match(text).group(1).lower()
    backend = scheme.split("+")[0]
    if backend not in _BACKENDS:
        raise ConfigError(
            f"--data {shown}: unsupported database {scheme!r}; use postgresql://user@host:5432/db "
            f"or sqlite:///path/bars.db (or a .csv/.parquet file)"
        )
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as err:
        raise ConfigError(f"--data {shown}: not a database URL ({err})") from None
    # postgres:// is libpq's spelling; SQLAlchemy only knows postgresql://.
    return url.set(drivername="postgresql" if backend.startswith("postgres") else "sqlite")


def public_url(text: str, *, mask: bool = True) -> str:
    """The URL without its password: ``***`` in its place (``mask``) or left out (a record
    that promote and predict read back; the password then comes from the environment)."""
    if not is_database_url(text):
        return text
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # Unparseable: keep the scheme and host part only, past any user:password@.
        return _SCHEME.match(text).group(0) + text.rsplit("@", 1)[-1]
    query = {k: v for k, v in url.query.items() if k.lower() != "password"}
    if len(query) != len(url.query) and mask:
        query["password"] = "***"
    url = url.set(query=query)
    if not mask:  # URL.set() cannot clear a field
        url = URL.create(
            url.drivername,
            username=url.username,
            host=url.host,
            port=url.port,
            database=url.database,
            query=url.query,
        )
    return url.render_as_string(hide_password=True)


@dataclass(frozen=True)
class BarSource:
    """A file or a database relation to read bars from (the command line's flags)."""

    data: str | None = None  # a file, a database URL, or None (then data_env, else nothing)
    data_env: str | None = None  # an environment variable holding the URL
    table: str | None = None
    query: str | None = None
    ticker: str | None = None
    start: str | None = None  # first bar to read, inclusive
    end: str | None = None  # last bar to read, inclusive
    columns: tuple[str, ...] | None = None  # bar columns beyond OHLCV the run reads
    # how timestamps and prices are checked (trainables.bars.files.load_bars)
    timezone: str | None = None
    dst: str = "raise"
    max_jump: float = DEFAULT_MAX_JUMP

    @classmethod
    def from_flags(cls, flags, **given) -> BarSource:
        """The source a command's parsed flags name: each field from the attribute of the same
        name (``--data``, ``--table``, ``--timezone``, ...), ``given`` overriding or adding."""
        named = {f.name: getattr(flags, f.name) for f in fields(cls) if hasattr(flags, f.name)}
        return cls(**{**named, **given})

    def __post_init__(self) -> None:
        if self.data is not None and self.data_env is not None:
            raise ConfigError("give --data or --data-env, not both")
        if self.table is not None and self.query is not None:
            raise ConfigError("give --table or --query, not both")
        if self.data is None and self.data_env is None and (self.start or self.end):
            raise ConfigError("--start/--end cut your data: give --data or --data-env")
        database = self.data_env is not None or is_database_url(self.data)
        if (self.table or self.query) is not None and not database:
            flag = "--table" if self.table is not None else "--query"
            raise ConfigError(
                f"{flag} reads from a database: give --data postgresql://user@host/db or "
                f"sqlite:///bars.db (or --data-env VAR)"
            )
        if database and self.table is None and self.query is None:
            raise ConfigError(
                f"{self.describe()}: say what to read with --table NAME (a table or view) "
                f"or --query 'SELECT ...'"
            )
        start, end = time_of("--start", self.start), time_of("--end", self.end)
        if start is not None and end is not None and _utc(start) > _utc(end):
            raise ConfigError(f"--start {self.start} is after --end {self.end}")

    @property
    def checks(self) -> dict:
        """The keyword arguments of the checks every bar source gets (time zones, jumps)."""
        return {"timezone": self.timezone, "dst": self.dst, "max_jump": self.max_jump}

    @property
    def is_database(self) -> bool:
        return self.data_env is not None or is_database_url(self.data)

    @property
    def location(self) -> str | None:
        """The file or the URL as given (with its password: never print it)."""
        if self.data_env is None:
            return self.data
        value = os.environ.get(self.data_env, "").strip()
        if not value:
            raise ConfigError(
                f"--data-env {self.data_env}: the environment variable is not set (it should "
                f"hold the database URL, e.g. postgresql://user:password@host:5432/db)"
            )
        return value

    def database_url(self, location: str) -> URL:
        """The parsed URL of a database source; a ``--data-env`` value that is no URL is one
        line that does not show the value."""
        if self.data_env is not None and not is_database_url(location):
            raise ConfigError(
                f"--data-env {self.data_env}: its value is not a database URL (it should look "
                f"like postgresql://user:password@host:5432/db or sqlite:///path/bars.db)"
            )
        return parse_url(location, public_url(location))

    def describe(self) -> str:
        """The source for messages and logs: URL without password, and what is read."""
        if self.data_env is not None:
            try:
                value = self.location
            except ConfigError:
                value = None
            # A value that is no URL may be anything (a bare password): never shown.
            shown = is_database_url(value)
            where = f"{public_url(value)} (from ${self.data_env})" if shown else f"${self.data_env}"
        else:
            where = public_url(self.data) if self.data else "built-in data"
        if self.table is not None:
            return f"{where} table {self.table}"
        if self.query is not None:
            text = " ".join(self.query.split())
            return f"{where} query {text[:60] + '...' if len(text) > 60 else text!r}"
        return where


def read_bars(source: BarSource) -> pd.DataFrame:
    """The bars ``source`` names, checked like a file's, cut to ``start``..``end``."""
    location = source.location
    if location is None:
        raise ConfigError("no data given: pass --data (a file or a database URL) or --data-env")
    start, end = time_of("--start", source.start), time_of("--end", source.end)
    if not source.is_database:
        bars = load_bars(location, ticker=source.ticker, **source.checks)
        return cut_range(bars, start, end, str(location))
    url = source.database_url(location)
    name = source.describe()
    request = Request(source.table, source.query, source.ticker, start, end, source.columns)
    result = read_database(url, request, name)
    frame = result.frame
    if frame.empty:
        picked = f" for ticker {source.ticker!r}" if source.ticker else ""
        raise DataError(f"{name}: no rows{picked}{range_text(start, end)}")
    frame = strict_numbers(frame, name, result.timestamp_col, source.columns or ())
    bars = bars_from_frame(frame, name, timestamp_col=result.timestamp_col, **source.checks)
    return bars if result.time_filtered else cut_range(bars, start, end, name)


def run_columns(f_cols: Iterable[str], target_cols: Iterable[str | None] = ()) -> tuple[str, ...]:
    """Bar columns a run reads beyond OHLCV: inputs and targets that are not built features."""
    names = [*f_cols, *(t for t in target_cols if t)]
    return tuple(dict.fromkeys(n for n in names if n not in FEATURES))


def add_source_arguments(parser: argparse.ArgumentParser, *, snapshot: bool = False) -> None:
    """The database flags every command that takes --data has (one definition, one help)."""
    parser.add_argument(
        "--table",
        help="with a database --data: the table or view to read (optionally schema.name); "
        "only the columns the run needs are read (default: none)",
    )
    parser.add_argument(
        "--query",
        help="with a database --data: a SELECT whose result holds the bars (read-only: "
        "run as a subquery in a read-only transaction); needs a ticker column for --ticker "
        "(default: none)",
    )
    parser.add_argument(
        "--data-env",
        metavar="VAR",
        help="read the database URL from this environment variable (keeps a password off "
        "the command line; records keep the variable's name) (default: none)",
    )
    parser.add_argument(
        "--start", metavar="TIME", help="first bar to read (inclusive; default: the first one)"
    )
    parser.add_argument(
        "--end", metavar="TIME", help="last bar to read (inclusive; default: the last one)"
    )
    if snapshot:
        parser.add_argument(
            "--snapshot",
            action="store_true",
            help="keep the rows read in results/<name>/data.parquet; promotion reads them "
            "from there even after the table changed",
        )


# --- helpers -------------------------------------------------------------------------------


def time_of(flag: str, text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{flag} {text!r}: not a time ({err})") from None
    if pd.isna(stamp):
        raise ConfigError(f"{flag} {text!r}: not a time")
    return stamp


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    """Comparable across zones: a time without an offset is taken as UTC."""
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def cut_range(
    bars: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, name: str
) -> pd.DataFrame:
    if start is None and end is None:
        return bars
    index = bars.index if bars.index.tz is not None else bars.index.tz_localize("UTC")
    keep = np.ones(len(bars), dtype=bool)
    if start is not None:
        keep &= index >= _utc(start)
    if end is not None:
        keep &= index <= _utc(end)
    if not keep.any():
        raise DataError(
            f"{name}: no rows{range_text(start, end)} (the data run from {bars.index[0]} "
            f"to {bars.index[-1]})"
        )
    return bars.loc[keep]


def range_text(start: pd.Timestamp | None, end: pd.Timestamp | None) -> str:
    if start is None and end is None:
        return ""
    return f" from {start if start is not None else 'the start'} to {end if end is not None else 'the end'}"


def strict_numbers(
    frame: pd.DataFrame, name: str, timestamp_col: str, columns: Iterable[str]
) -> pd.DataFrame:
    """Columns the run asked for must hold numbers (text or Decimal becomes float); a value
    that is not one is an error naming the column and the row's timestamp, as for OHLCV."""
    wanted = {c.strip().lower() for c in columns} - set(REQUIRED_COLUMNS)
    for col in frame.columns:
        if col.strip().lower() not in wanted or pd.api.types.is_numeric_dtype(frame[col]):
            continue
        values = pd.to_numeric(frame[col].astype(object), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & frame[col].notna().to_numpy())
        if len(bad):
            row = int(bad[0])
            raise DataError(
                f"{name}: column {col!r} has {len(bad):,} non-numeric value(s), first at row "
                f"{row} ({frame[timestamp_col].iloc[row]}): {frame[col].iloc[row]!r}"
            )
        frame = frame.assign(**{col: values.astype(np.float64)})
    return frame
