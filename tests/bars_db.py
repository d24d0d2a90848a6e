"""Databases holding bars the way the users keep them, for the database tests.

The users' trainer reads ``vw_ticker_timeseries`` (docs/parameters.md): a view with
one row per ticker and bar. Here it is a view over a table with other column names
(``symbol``, ``bar_time``), NUMERIC prices and a bigint volume, as a vendor table would be.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa

from trainables.bars.synthetic import make_bars

VIEW = "vw_ticker_timeseries"
PRICES = ("open", "high", "low", "close")


def users_bars(tickers: dict[str, int], n_bars: int) -> pd.DataFrame:
    """Long format: ticker, timestamp (UTC), OHLC rounded to 4 decimals, integer volume,
    sma_value and vwap; one synthetic series per ticker (its seed)."""
    frames = []
    for ticker, seed in tickers.items():
        bars = make_bars(n_bars, seed=seed)
        bars[list(PRICES)] = bars[list(PRICES)].round(4)
        bars["volume"] = bars["volume"].round()
        bars["sma_value"] = bars["close"].rolling(10, min_periods=1).mean().round(4)
        bars["vwap"] = ((bars["high"] + bars["low"] + bars["close"]) / 3).round(4)
        bars.index = bars.index.tz_localize("UTC")
        frames.append(bars.reset_index().assign(ticker=ticker))
    return pd.concat(frames, ignore_index=True)


def one_ticker(frame: pd.DataFrame, ticker: str, columns=()) -> pd.DataFrame:
    """The bars of ``ticker`` in the bar format (what a file of them reads as)."""
    rows = frame[frame.ticker == ticker].set_index("timestamp")
    out = rows[["open", "high", "low", "close", "volume", *columns]].astype(np.float64)
    out.index.name = "timestamp"
    return out


# --- SQLite --------------------------------------------------------------------------------


def sqlite_view(path: Path, frame: pd.DataFrame) -> str:
    """A SQLite file with the table and the users' view; timestamps stored as text."""
    stored = frame.rename(columns={"ticker": "symbol", "timestamp": "bar_time"})
    stored["bar_time"] = stored["bar_time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(path) as con:
        stored.to_sql("ticker_bars", con, index=False)
        con.execute(
            f'CREATE VIEW {VIEW} AS SELECT symbol AS ticker, bar_time AS "timestamp", open, '
            "high, low, close, volume, sma_value, vwap FROM ticker_bars"
        )
    con.close()
    return f"sqlite:///{path}"


# --- PostgreSQL ----------------------------------------------------------------------------


class PgSchema:
    """A fresh schema on the test server; ``url`` sets it as the search_path (libpq options)."""

    def __init__(self, server_url: str) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self.name = f"t_{uuid.uuid4().hex[:10]}"
        self.server_url = server_url
        self.conn = adbc.connect(server_url, autocommit=True)
        self.execute(f"CREATE SCHEMA {self.name}", "SET TimeZone = 'UTC'")
        self.execute(f"SET search_path = {self.name}")
        glue = "&" if "?" in server_url else "?"
        self.url = f"{server_url}{glue}options={quote(f'-csearch_path={self.name}')}"

    def execute(self, *statements: str) -> None:
        with self.conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)

    def rows(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def users_view(self, frame: pd.DataFrame) -> None:
        self.execute(
            "CREATE TABLE ticker_bars (symbol text NOT NULL, bar_time timestamptz NOT NULL, "
            "open numeric(14,4), high numeric(14,4), low numeric(14,4), close numeric(14,4), "
            "volume bigint, sma_value numeric(14,4), vwap numeric(14,4), "
            "PRIMARY KEY (symbol, bar_time))",
            f'CREATE VIEW {VIEW} AS SELECT symbol AS ticker, bar_time AS "timestamp", open, '
            "high, low, close, volume, sma_value, vwap FROM ticker_bars",
        )
        self.append(frame)

    def append(self, frame: pd.DataFrame) -> None:
        """Insert rows (long format) into the view's table through a float staging table."""
        with self.conn.cursor() as cur:
            # Naive UTC (the session's time zone): pyarrow reads tz-aware pandas columns
            # through a deprecated pandas path.
            naive = frame.assign(timestamp=frame["timestamp"].dt.tz_convert(None))
            table = pa.Table.from_pandas(naive, preserve_index=False)
            cur.adbc_ingest("staging", table, mode="replace", db_schema_name=self.name)
        self.execute(
            'INSERT INTO ticker_bars SELECT ticker, "timestamp", open, high, low, close, '
            "volume::bigint, sma_value, vwap FROM staging",
            "DROP TABLE staging",
        )

    def table_digest(self, table: str = "ticker_bars") -> tuple:
        """(rows, md5 of every row in order): any change to the table changes it."""
        return self.rows(
            f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
        )[0]

    def close(self) -> None:
        self.execute(f"DROP SCHEMA {self.name} CASCADE")
        self.conn.close()
