"""Read bars from a PostgreSQL or SQLite table, view or query, read-only, as a DataFrame.

PostgreSQL goes through ADBC (``adbc-driver-postgresql``, libpq-based: it reads
``PGPASSWORD`` and ``~/.pgpass`` like psql): the rows arrive as Arrow in binary COPY format,
with no Python loop over rows. Every statement runs in one ``READ ONLY`` transaction with a
``statement_timeout``, rolled back at the end. SQLite goes through the standard library,
opened ``mode=ro`` with an authorizer that refuses anything but reading.

What is read: the relation's timestamp and ticker columns are found by name (as in a file),
only the columns the run needs are selected, the ticker and (PostgreSQL) the time range go
into the WHERE clause as bound parameters, and rows come ordered by time. NUMERIC columns are
cast to double precision by the server. ``trainables.bars.sources`` turns the result into checked
bars with the same code as a file.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import URL

from trainables.bars.files import REQUIRED_COLUMNS, TICKER_NAMES, TIMESTAMP_NAMES
from trainables.errors import ConfigError, DataError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "STATEMENT_TIMEOUT_S",
    "Request",
    "Result",
    "TickersResult",
    "read_database",
    "read_database_tickers",
]

CONNECT_TIMEOUT_S = 5  # a dead host fails in seconds, not after the OS's TCP timeout
STATEMENT_TIMEOUT_S = 600  # a runaway --query stops; 1M bars take a few seconds
WAIT_NOTICE_S = 10  # a query still running after this says so (then every 30 s)
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+"')


@dataclass(frozen=True)
class Request:
    """What to read: a table/view or a query, the run's columns, a ticker, a time range."""

    table: str | None
    query: str | None
    ticker: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    columns: tuple[str, ...] | None  # bar columns beyond OHLCV (None: every column)


@dataclass(frozen=True)
class Result:
    frame: pd.DataFrame  # selected columns as the database names them, ordered by time
    timestamp_col: str
    time_filtered: bool  # False: the caller applies start/end (SQLite stores text timestamps)


def read_database(url: URL, request: Request, source: str) -> Result:
    """Read ``request`` from the database at ``url``; DataError naming ``source`` on failure."""
    relation = _relation(request)
    db = _Postgres(url, source) if url.get_backend_name() == "postgresql" else _Sqlite(url, source)
    try:
        return _read(db, relation, request, source)
    finally:
        db.close()


def _relation(request: Request) -> str:
    """The FROM item: a validated table name, or the user's query as a subquery."""
    if request.query is not None:
        # Trailing semicolons would end the statement early; the newline ends a -- comment.
        query = request.query.strip().rstrip(";").strip()
        if not query:
            raise ConfigError("--query is empty")
        return f"(\n{query}\n) AS q"
    parts = request.table.strip().split(".") if request.table else []
    if not parts or len(parts) > 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise ConfigError(
            f"--table {request.table!r}: not a table name (letters, digits, _ and $, optionally "
            f'schema.name; write a mixed-case name in double quotes: "Bars")'
        )
    return ".".join(parts)


def _layout(db: _Database, relation: str, request: Request, source: str) -> _Layout:
    """The relation's timestamp and ticker columns and the columns to select (checked)."""
    names, numeric = db.probe(f"SELECT * FROM {relation} LIMIT 0")
    by_key = {n.strip().lower(): n for n in names}
    what = "query's result" if request.query is not None else "table"
    ts = next((by_key[k] for k in TIMESTAMP_NAMES if k in by_key), None)
    if ts is None:
        raise DataError(
            f"{source}: no timestamp column in the {what} (looked for "
            f"{', '.join(TIMESTAMP_NAMES)}); columns are {names}"
        )
    ticker_col = next((by_key[k] for k in TICKER_NAMES if k in by_key), None)
    extras = request.columns
    if extras is None:
        skip = {ts, ticker_col, *(by_key.get(c) for c in REQUIRED_COLUMNS)}
        extras = tuple(n for n in names if n not in skip)
    wanted = [*REQUIRED_COLUMNS, *(c for c in extras if c.lower() not in REQUIRED_COLUMNS)]
    for name in wanted:
        if name.strip().lower() not in by_key:
            close = difflib.get_close_matches(name.lower(), list(by_key), n=1)
            hint = f" (did you mean {by_key[close[0]]!r}?)" if close else ""
            raise DataError(
                f"{source}: no column {name!r}{hint} in the {what}; columns are {names}"
            )
    selected = [ts, *(by_key[c.strip().lower()] for c in wanted)]
    return _Layout(names, selected, ts, ticker_col, numeric, what)


@dataclass(frozen=True)
class _Layout:
    names: list[str]  # every column of the relation
    selected: list[str]  # the timestamp column, then the bar columns the run reads
    ts: str
    ticker_col: str | None
    numeric: set[str]  # NUMERIC columns the server casts to double precision
    what: str  # "table" or "query's result", for messages

    def select_list(self, *, ticker: bool = False) -> str:
        cols = [self.selected[0], *([self.ticker_col] if ticker else []), *self.selected[1:]]
        return ", ".join(
            f"CAST({_quote(c)} AS double precision) AS {_quote(c)}"
            if c in self.numeric
            else _quote(c)
            for c in cols
        )


def _read(db: _Database, relation: str, request: Request, source: str) -> Result:
    layout = _layout(db, relation, request, source)
    ts, ticker_col = layout.ts, layout.ticker_col
    ticker = request.ticker
    if ticker is not None and ticker_col is None:
        raise DataError(
            f"{source}: --ticker {ticker!r} needs a ticker column in the {layout.what} (looked "
            f"for {', '.join(TICKER_NAMES)}); columns are {layout.names}"
        )
    if ticker_col is not None and ticker is None:
        _pick_ticker(db, relation, ticker_col, None, source)  # several tickers: say so first
    columns = layout.select_list()
    frame = _select(db, relation, columns, ts, ticker_col, ticker, request)
    if frame.empty and ticker is not None:
        # The tickers present are looked up only now: the message, or the same ticker in
        # another case ("aapl" for "AAPL").
        stored = _pick_ticker(db, relation, ticker_col, ticker, source)
        if stored != ticker:
            frame = _select(db, relation, columns, ts, ticker_col, stored, request)
    return Result(frame, ts, db.filters_time)


@dataclass(frozen=True)
class TickersResult:
    """Every requested ticker's rows of a relation, read in one query."""

    frame: pd.DataFrame  # the timestamp, ticker and bar columns, ordered by ticker, time
    timestamp_col: str
    ticker_col: str
    time_filtered: bool
    present: list[str]  # every ticker in the relation, sorted


def read_database_tickers(
    url: URL, request: Request, source: str, choose: Callable[[list[str]], list[str] | None]
) -> TickersResult:
    """Several tickers' rows in one read-only transaction: the tickers present first
    (``SELECT DISTINCT``), then one query for the rows of ``choose(present)`` (None: every
    ticker), the list and the time range in the WHERE clause as bound parameters."""
    relation = _relation(request)
    db = _Postgres(url, source) if url.get_backend_name() == "postgresql" else _Sqlite(url, source)
    try:
        layout = _layout(db, relation, request, source)
        if layout.ticker_col is None:
            raise DataError(
                f"{source}: --tickers needs a ticker column in the {layout.what} (looked for "
                f"{', '.join(TICKER_NAMES)}); columns are {layout.names}"
            )
        col = _quote(layout.ticker_col)
        present = sorted(
            str(v) for v in db.values(f"SELECT DISTINCT {col} FROM {relation}") if v is not None
        )
        tickers = choose(present)
        where, params = _time_where(db, layout.ts, request, [])
        if tickers is not None:
            if not tickers:
                return TickersResult(pd.DataFrame(), layout.ts, layout.ticker_col, True, present)
            marks = ", ".join(db.marker(len(params) + k) for k in range(len(tickers)))
            where.append(f"{col} IN ({marks})")
            params += list(tickers)
        sql = f"SELECT {layout.select_list(ticker=True)} FROM {relation}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        frame = db.fetch(f"{sql} ORDER BY {col}, {_quote(layout.ts)}", params)
        return TickersResult(frame, layout.ts, layout.ticker_col, db.filters_time, present)
    finally:
        db.close()


def _select(
    db: _Database,
    relation: str,
    columns: str,
    ts: str,
    ticker_col: str | None,
    ticker: str | None,
    request: Request,
) -> pd.DataFrame:
    """The rows, ordered by time; ticker and (PostgreSQL) time range as bound parameters."""
    where, params = [], []
    if ticker is not None:
        where.append(f"{_quote(ticker_col)} = {db.marker(len(params))}")
        params.append(ticker)
    where, params = _time_where(db, ts, request, where, params)
    sql = f"SELECT {columns} FROM {relation}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return db.fetch(f"{sql} ORDER BY {_quote(ts)}", params)


def _time_where(
    db: _Database, ts: str, request: Request, where: list[str], params: list | None = None
) -> tuple[list[str], list]:
    """``where``/``params`` plus the time range (PostgreSQL: SQLite filters once parsed)."""
    params = [] if params is None else params
    if db.filters_time:
        for op, bound in ((">=", request.start), ("<=", request.end)):
            if bound is not None:
                where.append(f"{_quote(ts)} {op} {db.marker(len(params))}")
                params.append(bound.to_pydatetime())
    return where, params


def _pick_ticker(
    db: _Database, relation: str, col: str, ticker: str | None, source: str
) -> str | None:
    """The ticker as stored (a unique case-insensitive match is the same ticker), checked
    against the tickers present before reading any bar."""
    present = db.values(f"SELECT DISTINCT {_quote(col)} FROM {relation} LIMIT 1001")
    present = sorted(str(v) for v in present if v is not None)
    shown = f"{present[:20]}" + (f" and {len(present) - 20:,} more" if len(present) > 20 else "")
    if ticker is None:
        if len(present) > 1:
            raise DataError(
                f"{source}: column {col!r} holds {len(present):,}"
                f"{'+' if len(present) > 1000 else ''} tickers {shown}; pick one with --ticker"
            )
        return None
    if ticker in present or len(present) > 1000:
        return ticker  # present (then with no rows in the time range), or maybe past 1,000
    folded = [t for t in present if t.lower() == ticker.lower()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(ticker, present, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(
        f"{source}: ticker {ticker!r} is not in column {col!r}{hint}; tickers present: {shown}"
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Database:
    """One read-only connection; subclasses speak PostgreSQL or SQLite."""

    filters_time = True

    def marker(self, i: int) -> str:
        raise NotImplementedError

    def probe(self, sql: str) -> tuple[list[str], set[str]]:
        """Column names of ``sql``'s result and those the server should cast to float."""
        raise NotImplementedError

    def values(self, sql: str) -> list:
        raise NotImplementedError

    def fetch(self, sql: str, params: list) -> pd.DataFrame:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Postgres(_Database):
    def __init__(self, url: URL, source: str) -> None:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc

        self.source = source
        self._errors = (adbc_driver_manager.Error,)
        try:
            self.conn = adbc.connect(_conninfo(url))
        except self._errors as err:
            message = _pg_message(err)
            if url.password is None and "password" in message:
                message += (
                    " (the URL has no password: libpq looked in PGPASSWORD and ~/.pgpass; or "
                    "give the whole URL through --data-env)"
                )
            raise DataError(f"{source}: cannot connect: {message}") from None
        self.cur = self.conn.cursor()
        # autocommit is off: everything below is one transaction, rolled back by close().
        self._run("SET TRANSACTION READ ONLY")
        self._run(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
        self._run("SET LOCAL TimeZone = 'UTC'")  # --start/--end without an offset mean UTC

    def marker(self, i: int) -> str:
        return f"${i + 1}"

    def probe(self, sql: str) -> tuple[list[str], set[str]]:
        with self._failures(), _waiting_notice(self.source):
            schema = self._run(sql).fetch_arrow_table().schema
        numeric = {
            f.name
            for f in schema
            if (f.metadata or {}).get(b"ADBC:postgresql:typname") == b"numeric"
            or str(f.type).startswith("decimal")
        }
        return list(schema.names), numeric

    def values(self, sql: str) -> list:
        with self._failures(), _waiting_notice(self.source):
            return [row[0] for row in self._run(sql).fetchall()]

    def fetch(self, sql: str, params: list) -> pd.DataFrame:
        # The server may fail while rows stream, not only at the start.
        with self._failures(), _waiting_notice(self.source):
            table = self._run(sql, params).fetch_arrow_table()
        return table.to_pandas()

    def _run(self, sql: str, params: list | None = None):
        with self._failures():
            self.cur.execute(sql, params or None)
        return self.cur

    @contextlib.contextmanager
    def _failures(self):
        try:
            yield
        except self._errors as err:
            raise DataError(f"{self.source}: {_pg_failure(err)}") from None

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self.conn.rollback()
        with contextlib.suppress(*self._errors):
            self.cur.close()
            self.conn.close()


@contextlib.contextmanager
def _waiting_notice(source: str):
    """A query that runs long says so on stderr, with how long it may still run: without
    it a slow view or --query prints nothing for minutes."""
    start, done = time.monotonic(), threading.Event()

    def notice() -> None:
        wait = WAIT_NOTICE_S
        while not done.wait(wait):
            ran = time.monotonic() - start
            print(
                f"{source}: waiting for the database: the query has run {ran:.0f} s; the "
                f"server stops it at the {STATEMENT_TIMEOUT_S} s statement timeout",
                file=sys.stderr,
                flush=True,
            )
            wait = 30

    thread = threading.Thread(target=notice, name="query-notice", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _conninfo(url: URL) -> str:
    """libpq key=value conninfo (no URL-escaping pitfalls), with a connect timeout."""
    settings = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        **{k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()},
    }
    settings.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    return " ".join(
        f"{k}='{str(v).replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
        for k, v in settings.items()
        if v is not None
    )


def _pg_message(err: Exception) -> str:
    """The server's or libpq's own words, one line, without the driver's wrapping."""
    details = dict(getattr(err, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    if primary:
        return " ".join(primary.decode(errors="replace").split())
    text = str(err)
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text.strip())
    text = re.sub(r"^Failed to connect: ", "", text)
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _pg_failure(err: Exception) -> str:
    state = getattr(err, "sqlstate", None)
    message = _pg_message(err)
    if state == "42P01":
        return f"no such table or view: {message}"
    if state == "25006":
        return f"refused: the query writes ({message}); --query must only read"
    if state == "57014":
        return f"the query ran longer than the {STATEMENT_TIMEOUT_S} s statement timeout"
    if state in ("42601", "0A000"):
        return (
            f"the query failed: {message} (--query must be one SELECT; it runs as a subquery "
            f"in a read-only transaction)"
        )
    return f"the query failed: {message}"


class _Sqlite(_Database):
    filters_time = False  # timestamps are text or numbers in any format: filter once parsed

    def __init__(self, url: URL, source: str) -> None:
        self.source = source
        if not url.database or url.database == ":memory:":
            raise ConfigError(f"{source}: give the database file, e.g. sqlite:///bars.db")
        path = Path(url.database).expanduser()
        if not path.is_file():
            raise DataError(f"{source}: no such file {str(path)!r}")
        try:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise DataError(f"{source}: cannot open: {err}") from None
        self.conn.set_authorizer(_read_only)

    def marker(self, i: int) -> str:
        return "?"

    def probe(self, sql: str) -> tuple[list[str], set[str]]:
        cur = self._run(sql)
        return [d[0] for d in cur.description], set()

    def values(self, sql: str) -> list:
        return [row[0] for row in self._run(sql).fetchall()]

    def fetch(self, sql: str, params: list) -> pd.DataFrame:
        cur = self._run(sql, params)
        rows = cur.fetchall()  # C-level fetch; see benchmarks/db_read.py for the rate
        return pd.DataFrame.from_records(rows, columns=[d[0] for d in cur.description])

    def _run(self, sql: str, params: list | None = None) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params or ())
        except sqlite3.DatabaseError as err:
            message = str(err)
            if "not authorized" in message:
                raise DataError(
                    f"{self.source}: refused: the query does more than read ({message}); "
                    f"--query must only read"
                ) from None
            if message.startswith("no such table"):
                raise DataError(f"{self.source}: no such table or view: {message}") from None
            raise DataError(f"{self.source}: the query failed: {message}") from None

    def close(self) -> None:
        self.conn.close()


# Reading a table or view, calling a function, a recursive CTE: nothing else is allowed.
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_ALLOWED.add(getattr(sqlite3, "SQLITE_RECURSIVE", 33))


def _read_only(action: int, *_args) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY
