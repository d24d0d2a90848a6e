"""build_features (causal, exact, named) and make_targets (exact labels, undefined tail)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainables.errors import ConfigError, DataError
from trainables.prep.features import FEATURES, build_features
from trainables.prep.labels import describe_targets, make_targets


def _tiny(close: list[float]) -> pd.DataFrame:
    """Bars with the given closes (open = high = low = close, volume 1)."""
    index = pd.date_range("2024-01-01", periods=len(close), freq="1h", name="timestamp")
    c = np.asarray(close, dtype=np.float64)
    return pd.DataFrame(
        {"open": c, "high": c, "low": c, "close": c, "volume": np.ones(len(c))}, index=index
    )


# --- features ------------------------------------------------------------------------------


def test_features_are_causal(bars):
    # Changing bars after row t leaves every feature at rows <= t unchanged.
    t = 700
    before = build_features(bars, list(FEATURES))
    changed = bars.copy()
    rng = np.random.default_rng(0)
    changed.iloc[t + 1 :] *= rng.uniform(0.5, 2.0, size=(len(bars) - t - 1, 1))
    after = build_features(changed, list(FEATURES))
    cutoff = bars.index[t]
    pd.testing.assert_frame_equal(before.loc[:cutoff], after.loc[:cutoff])
    assert not before.loc[bars.index[t + 1] :].equals(after.loc[bars.index[t + 1] :])


def test_sma_value_is_the_mean_of_the_last_window(bars):
    # sma_value at row t is the mean of close over rows t - sma_window + 1 .. t.
    f = build_features(bars, ["sma_value"], sma_window=5)
    t = 321
    assert f.loc[bars.index[t], "sma_value"] == pytest.approx(
        bars["close"].iloc[t - 4 : t + 1].mean()
    )
    assert f.index[0] == bars.index[4]  # the first 4 rows have no full window


def test_log_return_and_warm_up():
    # log_return is log(close_t / close_{t-1}); its first row is dropped as warm-up.
    f = build_features(_tiny([100.0, 110.0, 99.0]), ["close", "log_return"])
    assert list(f["close"]) == [110.0, 99.0]
    np.testing.assert_allclose(f["log_return"], [np.log(1.1), np.log(0.9)])


def test_columns_deduplicated_in_order(bars):
    # f_cols then extra, each name once, in the order first given.
    f = build_features(bars, ["close", "sma_value", "sma_value"], extra=["log_return", "close"])
    assert list(f.columns) == ["close", "sma_value", "log_return"]


def test_rsi_is_neutral_without_moves():
    # A window without any price change has rsi 50, and rsi stays within [0, 100].
    f = build_features(_tiny([5.0] * 6 + [6.0, 7.0, 6.5, 7.5]), ["rsi"], sma_window=3)
    assert f["rsi"].iloc[0] == 50.0
    assert f["rsi"].between(0, 100).all()


def test_user_numeric_column_is_a_feature(bars):
    # Any other numeric column of the bars can be named.
    bars["spread"] = np.linspace(0.01, 0.02, len(bars))
    f = build_features(bars, ["close", "spread"])
    np.testing.assert_array_equal(f["spread"], bars["spread"])


def test_unknown_feature_suggests_and_lists():
    # An unknown name is a ConfigError with a did-you-mean and the available names.
    with pytest.raises(
        ConfigError,
        match=r"unknown feature 'clsoe' \(did you mean 'close'\?\); available: \['open'",
    ):
        build_features(_tiny([1.0, 2.0, 3.0]), ["open", "clsoe"])


def test_bad_sma_window():
    # sma_window must be a positive integer.
    with pytest.raises(
        ConfigError, match=r"sma_window must be an integer >= 1, but got sma_window=0"
    ):
        build_features(_tiny([1.0, 2.0, 3.0]), ["close"], sma_window=0)


def test_warm_up_longer_than_data():
    # Too few bars for the rolling window is a DataError with the numbers.
    with pytest.raises(
        DataError, match=r"3 bars leave no rows after the 9-row warm-up of sma_window=10"
    ):
        build_features(_tiny([1.0, 2.0, 3.0]), ["sma_value"])


# --- labels --------------------------------------------------------------------------------


def test_regression_multi_output_horizon_2():
    # Without target_col, values[i] are all f_cols at row i + 2; the last 2 rows are NaN.
    bars = _tiny([1.0, 2.0, 3.0, 4.0, 5.0])
    f = build_features(bars, ["close", "volume"])
    t = make_targets(f, bars, task="regression", f_cols=["close", "volume"], horizon=2)
    assert t.names == ["close", "volume"] and t.n_outputs == 2
    expected = [[3, 1], [4, 1], [5, 1], [np.nan, np.nan], [np.nan, np.nan]]
    np.testing.assert_array_equal(t.values, np.array(expected, dtype=np.float64))


def test_regression_single_target():
    # target_col predicts that one column at row i + horizon.
    bars = _tiny([1.0, 2.0, 4.0, 8.0])
    f = build_features(bars, ["close", "log_return"])
    t = make_targets(f, bars, task="regression", f_cols=["close"], target_col="log_return")
    np.testing.assert_allclose(t.values[:, 0], [np.log(2), np.log(2), np.nan])
    assert t.names == ["log_return"]


def test_classification_with_threshold():
    # Class of the horizon-bar log return: 0 below -threshold, 2 above, 1 between; -1 at the end.
    bars = _tiny([100.0, 100.5, 99.0, 99.05, 110.0, 110.0])
    f = build_features(bars, ["close"])
    t = make_targets(f, bars, task="classification", f_cols=["close"], horizon=1, threshold=0.01)
    np.testing.assert_array_equal(t.values, [1, 0, 1, 2, 1, -1])
    t2 = make_targets(f, bars, task="classification", f_cols=["close"], horizon=2, threshold=0.01)
    np.testing.assert_array_equal(t2.values, [0, 0, 2, 2, -1, -1])


def test_classification_uses_bars_aligned_to_features():
    # Labels follow the features' rows (after warm-up), not the first rows of the bars.
    bars = _tiny([10.0, 1.0, 2.0, 1.0])
    f = build_features(bars, ["log_return"])  # starts at row 1
    t = make_targets(f, bars, task="classification", f_cols=["log_return"], threshold=0.0)
    np.testing.assert_array_equal(t.values, [2, 0, -1])


def test_describe_targets_reports_class_balance():
    # One line: the share of each class and the number of labelled samples.
    bars = _tiny([100.0, 100.5, 99.0, 99.05, 110.0, 110.0])
    f = build_features(bars, ["close"])
    t = make_targets(f, bars, task="classification", f_cols=["close"], threshold=0.01)
    assert describe_targets(t) == "down 20.0% / flat 60.0% / up 20.0% over 5 samples"
    assert (
        describe_targets(t, np.array([0, 1])) == "down 50.0% / flat 50.0% / up 0.0% over 2 samples"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"task": "ranking"},
            r"task must be one of \['regression', 'classification'\], but got task='ranking'",
        ),
        (
            {"task": "regression", "horizon": 0},
            r"horizon must be an integer >= 1, but got horizon=0",
        ),
        (
            {"task": "classification", "threshold": -0.1},
            r"threshold must be a finite number >= 0, but got threshold=-0.1",
        ),
        (
            {"task": "regression", "target_col": "clsoe"},
            r"target_col 'clsoe' is not among the built features \(did you mean 'close'\?\)",
        ),
    ],
)
def test_bad_label_settings(kwargs, message):
    # Bad task, horizon, threshold or target_col is a ConfigError naming the parameter.
    bars = _tiny([1.0, 2.0, 3.0])
    f = build_features(bars, ["close"])
    with pytest.raises(ConfigError, match=message):
        make_targets(f, bars, f_cols=["close"], **kwargs)


def test_every_feature_is_documented():
    # docs/data.md lists every built-in feature name, so the docs cannot drift from FEATURES.
    docs = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    assert [name for name in FEATURES if f"`{name}`" not in docs] == []
