"""Which naive forecast each regression target is judged against."""

from __future__ import annotations

import numpy as np

from trainables.features import FEATURES
from trainables.naive import LEVEL, RETURN_LIKE, naive_forecast, naive_kind


def test_every_built_in_feature_has_a_documented_naive_forecast():
    # Each built-in feature is either a level (persistence) or return-like (training mean).
    assert set(LEVEL) | set(RETURN_LIKE) == set(FEATURES)
    assert not set(LEVEL) & set(RETURN_LIKE)


def test_returns_get_the_training_mean_and_prices_persistence():
    assert naive_kind("log_return") == "training mean"
    assert naive_kind("rsi") == "training mean"
    assert naive_kind("close") == "persistence"
    assert naive_kind("my_custom_column") == "persistence"


def test_naive_forecast_mixes_per_target():
    now = np.array([[100.0, 0.01], [101.0, -0.02], [99.0, 0.0]])
    out = naive_forecast(["close", "log_return"], now, train_mean=np.array([50.0, 0.001]))
    np.testing.assert_array_equal(out[:, 0], now[:, 0])
    np.testing.assert_array_equal(out[:, 1], [0.001, 0.001, 0.001])
