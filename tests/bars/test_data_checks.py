"""Data that load but would break later: caught when the bars are checked, at the file's row.

Each rule here got through before (issue #13): a finite but absurd value, a jump, a column
of the wrong dtype, a constant close, a long gap, and rows named after the warm-up or after
picking a ticker instead of the file's own rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from trainables.bars.files import load_bars, validate_bars
from trainables.bars.synthetic import make_bars
from trainables.errors import ConfigError, DataError, DataWarning
from trainables.prep.features import build_features


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars(1000, seed=0)


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# --- absurd values ------------------------------------------------------------------------


def test_close_of_1e300_names_the_file_and_its_row(bars, write_bars):
    # A finite but absurd close stops the load at its file row, with the neighbouring value.
    bars.iloc[600, bars.columns.get_loc("close")] = 1e300
    path = write_bars(bars, "huge.csv")
    with pytest.raises(DataError) as err:
        load_bars(path)
    text = _one_line(err)
    assert text.startswith(f"{path}: column 'close' jumps from ")
    assert "to 1e+300 at row 600 (2020-01-26 00:00:00), a log return of 686" in text
    assert "--max-jump" in text


def test_without_the_jump_limit_the_size_limit_still_catches_1e300(bars, write_bars):
    # --max-jump inf turns the jump check off; a value beyond 1e18 is refused all the same.
    bars.iloc[600, bars.columns.get_loc("close")] = 1e300
    with pytest.raises(DataError, match=r"huge\.csv: column 'close' has 1 value\(s\) beyond"):
        load_bars(write_bars(bars, "huge.csv"), max_jump=float("inf"))


def test_a_close_of_1e30_is_a_jump(bars, write_bars):
    # A value that stays finite but would wreck min-max scaling is refused by the jump limit.
    bars.iloc[300, bars.columns.get_loc("close")] = 1e30
    with pytest.raises(DataError, match=r"to 1e\+30 at row 300 .*a log return of 64\.\d"):
        load_bars(write_bars(bars, "big.csv"))


def test_jump_limit_is_overridable_and_a_decimal_shift_is_caught_by_default(bars, write_bars):
    # A close ten times its neighbours (a misplaced decimal point) fails; --max-jump 3 lets it in.
    bars.iloc[500, bars.columns.get_loc("close")] *= 10
    path = write_bars(bars, "shift.csv")
    with pytest.raises(DataError, match=r"column 'close' jumps .* at row 500 "):
        load_bars(path)
    assert load_bars(path, max_jump=3.0)["close"].iloc[500] == pytest.approx(
        bars["close"].iloc[500]
    )


def test_max_jump_must_be_positive(bars):
    # A non-positive limit is a setting error, not a data error.
    with pytest.raises(ConfigError, match=r"--max-jump must be a \|log return\| > 0"):
        validate_bars(bars, "bars", max_jump=0)


def test_absurd_volume_is_refused_with_its_row(bars, write_bars):
    # Volume has no jump limit (it may go from 0 to millions), but 1e25 is beyond any market.
    bars.iloc[42, bars.columns.get_loc("volume")] = 1e25
    with pytest.raises(
        DataError, match=r"column 'volume' has 1 value\(s\) beyond 1e\+18 in size, first at row 42"
    ):
        load_bars(write_bars(bars, "vol.csv"))


def test_values_print_as_python_numbers(bars, write_bars):
    # -1.0, not np.float64(-1.0).
    bars.iloc[4, bars.columns.get_loc("low")] = -1.0
    with pytest.raises(DataError) as err:
        load_bars(write_bars(bars, "neg.csv"))
    assert _one_line(err).endswith("(2020-01-01 04:00:00): -1.0")


# --- dtypes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda c: c > c.median(), "bool"),
        (lambda c: c.round(0).astype(str).astype("category"), "category"),
        (lambda c: pd.to_datetime(c.round(0), unit="s"), "datetime64"),
    ],
)
def test_parquet_column_of_the_wrong_dtype_names_the_dtype(bars, write_bars, make, dtype):
    # A bool / category / datetime close is named by its dtype, not as "zero or negative".
    bars["close"] = make(bars["close"])
    with pytest.raises(DataError) as err:
        load_bars(write_bars(bars, "bars.parquet"))
    text = _one_line(err)
    assert f"column 'close' has dtype {dtype}" in text and "not numbers" in text
    assert "zero or negative" not in text


def test_parquet_text_column_names_value_and_dtype(bars, write_bars):
    # A Parquet string column with a non-number names the value, its row and the dtype.
    bars["close"] = bars["close"].astype(str)
    bars.iloc[7, bars.columns.get_loc("close")] = "12,5"
    with pytest.raises(DataError) as err:
        load_bars(write_bars(bars, "bars.parquet"))
    assert "non-numeric value(s), first at row 7 (2020-01-01 07:00:00): '12,5'" in _one_line(err)
    assert "dtype str" in str(err.value)


# --- rows are the file's rows ---------------------------------------------------------------


def test_rows_are_file_rows_after_picking_a_ticker(bars, write_bars):
    # In a two-ticker file, the second ticker's bad row is named by its row in the file.
    a = bars.reset_index().assign(ticker="AAA")
    b = bars.reset_index().assign(ticker="BBB")
    b.loc[300, "close"] = -2.0
    path = write_bars(pd.concat([a, b], ignore_index=True), "two.csv", index=False)
    with pytest.raises(DataError, match=r"first at row 1300 \(2020-01-13 12:00:00\): -2\.0"):
        load_bars(path, ticker="BBB")


def test_feature_overflow_names_the_file_and_the_file_row(bars, write_bars):
    # A feature that overflows after the warm-up is named with the file and the file's row,
    # not the feature row (the 9-row warm-up of sma_value shifts it to 591).
    bars.iloc[600, bars.columns.get_loc("close")] = 1e-30  # hl_range = (high - low) / close
    path = write_bars(bars, "bars.csv")
    loaded = load_bars(path, max_jump=float("inf"))
    with pytest.raises(DataError) as err:
        build_features(loaded, ["close", "sma_value", "hl_range"], sma_window=10)
    text = _one_line(err)
    assert text.startswith(f"{path}: feature 'hl_range' is NaN/inf or beyond 1e+18 in 1 row(s)")
    assert "first at row 600 (2020-01-26 00:00:00)" in text


def test_rows_of_a_frame_without_a_file_are_positions(bars):
    # validate_bars on a caller's frame (a database query) counts rows from 0 in that frame.
    bars.iloc[10, bars.columns.get_loc("open")] = np.nan
    with pytest.raises(
        DataError, match=r"^db:prices: column 'open' has 1 NaN/inf value\(s\), first at row 10"
    ):
        validate_bars(bars, "db:prices")


# --- constant prices and gaps ---------------------------------------------------------------


def test_a_close_that_never_changes_is_refused(bars, write_bars):
    # Nothing to forecast: every naive error would be zero.
    bars[["open", "high", "low", "close"]] = 100.0
    with pytest.raises(
        DataError, match=r"column 'close' never changes \(all 1,000 bars close at 100\.0\)"
    ):
        load_bars(write_bars(bars, "flat.csv"))


def test_a_long_constant_stretch_is_a_warning_with_its_rows(bars, write_bars):
    # 301 unchanged closes (rows 299-599) load, with one warning naming the stretch's rows.
    bars.iloc[300:600, bars.columns.get_loc("close")] = bars["close"].iloc[299]
    with pytest.warns(DataWarning) as record:
        load_bars(write_bars(bars, "flat.csv"))
    assert len(record) == 1
    text = str(record[0].message)
    assert "column 'close' stays at" in text and "for 301 bars, row 299 (" in text
    assert "to row 599 (" in text and "zero persistence error" in text


def test_short_constant_stretches_do_not_warn(bars, write_bars):
    # A few unchanged closes (an illiquid hour) are normal.
    bars.iloc[300:310, bars.columns.get_loc("close")] = bars["close"].iloc[299]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_bars(write_bars(bars, "ok.csv"))


def test_a_month_long_gap_in_hourly_bars_is_a_warning(bars, write_bars):
    # 30 days without a bar is more than weekends and holidays explain.
    shifted = bars.index.where(np.arange(len(bars)) < 500, bars.index + pd.Timedelta(days=30))
    bars.index = pd.DatetimeIndex(shifted, name="timestamp")
    with pytest.warns(
        DataWarning, match=r"1 time gap\(s\) longer than the usual step \(1h\)"
    ) as rec:
        load_bars(write_bars(bars, "gap.csv"))
    assert "the longest 30d 1h from row 499" in str(rec[0].message)


def test_weekends_in_daily_bars_do_not_warn(write_bars):
    # Business-day bars skip weekends and a long Easter weekend: no warning.
    days = pd.bdate_range("2020-01-01", periods=300, name="timestamp")
    days = days.drop(pd.Timestamp("2020-04-10"))  # Good Friday: a 4-day gap
    bars = make_bars(len(days), seed=1).set_axis(days, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_bars(write_bars(bars, "daily.csv"))
