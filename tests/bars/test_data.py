"""load_bars / validate_bars / check_enough_rows: formats, and one clear line per bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainables.bars.files import check_enough_rows, load_bars, validate_bars
from trainables.errors import ConfigError, DataError


def _raw(bars: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """The first n bars as a plain frame with a 'timestamp' column, as a file would hold."""
    return bars.iloc[:n].reset_index()


# --- formats -------------------------------------------------------------------------------


def test_csv_round_trip(bars, write_bars):
    # A CSV written from bars loads back to the identical frame.
    loaded = load_bars(write_bars(bars, "bars.csv"))
    pd.testing.assert_frame_equal(loaded, bars)


def test_parquet_round_trip_with_timestamp_index(bars, write_bars):
    # A Parquet file whose index holds the timestamps loads back to the identical frame.
    loaded = load_bars(write_bars(bars, "bars.parquet"))
    pd.testing.assert_frame_equal(loaded, bars)


def test_parquet_round_trip_with_timestamp_column(bars, write_bars):
    # A Parquet file with a timestamp column (and a plain index) loads the same.
    loaded = load_bars(write_bars(bars.reset_index(), "bars.pq", index=False))
    pd.testing.assert_frame_equal(loaded, bars)


def test_columns_match_case_insensitively(bars, write_bars):
    # Open/HIGH/Date are read as open/high/timestamp.
    raw = _raw(bars).rename(
        columns={"timestamp": "Date", "open": "Open", "high": "HIGH", "close": "Close"}
    )
    loaded = load_bars(write_bars(raw, index=False))
    assert list(loaded.columns) == ["open", "high", "low", "close", "volume"]
    assert loaded.index.name == "timestamp"
    np.testing.assert_array_equal(loaded["high"], bars["high"].iloc[:12])


def test_named_timestamp_column(bars, write_bars):
    # timestamp_col picks a column with any name, case-insensitively.
    raw = _raw(bars).rename(columns={"timestamp": "Bar_Time"})
    loaded = load_bars(write_bars(raw, index=False), timestamp_col="bar_time")
    pd.testing.assert_index_equal(loaded.index, bars.index[:12])


def test_unix_epoch_seconds_are_timestamps(bars, write_bars):
    # Integer epoch seconds are read as seconds, not nanoseconds.
    raw = _raw(bars)
    raw["timestamp"] = raw["timestamp"].astype("int64") // 10**6  # us -> s
    loaded = load_bars(write_bars(raw, index=False))
    assert loaded.index[0] == pd.Timestamp("2020-01-01 00:00:00")


def test_multi_ticker_file_picks_one_ticker(bars, write_bars):
    # ticker= selects that ticker's rows from a file holding several, and drops the column.
    a, b = _raw(bars, 10), _raw(bars, 10)
    b[["open", "high", "low", "close"]] *= 2
    raw = pd.concat([a.assign(Symbol="AAA"), b.assign(Symbol="BBB")], ignore_index=True)
    loaded = load_bars(write_bars(raw, index=False), ticker="BBB")
    assert len(loaded) == 10 and "symbol" not in loaded.columns
    np.testing.assert_allclose(loaded["close"], 2 * bars["close"].iloc[:10])


def test_multi_ticker_parquet_with_timestamp_index(bars, write_bars):
    # Picking a ticker keeps the timestamps when they live in the Parquet index.
    both = pd.concat([bars.iloc[:10].assign(ticker="AAA"), bars.iloc[:10].assign(ticker="BBB")])
    loaded = load_bars(write_bars(both, "bars.parquet"), ticker="AAA")
    pd.testing.assert_frame_equal(loaded, bars.iloc[:10])


def test_extra_numeric_columns_kept_and_text_dropped(bars, write_bars):
    # Other numeric columns travel along as float64; text columns are dropped.
    raw = _raw(bars).assign(spread=np.arange(12), venue="XNAS")
    loaded = load_bars(write_bars(raw, index=False))
    assert list(loaded.columns) == ["open", "high", "low", "close", "volume", "spread"]
    assert loaded["spread"].dtype == np.float64


def test_validate_bars_accepts_synthetic_bars(bars):
    # make_bars output is already in the bar format.
    pd.testing.assert_frame_equal(validate_bars(bars, "synthetic"), bars)


# --- bad input -----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    # A missing file is named.
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_bars(path)


def test_unsupported_format(tmp_path):
    # An unknown suffix says which formats work.
    path = tmp_path / "bars.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"bars\.xlsx: unsupported format \(\.xlsx\).*\.parquet"):
        load_bars(path)


def test_unreadable_parquet(tmp_path):
    # A file that is not Parquet is reported as unreadable, in one line.
    path = tmp_path / "bars.parquet"
    path.write_text("this is not parquet")
    with pytest.raises(DataError, match=r"bars\.parquet: cannot read as Parquet") as info:
        load_bars(path)
    assert "\n" not in str(info.value)


def test_misspelled_column_suggests_the_close_match(bars, write_bars):
    # A missing column is named with the nearest existing column and the full list.
    raw = _raw(bars).rename(columns={"close": "clsoe"})
    with pytest.raises(DataError) as info:
        load_bars(write_bars(raw, index=False))
    assert "bars.csv: no column 'close' (did you mean 'clsoe'?); columns are [" in str(info.value)


def test_non_numeric_value(bars, write_bars):
    # A non-numeric value is reported with its column, row and the value itself.
    raw = _raw(bars).astype({"close": object})
    raw.loc[7, "close"] = "12,5"
    with pytest.raises(
        DataError,
        match=r"column 'close' has 1 non-numeric value\(s\), first at row 7 \(2020-01-01 07:00:00\): '12,5'",
    ):
        load_bars(write_bars(raw, index=False))


def test_nan_value(bars, write_bars):
    # NaN is reported with its column, first row and count.
    raw = _raw(bars)
    raw.loc[[5, 9], "high"] = np.nan
    with pytest.raises(DataError, match=r"column 'high' has 2 NaN/inf value\(s\), first at row 5"):
        load_bars(write_bars(raw, index=False))


def test_inf_value(bars, write_bars):
    # inf is caught like NaN.
    raw = _raw(bars)
    raw.loc[3, "volume"] = np.inf
    with pytest.raises(
        DataError, match=r"column 'volume' has 1 NaN/inf value\(s\), first at row 3"
    ):
        load_bars(write_bars(raw, "bars.parquet", index=False))


def test_non_positive_price(bars, write_bars):
    # A zero or negative price is reported (log returns need positive prices).
    raw = _raw(bars)
    raw.loc[4, "low"] = -1.0
    with pytest.raises(
        DataError, match=r"column 'low' has 1 zero or negative value\(s\), first at row 4.*-1\.0"
    ):
        load_bars(write_bars(raw, index=False))


def test_unsorted_timestamps(bars, write_bars):
    # Out-of-order rows are named with their timestamps.
    raw = _raw(bars)
    raw.iloc[[3, 4]] = raw.iloc[[4, 3]].to_numpy()
    with pytest.raises(
        DataError,
        match=r"not sorted: row 4 \(2020-01-01 03:00:00\) comes after row 3 \(2020-01-01 04:00:00\)",
    ):
        load_bars(write_bars(raw, index=False))


def test_duplicate_timestamps(bars, write_bars):
    # A repeated timestamp is named with both rows.
    raw = _raw(bars)
    raw.loc[6, "timestamp"] = raw.loc[5, "timestamp"]
    with pytest.raises(DataError, match=r"duplicate timestamp 2020-01-01 05:00:00 at rows 5 and 6"):
        load_bars(write_bars(raw, index=False))


def test_unparseable_timestamp(bars, write_bars):
    # A timestamp that is not a date is named with its row and value.
    raw = _raw(bars).astype({"timestamp": str})
    raw.loc[2, "timestamp"] = "yesterday"
    with pytest.raises(
        DataError,
        match=r"column 'timestamp' has 1 missing or unparseable timestamp\(s\), first at row 2 \(value 'yesterday'\)",
    ):
        load_bars(write_bars(raw, index=False))


def test_no_timestamp_column(bars, write_bars):
    # Without a timestamp column the message lists what was looked for.
    raw = _raw(bars).rename(columns={"timestamp": "when"})
    with pytest.raises(
        DataError, match=r"no timestamp column \(looked for timestamp, datetime, date, time"
    ):
        load_bars(write_bars(raw, index=False))


def test_ticker_not_in_file(bars, write_bars):
    # An unknown ticker lists the tickers present.
    raw = pd.concat([_raw(bars).assign(ticker="AAPL"), _raw(bars).assign(ticker="MSFT")])
    with pytest.raises(
        DataError,
        match=r"ticker 'TSLA' is not in column 'ticker'; tickers present: \['AAPL', 'MSFT'\]",
    ):
        load_bars(write_bars(raw, index=False), ticker="TSLA")


def test_several_tickers_without_choice(bars, write_bars):
    # A multi-ticker file without ticker= asks for one and lists them.
    raw = pd.concat([_raw(bars).assign(ticker="AAPL"), _raw(bars).assign(ticker="MSFT")])
    with pytest.raises(
        DataError, match=r"holds 2 tickers \[.AAPL., .MSFT.\]; pick one with --ticker$"
    ):
        load_bars(write_bars(raw, index=False))


def test_too_few_rows():
    # The message carries the row count, the settings and the minimum.
    message = r"bars\.csv: 150 rows are too few for sequence_length=60 \+ horizon=20 \+ 5 folds \(need at least 559\)"
    with pytest.raises(DataError, match=message):
        check_enough_rows(150, sequence_length=60, horizon=20, n_splits=5, source="bars.csv")
    check_enough_rows(559, sequence_length=60, horizon=20, n_splits=5, source="bars.csv")


def test_too_few_rows_rejects_bad_settings():
    # A non-positive setting is a ConfigError naming it.
    with pytest.raises(ConfigError, match=r"n_splits must be an integer >= 1, but got n_splits=0"):
        check_enough_rows(1000, sequence_length=60, horizon=20, n_splits=0, source="bars.csv")


def test_fingerprint_is_the_same_for_the_same_rows_and_changes_with_any_value(write_bars, bars):
    # CSV and Parquet of the same bars read to one fingerprint; one changed price changes it.
    from trainables.bars.files import bars_fingerprint

    a = load_bars(write_bars(bars, "a.csv"))
    b = load_bars(write_bars(bars, "b.parquet"))
    assert bars_fingerprint(a) == bars_fingerprint(b)
    changed = bars.copy()
    changed.iloc[100, changed.columns.get_loc("close")] *= 1.0001
    assert bars_fingerprint(load_bars(write_bars(changed, "c.csv"))) != bars_fingerprint(a)
    assert bars_fingerprint(a.iloc[:-1]) != bars_fingerprint(a)


def test_the_fingerprint_hashes_every_row_whatever_the_block_size(monkeypatch):
    # Hashed a block of rows at a time (#23: no copies of all rows), the digest is the
    # sha256 of the timestamps, column names and the whole [n, C] float64 array's bytes.
    import hashlib

    import numpy as np

    from trainables.bars import files as data_module
    from trainables.bars.files import bars_fingerprint
    from trainables.bars.synthetic import make_bars

    bars = make_bars(1000)
    h = hashlib.sha256()
    h.update(bars.index.as_unit("ns").asi8.tobytes())
    h.update("\x1f".join(map(str, bars.columns)).encode())
    h.update(np.ascontiguousarray(bars.to_numpy(dtype=np.float64)).tobytes())
    for rows in (7, 1000, 65_536):
        monkeypatch.setattr(data_module, "_HASH_ROWS", rows)
        assert bars_fingerprint(bars) == f"sha256:{h.hexdigest()}"
