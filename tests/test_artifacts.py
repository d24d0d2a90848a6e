"""save_run / load_run / predict: the files a run leaves and their exact round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.folds import make_fold
from trainables.artifacts import FILES, load_run, predict, save_run
from trainables.bars.synthetic import make_bars
from trainables.errors import DataError
from trainables.parameters.train_config import TrainConfig
from trainables.training.trainer import fit


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _trained(task: str, tmp_path, **settings):
    cfg = TrainConfig(
        hidden_size=8,
        num_layers=1,
        sequence_length=8,
        epochs=2,
        batch_size=64,
        warmup_epochs=0,
        task=task,
        horizon=3 if task == "classification" else 1,
        threshold=0.003,
        f_cols=["close", "volume", "log_return"],
        **{"target_col": "close", **settings},
    )
    built = make_fold(cfg, make_bars(500))
    fold, features, split = built.fold, built.features, built.split
    result = fit(cfg, fold, log=None)
    out = save_run(
        tmp_path / "run",
        result=result,
        cfg=cfg,
        fold=fold,
        index=features.index,
        test_idx=split.test,
    )
    return out, result, features, split


def test_save_run_writes_every_file(tmp_path):
    # Rule: a run directory holds weights, settings, scaler, curves and predictions.
    out, result, _, split = _trained("regression", tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    info = json.loads((out / "config.json").read_text())
    assert info["train_config"]["hidden_size"] == 8
    assert info["data"]["feature_names"] == ["close", "volume", "log_return"]
    assert info["data"]["target_names"] == ["close"] and info["model"]["n_features"] == 3
    metrics = json.loads((out / "training_metrics.json").read_text())
    for key in (
        "train_losses",
        "val_losses",
        "learning_rates",
        "best_epoch",
        "best_val_loss",
        "final_train_loss",
        "final_val_loss",
    ):
        assert key in metrics
    assert metrics["val_losses"] == [r.val_loss for r in result.history]
    assert "mse" in metrics["test_metrics"] and "persistence_mse" in metrics["test_metrics"]
    preds = pd.read_parquet(out / "predictions.parquet")
    assert set(preds["split"]) == {"val", "test"} and (preds["split"] == "test").sum() == len(
        split.test
    )
    assert {"timestamp", "target_timestamp", "anchor", "actual_close", "predicted_close"} <= set(
        preds.columns
    )


def test_model_file_is_a_plain_state_dict(tmp_path):
    # Rule: model.pt loads with weights_only=True (no pickled objects).
    out, result, _, _ = _trained("regression", tmp_path)
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in result.model.state_dict().items())


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_predict_reproduces_saved_predictions_exactly(task, tmp_path):
    # Rule: load_run + predict on the same features gives predictions.parquet bit for bit.
    out, _, features, _ = _trained(task, tmp_path)
    run = load_run(out)
    fresh = predict(run, features)
    saved = pd.read_parquet(out / "predictions.parquet").set_index("timestamp")
    cols = (
        ["predicted_close"] if task == "regression" else ["p_down", "p_flat", "p_up", "predicted"]
    )
    again = fresh.loc[saved.index, cols]
    for c in cols:
        assert np.array_equal(again[c].to_numpy(), saved[c].to_numpy()), c


def test_fit_predictions_match_the_saved_validation_rows(tmp_path):
    # Rule: the trainer's own eval predictions are the ones written for split 'val'.
    out, result, _, _ = _trained("regression", tmp_path)
    saved = pd.read_parquet(out / "predictions.parquet")
    val = saved[saved["split"] == "val"]
    assert np.array_equal(val["predicted_close"].to_numpy(), result.predictions[:, 0])


def test_predict_covers_every_full_window(tmp_path):
    # Rule: predict returns one row per timestamp that ends a full window, incl. unlabelled ones.
    out, _, features, _ = _trained("regression", tmp_path)
    fresh = predict(load_run(out), features)
    assert len(fresh) == len(features) - 8 + 1
    assert fresh.index[-1] == features.index[-1]


def test_load_run_of_a_wrong_directory_is_a_data_error(tmp_path):
    # Rule: a directory that is no run fails with the missing files named.
    with pytest.raises(DataError, match="missing \\['model.pt', 'config.json', 'scaler.json'\\]"):
        load_run(tmp_path)


def test_predict_needs_the_feature_columns(tmp_path):
    # Rule: a features frame without the run's inputs is rejected naming them.
    out, _, features, _ = _trained("regression", tmp_path)
    with pytest.raises(DataError, match="volume"):
        predict(load_run(out), features.drop(columns=["volume"]))
