"""Timestamps with UTC offsets, naive local times with --timezone, and daylight saving.

The bars are 8,000 hourly bars from 2020-01-01 00:00 UTC, so they cross New York's change to
daylight saving time (2020-03-08) and back (2020-11-01).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trainables.bars.files import load_bars, validate_bars
from trainables.bars.provenance import origin_of
from trainables.bars.synthetic import make_bars
from trainables.errors import ConfigError, DataError

NY = "America/New_York"


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    return make_bars(8000, seed=0)


def _with_times(bars: pd.DataFrame, times: list[str]) -> pd.DataFrame:
    raw = bars.reset_index(drop=True)
    raw.insert(0, "timestamp", times)
    return raw


def _ny(bars: pd.DataFrame) -> pd.DatetimeIndex:
    return bars.index.tz_localize("UTC").tz_convert(NY)


def test_new_york_offsets_across_daylight_saving_load_as_utc(hourly, write_bars):
    # -05:00 in winter and -04:00 in summer: read as the same instants, in UTC.
    times = [t.isoformat() for t in _ny(hourly)]
    loaded = load_bars(write_bars(_with_times(hourly, times), "ny.csv", index=False))
    assert str(loaded.index.tz) == "UTC"
    np.testing.assert_array_equal(loaded.index.tz_localize(None), hourly.index)
    note = origin_of(loaded).timestamps
    assert note == "converted to UTC from UTC offsets -05:00, -04:00"


def test_mixed_iso_layouts_with_offsets_load(hourly, write_bars):
    # 'T' or a space, 'Z' or +00:00 or +0000: all ISO 8601, all the same instants.
    stamps = hourly.index[:12]
    layouts = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S+00:00", "%Y-%m-%dT%H:%M:%S+0000"]
    times = [t.strftime(layouts[k % 3]) for k, t in enumerate(stamps)]
    raw = _with_times(hourly.iloc[:12], times)
    loaded = validate_bars(raw.set_index("timestamp"), "mixed")
    np.testing.assert_array_equal(loaded.index.tz_localize(None), stamps)
    assert origin_of(loaded).timestamps == "UTC"


def test_day_first_is_never_guessed(write_bars, hourly):
    # Month-first text (the layout of the first value) stays month-first for every row.
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    raw = _with_times(hourly.iloc[:40], [d.strftime("%m/%d/%Y") for d in days])
    loaded = load_bars(write_bars(raw, "us.csv", index=False))
    np.testing.assert_array_equal(loaded.index, days)


def test_yyyymmdd_numbers_are_dates_not_1970_epochs(hourly, write_bars):
    # 20200101 as a number is a date (as epoch seconds it would be 1970-08-22).
    days = pd.bdate_range("2020-01-01", periods=30)
    raw = _with_times(hourly.iloc[:30], [int(d.strftime("%Y%m%d")) for d in days])
    loaded = load_bars(write_bars(raw, "daily.csv", index=False))
    np.testing.assert_array_equal(loaded.index, days)


def test_some_rows_with_an_offset_and_some_without_is_one_line(hourly, write_bars):
    # Half-aware times cannot be ordered honestly: the error names a row of each kind.
    times = [t.isoformat() for t in _ny(hourly.iloc[:20])]
    times[5] = "2020-01-01 05:00:00"
    path = write_bars(_with_times(hourly.iloc[:20], times), "mixed.csv", index=False)
    with pytest.raises(DataError) as err:
        load_bars(path)
    assert str(err.value) == (
        f"{path}: column 'timestamp' mixes times with and without a UTC offset: row 0"
        " '2019-12-31T19:00:00-05:00' has one, row 5 '2020-01-01 05:00:00' has none;"
        " give every time an offset, or none"
    )


def test_garbage_times_stay_one_line(hourly, write_bars):
    # Real garbage is still the unparseable-timestamp line.
    times = [t.isoformat() for t in hourly.index[:20]]
    times[3] = "soon"
    path = write_bars(_with_times(hourly.iloc[:20], times), "bad.csv", index=False)
    with pytest.raises(DataError, match=r"1 missing or unparseable timestamp\(s\), first at row 3"):
        load_bars(path)


@pytest.fixture
def ny_naive(hourly, write_bars):
    """The bars as naive New York wall-clock times: 01:00-01:59 twice on 2020-11-01."""
    times = [t.strftime("%Y-%m-%d %H:%M:%S") for t in _ny(hourly)]
    return write_bars(_with_times(hourly, times), "ny_naive.csv", index=False)


def test_naive_local_times_with_timezone_need_a_dst_rule(ny_naive):
    # The repeated hour at the end of daylight saving is named, with the way out.
    with pytest.raises(DataError) as err:
        load_bars(ny_naive, timezone=NY)
    assert str(err.value) == (
        f"{ny_naive}: 2020-11-01 01:00:00 at row 7325 is not one moment in America/New_York:"
        " that hour repeats when daylight saving time ends (2 such row(s)); pass --dst infer"
        " or --dst drop (docs/data.md)"
    )


def test_dst_infer_reads_the_repeated_hour_in_file_order(ny_naive, hourly):
    # With --dst infer the naive local times give back exactly the UTC instants.
    loaded = load_bars(ny_naive, timezone=NY, dst="infer")
    np.testing.assert_array_equal(loaded.index.tz_localize(None), hourly.index)
    assert origin_of(loaded).timestamps == "read as America/New_York local time, converted to UTC"


def test_dst_drop_leaves_out_the_ambiguous_rows(ny_naive, hourly):
    # --dst drop removes the two rows of the repeated hour and says so.
    loaded = load_bars(ny_naive, timezone=NY, dst="drop")
    assert len(loaded) == len(hourly) - 2
    assert "2 row(s) at a daylight saving change dropped" in origin_of(loaded).timestamps


def test_a_skipped_hour_is_named(hourly):
    # 02:30 on 2020-03-08 never happened in New York.
    frame = hourly.iloc[:3].set_axis(
        pd.DatetimeIndex(["2020-03-08 01:30", "2020-03-08 02:30", "2020-03-08 03:30"]), axis=0
    )
    with pytest.raises(DataError, match=r"2020-03-08 02:30:00 at row 1 .* is skipped when"):
        validate_bars(frame, "db", timezone=NY, max_jump=10)
    shifted = validate_bars(frame, "db", timezone=NY, dst="infer", max_jump=10)
    assert shifted.index[1] == pd.Timestamp("2020-03-08 07:00", tz="UTC")  # 03:00 EDT


def test_without_timezone_the_repeated_hour_is_a_duplicate_with_a_hint(ny_naive):
    # Naive times are kept as they are, so the repeated hour is a duplicate: the hint says why.
    with pytest.raises(
        DataError, match=r"duplicate timestamp 2020-11-01 01:00:00 .* see --timezone"
    ):
        load_bars(ny_naive)


def test_timezone_with_offsets_or_epochs_or_a_bad_name_is_a_config_error(hourly, write_bars):
    # --timezone is for naive times only, and must be a zone name.
    aware = write_bars(
        _with_times(hourly.iloc[:50], [t.isoformat() for t in _ny(hourly.iloc[:50])]),
        "aware.csv",
        index=False,
    )
    with pytest.raises(ConfigError, match=r"carry a time zone or UTC offset \(-05:00\)"):
        load_bars(aware, timezone=NY)
    epochs = _with_times(hourly.iloc[:50], list(hourly.index[:50].asi8 // 10**6))
    with pytest.raises(ConfigError, match=r"Unix epoch numbers"):
        load_bars(write_bars(epochs, "epochs.csv", index=False), timezone=NY)
    with pytest.raises(ConfigError, match=r"--timezone 'America/NewYork' is not a time zone"):
        validate_bars(hourly.iloc[:50], "x", timezone="America/NewYork")


def test_parquet_with_a_named_zone_is_converted(hourly, write_bars):
    # A Parquet timestamp column stored with its zone is converted to UTC, the zone noted.
    frame = hourly.iloc[:100].set_axis(_ny(hourly.iloc[:100]).rename("timestamp"), axis=0)
    loaded = load_bars(write_bars(frame, "zoned.parquet"))
    np.testing.assert_array_equal(loaded.index.tz_localize(None), hourly.index[:100])
    assert origin_of(loaded).timestamps == "converted to UTC from time zone America/New_York"


def test_train_records_the_conversion_in_config_json(hourly, tmp_path, write_bars):
    # python -m trainables.train keeps how the times were read in the run's config.json.
    import trainables.train as train_cli

    times = [t.isoformat() for t in _ny(hourly.iloc[:700])]
    path = write_bars(_with_times(hourly.iloc[:700], times), "ny.csv", index=False)
    out = tmp_path / "run"
    tiny = ["--hidden_size", "4", "--num_layers", "1", "--sequence_length", "5", "--epochs", "1"]
    assert train_cli.main(["--data", str(path), *tiny, "--out", str(out)]) == 0
    origin = json.loads((out / "config.json").read_text())["origin"]
    assert origin["timestamps"] == "converted to UTC from UTC offsets -05:00"
    assert origin["data"] == str(path) and origin["max_jump"] == 2.0


def test_sweep_records_the_time_zone_and_promotion_rebuilds_with_it(hourly, tmp_path, write_bars):
    # A sweep on naive New York times keeps --timezone/--dst and how the times were read in
    # sweep.json; promotion's rebuild (load_holdout) reads the data the same way.
    import ray

    from orchestrator.promotion.holdout import load_holdout
    from orchestrator.sweep.run import SweepSpec, run_sweep

    times = [t.strftime("%Y-%m-%d %H:%M:%S") for t in _ny(hourly)]
    path = write_bars(_with_times(hourly, times).iloc[6800:8000], "ny.csv", index=False)
    spec = SweepSpec(
        name="tz",
        space="smoke",
        data=str(path),
        trials=1,
        folds=2,
        epochs=1,
        scheduler="none",
        num_cpus=1,
        dashboard=False,
        results_dir=str(tmp_path / "results"),
        timezone=NY,
        dst="infer",
    )
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        out = run_sweep(spec, log=lambda *_: None)
    finally:
        ray.shutdown()
    sweep = json.loads((out.out_dir / "sweep.json").read_text())
    assert (sweep["timezone"], sweep["dst"], sweep["max_jump"]) == (NY, "infer", 2.0)
    assert sweep["timestamps"] == "read as America/New_York local time, converted to UTC"
    holdout = load_holdout(out.out_dir)
    assert holdout.test_first_row == sweep["test_first_row"]
    assert str(holdout.features.index.tz) == "UTC"
