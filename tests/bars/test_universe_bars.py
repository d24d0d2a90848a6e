"""Many tickers read once (#22): the same bars and messages as one read per ticker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.bars_db import sqlite_view, users_bars
from trainables.bars.files import bars_fingerprint, load_bars
from trainables.bars.sources import BarSource, read_bars
from trainables.bars.universe import read_universe
from trainables.errors import DataError

TICKERS = {"AAA": 0, "BRK.B": 1, "CCC": 2}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return users_bars(TICKERS, 400)


def test_a_file_read_once_gives_each_ticker_the_bars_of_its_own_read(tmp_path, frame):
    path = tmp_path / "u.parquet"
    frame.to_parquet(path, index=False)
    got = read_universe(BarSource(data=str(path)), None)
    assert list(got.bars) == sorted(TICKERS) and got.refused == {}
    for ticker, bars in got.bars.items():
        single = load_bars(path, ticker=ticker)
        assert bars_fingerprint(bars) == bars_fingerprint(single)
        pd.testing.assert_frame_equal(bars, single)


def test_a_bad_row_refuses_its_ticker_only_with_the_single_read_message(tmp_path, frame):
    # One ticker's bad close: that ticker is refused with the line its own read prints
    # (the file's row number included); the others are read.
    broken = frame.copy()
    row = int(broken.index[(broken.ticker == "CCC")][50])
    broken.loc[row, "close"] = -1.0
    path = tmp_path / "u.csv"
    broken.to_csv(path, index=False)
    got = read_universe(BarSource(data=str(path)), ["CCC", "AAA", "ZZZ", "brk.b"])
    assert list(got.bars) == ["AAA", "BRK.B"]  # as stored ("brk.b" is BRK.B)
    with pytest.raises(DataError) as single:
        load_bars(path, ticker="CCC")
    assert got.refused["CCC"] == str(single.value)
    assert f"row {row}" in got.refused["CCC"]
    assert "ticker 'ZZZ' is not in column 'ticker'" in got.refused["ZZZ"]


def test_a_database_view_is_read_in_one_query_with_the_same_bars(tmp_path, frame):
    url = sqlite_view(tmp_path / "b.db", frame)
    source = BarSource(data=url, table="vw_ticker_timeseries", columns=("sma_value",))
    got = read_universe(source, None)
    assert list(got.bars) == sorted(TICKERS)
    for ticker, bars in got.bars.items():
        single = read_bars(
            BarSource(data=url, table="vw_ticker_timeseries", ticker=ticker, columns=("sma_value",))
        )
        assert bars_fingerprint(bars) == bars_fingerprint(single)
    cut = read_universe(
        BarSource(data=url, table="vw_ticker_timeseries", end="2020-01-05"), ["AAA", "NOPE"]
    )
    # SQLite keeps the times as text without a zone: they read back naive
    assert list(cut.bars) == ["AAA"] and cut.bars["AAA"].index[-1] <= pd.Timestamp("2020-01-05")
    assert "NOPE" in cut.refused


def test_a_synthetic_universe_has_random_walks_beside_the_learnable_tickers(tmp_path):
    # make_universe(random_walks=k): learnable SYN<k> and RW<k> whose returns nothing in
    # their past predicts; the long frame reads back as a universe, every ticker valid.
    from trainables.bars.synthetic import make_universe

    frame = make_universe(2, 3000, seed=3, random_walks=2)
    path = tmp_path / "s.parquet"
    frame.to_parquet(path, index=False)
    got = read_universe(BarSource(data=str(path)), None)
    assert list(got.bars) == ["RW0", "RW1", "SYN0", "SYN1"] and got.refused == {}
    for ticker, bars in got.bars.items():
        r = np.diff(np.log(bars.close.to_numpy()))
        rho = np.corrcoef(r[1:], r[:-1])[0, 1]
        if ticker.startswith("RW"):
            assert abs(rho) < 3 / np.sqrt(len(r))  # no serial dependence to learn
        else:
            assert rho > 0.2  # the built-in signal (docs/data.md: about 0.32)
    again = make_universe(2, 3000, seed=3, random_walks=2)
    pd.testing.assert_frame_equal(frame, again)  # seeded
