"""Shared fixtures: a small synthetic bar table, a writer for bar files, a PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests import pgserver
from tests.bars_db import PgSchema
from trainables.bars.synthetic import make_bars


@pytest.fixture(scope="session")
def _bars_1500() -> pd.DataFrame:
    return make_bars(n_bars=1500, seed=0)


@pytest.fixture
def bars(_bars_1500: pd.DataFrame) -> pd.DataFrame:
    """1,500 synthetic hourly bars (a fresh copy, so a test may change it)."""
    return _bars_1500.copy()


@pytest.fixture
def write_bars(tmp_path: Path) -> Callable[..., Path]:
    """``write_bars(df, "bars.csv", index=True)``: write a frame to tmp_path as CSV or Parquet.

    ``index=True`` writes the timestamp index (a column in CSV, the index in Parquet);
    ``index=False`` writes the frame as it is, without its index.
    """

    def write(df: pd.DataFrame, name: str = "bars.csv", *, index: bool = True) -> Path:
        path = tmp_path / name
        if name.endswith((".parquet", ".pq")):
            df.to_parquet(path, index=index, engine="pyarrow")
        else:
            df.to_csv(path, index=index)
        return path

    return write


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A real PostgreSQL server: ``$LSTM_TEST_PG_URL`` (.ci/run starts one), else a throwaway
    one started here from the ``postgresql`` package's binaries; skips only if neither."""
    url = os.environ.get("LSTM_TEST_PG_URL")
    if url:
        yield url
        return
    try:
        server = pgserver.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"no PostgreSQL: LSTM_TEST_PG_URL is unset and none could be started: {err}")
    try:
        yield server.url
    finally:
        pgserver.stop(server.dir)


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgSchema]:
    """A fresh schema on the server (``pg.url`` reads it), dropped afterwards."""
    schema = PgSchema(pg_url)
    try:
        yield schema
    finally:
        schema.close()


def pytest_terminal_summary(terminalreporter) -> None:
    """One line saying whether the PostgreSQL tests ran (CI's output shows it)."""
    outcomes: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "test_postgres.py" in getattr(report, "nodeid", ""):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        counts = ", ".join(f"{n} {k}" for k, n in outcomes.items())
        terminalreporter.write_line(f"PostgreSQL tests against a real server: {counts}")
