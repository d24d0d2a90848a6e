"""The regression objective: a ratio to the naive forecast in original units, the same for
every scaler a space samples, pooled over folds; early stopping never sees the scored rows."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.stats.objective import running_objective
from orchestrator.sweep.prepare import prepare_sweep_data
from tests.folds import make_fold
from trainables.errors import DataError
from trainables.parameters.train_config import TrainConfig
from trainables.training.metrics import fold_outputs
from trainables.training.trainer import fit, predict_scaled


def _fold(bars, *, scaler: str, target: str = "close", f_cols=("close", "log_return")):
    cfg = TrainConfig(f_cols=f_cols, target_col=target, sequence_length=8, scaler=scaler)
    return make_fold(cfg, bars, test_as_eval=True).fold


@pytest.mark.parametrize("target", ["close", "log_return"])
def test_the_same_predictions_score_the_same_under_every_scaler(bars, target):
    # Rule: the objective is in original units, so the scaler a trial samples cannot move it.
    rng = np.random.default_rng(0)
    scores = []
    for scaler in ("minmax", "standard"):
        fold = _fold(bars, scaler=scaler, target=target)
        truth = fold.y_raw[fold.eval_idx]
        pred = truth + rng.standard_normal(truth.shape) * truth.std() * 0.5  # same for both
        rng = np.random.default_rng(0)
        out = fold.scaler.transform(pred, fold.target_names)  # the model's scaled outputs
        _, metrics = fold_outputs(out, fold, fold.eval_idx)
        scores.append(metrics)
    assert scores[0]["mse_ratio"] == pytest.approx(scores[1]["mse_ratio"], rel=1e-5)
    assert scores[0]["mse"] == pytest.approx(scores[1]["mse"], rel=1e-5)
    assert scores[0]["naive_mse"] == scores[1]["naive_mse"]  # exact: raw values, no scaler


def test_a_return_target_is_scored_against_the_training_mean(bars):
    # Rule: log_return's naive forecast is its mean over the training anchors, not its last value.
    fold = _fold(bars, scaler="standard", target="log_return")
    truth = fold.y_raw[fold.eval_idx, 0]
    mean = fold.y_raw[fold.train_idx, 0].mean()
    out = fold.scaler.transform(np.zeros((len(truth), 1)), fold.target_names)
    _, metrics = fold_outputs(out, fold, fold.eval_idx)
    assert metrics["naive"] == ["training mean"]
    assert metrics["naive_mse"] == pytest.approx(np.mean((truth - mean) ** 2))
    assert metrics["mse_ratio"] == pytest.approx(np.mean(truth**2) / np.mean((truth - mean) ** 2))


def test_a_price_target_is_scored_against_persistence(bars):
    fold = _fold(bars, scaler="minmax", target="close")
    truth = fold.y_raw[fold.eval_idx, 0]
    now = fold.now_raw[fold.eval_idx, 0]
    _, metrics = fold_outputs(fold.y_now[fold.eval_idx], fold, fold.eval_idx)  # predicts "now"
    assert metrics["naive"] == ["persistence"]
    assert metrics["naive_mse"] == pytest.approx(np.mean((truth - now) ** 2))
    assert metrics["mse_ratio"] == pytest.approx(1.0, abs=1e-6)  # persistence scores exactly 1


def test_multi_output_ratio_is_the_mean_of_per_target_ratios(bars):
    # Volume (millions) cannot swamp prices (~100): each target counts once.
    fold = _fold(bars, scaler="minmax", target=None, f_cols=("close", "volume"))
    truth = fold.y_raw[fold.eval_idx]
    pred = truth * np.array([1.001, 1.3])  # tiny price error, huge volume error
    _, m = fold_outputs(fold.scaler.transform(pred, fold.target_names), fold, fold.eval_idx)
    ratios = np.array(m["mse_by_target"]) / np.array(m["naive_mse_by_target"])
    assert m["mse_ratio"] == pytest.approx(ratios.mean(), rel=1e-6)


def test_pooled_over_folds_is_sum_of_mse_over_sum_of_naive_mse():
    # One calm fold (tiny naive MSE) cannot dominate the objective as a mean of ratios would.
    folds = [
        {"mse_by_target": [2.0], "naive_mse_by_target": [1.0]},
        {"mse_by_target": [0.001], "naive_mse_by_target": [0.01]},
    ]
    assert running_objective(folds, "regression") == pytest.approx(2.001 / 1.01)
    # a partial estimate of the current fold pools the same way
    assert running_objective(folds[:1], "regression", ([1.0], [3.0])) == pytest.approx(3 / 4)


def test_early_stopping_uses_the_stop_block_and_eval_is_predicted_once(bars):
    # Rule: per-epoch validation is on stop_idx; eval_idx is predicted once, by the restored
    # best epoch, so the choice of epoch never saw the scored rows.
    fold = _fold(bars, scaler="minmax")
    cfg = TrainConfig(
        f_cols=("close", "log_return"),
        sequence_length=8,
        hidden_size=8,
        num_layers=1,
        epochs=4,
        batch_size=64,
        warmup_epochs=0,
        scheduler="none",
        patience=0,
        loss="mse",  # the validation loss below is the plain mean of squares
    )
    seen: list[int] = []
    result = fit(cfg, fold, log=None, on_epoch=lambda rec: seen.append(rec.epoch))
    assert len(result.predictions) == len(fold.eval_idx)
    import torch

    out = predict_scaled(result.model, torch.from_numpy(fold.x), torch.from_numpy(fold.stop_idx), 8)
    stop_loss = float((out - torch.from_numpy(fold.y[fold.stop_idx])).square().mean())
    assert result.best_val_loss == pytest.approx(stop_loss, rel=1e-4)
    _, eval_metrics = fold_outputs(
        predict_scaled(
            result.model, torch.from_numpy(fold.x), torch.from_numpy(fold.eval_idx), 8
        ).numpy(),
        fold,
        fold.eval_idx,
    )
    assert result.metrics["mse"] == pytest.approx(eval_metrics["mse"], rel=1e-6)
    assert seen == list(range(1, len(result.history) + 1))


def test_scaler_fits_on_the_rows_the_model_trains_on_only(bars):
    # The stop block's rows do not move the scaler: changing them leaves it identical.
    fold = _fold(bars, scaler="standard")
    changed = bars.copy()
    rows = changed.index[fold.stop_idx.min() + 5 : fold.stop_idx.max()]
    changed.loc[rows, ["open", "high", "low", "close"]] *= 3.0
    again = _fold(changed, scaler="standard")
    assert again.scaler.to_dict() == fold.scaler.to_dict()


def test_sweep_data_folds_keep_an_inner_block_out_of_training_and_audit_it():
    cfg = TrainConfig(sequence_length=20)
    data = prepare_sweep_data(
        cfg,
        data=None,
        ticker=None,
        cv="walk-forward",
        n_splits=3,
        sequence_length_max=20,
        n_bars=1500,
    )
    for fit_idx, stop, ev in data.folds:
        assert fit_idx.max() + 20 < stop.min()  # the purge gap (sequence_length + horizon - 1 = 20)
        assert stop.max() < ev.min()
    audit = data.audit
    assert {"n_fit", "n_stop", "stop_first", "stop_last", "stop_purged"} <= set(audit.columns)
    assert (audit.n_fit + audit.n_stop + audit.stop_purged == audit.n_train).all()


def test_a_fold_too_short_after_the_inner_block_is_refused_before_ray():
    cfg = TrainConfig(sequence_length=120)
    # One line: the bars these settings need, and what would fit (#25: said once)
    too_few = r"1,500 bars are too few for 8 walk-forward folds with sequence_length=120 .*need at least [0-9,]+; try --folds \d"
    with pytest.raises(DataError, match=too_few):
        prepare_sweep_data(
            cfg,
            data=None,
            ticker=None,
            cv="walk-forward",
            n_splits=8,
            sequence_length_max=120,
            n_bars=1500,
        )


def test_a_flat_stretch_of_prices_over_a_fold_is_a_data_error_naming_the_rows(bars):
    # Persistence is exact where close never changes: no ratio exists; say so up front.
    cfg = TrainConfig(sequence_length=8, target_col="close")
    flat = bars.copy()
    flat.iloc[600:, flat.columns.get_loc("close")] = 100.0  # a halted stock
    with pytest.raises(DataError, match=r"'close' never changes over .* \(rows \d+\.\.\d+, 2020"):
        prepare_sweep_data(
            cfg,
            data=None,
            ticker=None,
            cv="walk-forward",
            n_splits=2,
            sequence_length_max=8,
            bars=flat,
        )
