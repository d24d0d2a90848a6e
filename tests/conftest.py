"""Shared fixtures: a small synthetic bar table and a writer for bar files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from trainables.synthetic import make_bars


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
