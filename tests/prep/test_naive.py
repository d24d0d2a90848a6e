"""Which naive forecast each regression target is judged against."""

from __future__ import annotations

import numpy as np

from trainables.prep.features import FEATURES
from trainables.prep.naive import LEVEL, RETURN_LIKE, naive_forecast, naive_kind


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


def test_only_level_targets_among_the_inputs_are_predicted_as_last_value_plus_change():
    # Rule: the untrained model equals the target's own naive forecast: persistence for a
    # level that is an input, the (scaled) training mean for a return-like target.
    from trainables.prep.naive import residual_applies

    assert residual_applies(["open", "close"], ["close"])
    assert not residual_applies(["open"], ["close"])  # no last value to add a change to
    assert not residual_applies(["log_return", "volume_ratio"], ["log_return"])
    assert not residual_applies(["close", "log_return"], ["close", "log_return"])


def test_a_return_target_trains_without_the_residual_head_and_a_price_with_it():
    from tests.folds import make_fold
    from trainables.bars.synthetic import make_bars
    from trainables.parameters.train_config import TrainConfig
    from trainables.training.trainer import fit

    bars = make_bars(600)
    for target, f_cols, residual in (
        ("log_return", ("log_return", "volume_ratio"), False),
        ("close", ("close", "volume"), True),
    ):
        cfg = TrainConfig(
            f_cols=f_cols,
            target_col=target,
            sequence_length=8,
            hidden_size=4,
            num_layers=1,
            epochs=1,
            batch_size=64,
            device="cpu",
        )
        result = fit(cfg, make_fold(cfg, bars).fold, log=None)
        assert result.model.residual is residual, target
