"""Reading bars from a database vs from Parquet: rows/s of the same rows, in the same run.

    python benchmarks/db_read.py                 # 1,000,000 bars of one ticker
    python benchmarks/db_read.py --rows 200000 --repeats 5
    LSTM_TEST_PG_URL=postgresql://... python benchmarks/db_read.py   # an existing server

The table is the users' kind (tests/bars_db.py): one row per ticker and bar, NUMERIC(14,4)
prices, bigint volume, a second ticker with a quarter as many rows, read through the view
``vw_ticker_timeseries``. Timed, each ``--repeats`` times, interleaved, median shown:

* ``read_bars(BarSource(url, table=view, ticker=...))``: connect, find the columns, check the
  ticker, read (PostgreSQL: ADBC, Arrow, NUMERIC cast by the server; SQLite: stdlib,
  text timestamps parsed), and every check of a file (``validate_bars``);
* the baseline, ``pd.read_parquet`` of the same rows (a file written from what was read),
  and ``load_bars`` of that file (the same checks as the database read);
* where psycopg is installed, ``pd.read_sql`` through SQLAlchemy + psycopg (rows as Python
  tuples), the common way, for comparison with ADBC.

PostgreSQL is ``$LSTM_TEST_PG_URL``, else a throwaway server (tests/pgserver.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import pgserver  # noqa: E402
from tests.bars_db import VIEW, PgSchema, sqlite_view  # noqa: E402
from trainables.bars.files import bars_fingerprint, load_bars  # noqa: E402
from trainables.bars.sources import BarSource, read_bars  # noqa: E402
from trainables.bars.synthetic import make_bars  # noqa: E402


def users_rows(n: int, ticker: str, seed: int) -> pd.DataFrame:
    """Long-format rows like tests/bars_db.users_bars, minute bars (1M hourly bars would
    run past the year 2130)."""
    bars = make_bars(n, seed=seed, freq="1min")
    bars[["open", "high", "low", "close"]] = bars[["open", "high", "low", "close"]].round(4)
    bars["volume"] = bars["volume"].round()
    bars["sma_value"] = bars["close"].rolling(10, min_periods=1).mean().round(4)
    bars["vwap"] = ((bars["high"] + bars["low"] + bars["close"]) / 3).round(4)
    bars.index = bars.index.tz_localize("UTC")
    return bars.reset_index().assign(ticker=ticker)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def psycopg_reader(url: str) -> Callable[[], pd.DataFrame] | None:
    try:
        import psycopg  # noqa: F401
        import sqlalchemy as sa
    except ImportError:
        return None
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    sql = sa.text(
        'SELECT "timestamp", open::float8 AS open, high::float8 AS high, low::float8 AS low, '
        "close::float8 AS close, volume FROM vw_ticker_timeseries WHERE ticker = :t "
        'ORDER BY "timestamp"'
    )

    def read() -> pd.DataFrame:
        with engine.connect() as con:
            return pd.read_sql(sql, con, params={"t": "AAA"})

    return read


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="bars of the ticker read")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    n = args.rows
    rows = pd.concat([users_rows(n, "AAA", 0), users_rows(n // 4, "BBB", 1)], ignore_index=True)

    server = None
    url = os.environ.get("LSTM_TEST_PG_URL")
    if not url:
        server = pgserver.start()
        url = server.url
    pg = PgSchema(url)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            t0 = time.perf_counter()
            pg.users_view(rows)
            pg.execute("ANALYZE ticker_bars")
            lite = sqlite_view(Path(tmp) / "bars.db", rows)
            print(
                f"setup: {len(rows):,} rows in PostgreSQL and SQLite ({time.perf_counter() - t0:.1f}s)"
            )
            sources = {
                "PostgreSQL (ADBC)": BarSource(data=pg.url, table=VIEW, ticker="AAA", columns=()),
                "SQLite (stdlib)": BarSource(data=lite, table=VIEW, ticker="AAA", columns=()),
            }
            bars = read_bars(sources["PostgreSQL (ADBC)"])
            parquet = Path(tmp) / "aaa.parquet"
            bars.to_parquet(parquet)
            assert bars_fingerprint(load_bars(parquet)) == bars_fingerprint(bars)
            readers: dict[str, Callable[[], object]] = {
                "pd.read_parquet (baseline)": lambda: pd.read_parquet(parquet),
                "load_bars(parquet)": lambda: load_bars(parquet),
                **{name: (lambda s=s: read_bars(s)) for name, s in sources.items()},
            }
            alt = psycopg_reader(pg.url)
            if alt is not None:
                readers["SQLAlchemy+psycopg read_sql"] = alt
            times: dict[str, list[float]] = {k: [] for k in readers}
            for _ in range(args.repeats):
                for name, fn in readers.items():
                    seconds, out = timed(fn)
                    assert len(out) == n, (name, len(out))
                    times[name].append(seconds)
        finally:
            pg.close()
            if server is not None:
                pgserver.stop(server.dir)

    base = statistics.median(times["pd.read_parquet (baseline)"])
    print(f"\n{n:,} bars of one ticker, median of {args.repeats} (every run in s)")
    print(f"{'reader':32s} {'seconds':>8s} {'rows/s':>12s} {'x parquet time':>15s}  runs")
    for name, ts in times.items():
        med = statistics.median(ts)
        runs = " ".join(f"{t:.2f}" for t in ts)
        print(f"{name:32s} {med:8.3f} {n / med:12,.0f} {med / base:15.1f}  {runs}")
    if alt is None:
        print("(SQLAlchemy+psycopg skipped: pip install 'psycopg[binary]' to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
