"""Scalers see training rows only (through prepare_fold), round-trip through JSON, cover rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainables.prep.dataset import prepare_fold
from trainables.prep.features import build_features
from trainables.prep.labels import make_targets
from trainables.prep.scaling import rows_covered, scaler_from_dict

F_COLS = ["open", "high", "low", "close", "volume", "sma_value"]
SEQ_LEN, HORIZON = 20, 5


@pytest.fixture
def fold_inputs(bars):
    """Features, regression targets and one fold: train on anchors 19..899, evaluate 1000.."""
    features = build_features(bars, F_COLS)
    targets = make_targets(features, bars, task="regression", f_cols=F_COLS, horizon=HORIZON)
    n = len(features)
    train = np.arange(SEQ_LEN - 1, 900)
    evaluate = np.arange(1000, n - HORIZON)
    return features, targets, train, evaluate


def _scaler(features, targets, train, evaluate, kind="minmax"):
    fold = prepare_fold(
        features, targets, train, evaluate, f_cols=F_COLS, sequence_length=SEQ_LEN, scaler=kind
    )
    return fold, fold.scaler


@pytest.mark.parametrize("kind", ["minmax", "standard"])
def test_scaler_ignores_rows_outside_training_spans(fold_inputs, kind):
    # Changing every row outside the training spans leaves the fitted scaler identical.
    features, targets, train, evaluate = fold_inputs
    _, before = _scaler(features, targets, train, evaluate, kind)
    outside = ~rows_covered(train, SEQ_LEN, HORIZON, len(features))
    changed = features.copy()
    changed.loc[outside] *= 10.0
    _, after = _scaler(changed, targets, train, evaluate, kind)
    np.testing.assert_array_equal(before.offset, after.offset)
    np.testing.assert_array_equal(before.scale, after.scale)


def test_scaler_sees_rows_inside_training_spans(fold_inputs):
    # Changing one row inside a training span (the last label row) does change the scaler.
    features, targets, train, evaluate = fold_inputs
    _, before = _scaler(features, targets, train, evaluate)
    changed = features.copy()
    changed.iloc[train[-1] + HORIZON] *= 10.0
    _, after = _scaler(changed, targets, train, evaluate)
    assert not np.array_equal(before.scale, after.scale)


@pytest.mark.parametrize("kind", ["minmax", "standard"])
def test_json_round_trip_gives_identical_transforms(fold_inputs, tmp_path, kind):
    # scaler.json (what a run saves) -> scaler_from_dict transforms and inverts exactly alike.
    features, targets, train, evaluate = fold_inputs
    _, scaler = _scaler(features, targets, train, evaluate, kind)
    (tmp_path / "scaler.json").write_text(json.dumps(scaler.to_dict()))
    loaded = scaler_from_dict(json.loads((tmp_path / "scaler.json").read_text()))
    raw = features[F_COLS].to_numpy()
    np.testing.assert_array_equal(loaded.transform(raw), scaler.transform(raw))
    np.testing.assert_array_equal(
        loaded.inverse_transform(raw[:, [3]], ["close"]),
        scaler.inverse_transform(raw[:, [3]], ["close"]),
    )


def test_minmax_maps_training_rows_into_unit_interval(fold_inputs):
    # MinMax puts every training row in [0, 1], touching both ends in each column.
    features, targets, train, evaluate = fold_inputs
    fold, _ = _scaler(features, targets, train, evaluate)
    seen = fold.x[rows_covered(train, SEQ_LEN, HORIZON, len(features))]
    assert seen.min() >= 0.0 and seen.max() <= 1.0
    np.testing.assert_allclose(seen.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(seen.max(axis=0), 1.0, atol=1e-6)


def test_rows_covered_matches_brute_force():
    # The mask equals marking [i - sequence_length + 1, i + horizon] for each anchor by hand.
    rng = np.random.default_rng(0)
    for sequence_length, horizon, n in [(1, 1, 30), (5, 3, 40), (10, 20, 60), (7, 1, 15)]:
        anchors = np.sort(
            rng.choice(np.arange(sequence_length - 1, n - horizon), size=4, replace=False)
        )
        expected = np.zeros(n, dtype=bool)
        for i in anchors:
            for row in range(i - sequence_length + 1, i + horizon + 1):
                expected[row] = True
        np.testing.assert_array_equal(rows_covered(anchors, sequence_length, horizon, n), expected)
