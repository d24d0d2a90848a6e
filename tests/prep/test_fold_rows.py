"""A fold built from the rows it reads only (prepare_fold(only_rows_read=True), #23) is the
same fold as the full-length one: the same windows, targets, scaler and training."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.sweep.prepare import prepare_sweep_data
from tests.training.test_trainer import tiny
from trainables.errors import DataError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import prepare_fold_for
from trainables.prep.fold_checks import check_fold
from trainables.training.trainer import fit

F_COLS = ("open", "high", "low", "close", "volume", "log_return")


def _sweep(task: str = "regression"):
    base = TrainConfig(f_cols=F_COLS, task=task, sequence_length=8, horizon=2)
    return base, prepare_sweep_data(
        base,
        data=None,
        ticker=None,
        cv="walk-forward",
        n_splits=4,
        sequence_length_max=16,
        n_bars=1500,
    )


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_each_fold_holds_only_its_rows_and_equals_the_full_fold_there(task):
    base, data = _sweep(task)
    for k, (fit_idx, stop_idx, eval_idx) in enumerate(data.folds):
        args = (base, data.frame(), data.targets, fit_idx, stop_idx, eval_idx)
        full, part = prepare_fold_for(*args), prepare_fold_for(*args, only_rows_read=True)
        lo = part.first_row
        anchors = np.concatenate([fit_idx, stop_idx, eval_idx])
        # from the first window's first row to the last anchor's target row, no more
        assert lo == anchors.min() - base.sequence_length + 1
        assert lo + len(part.x) == anchors.max() + base.horizon + 1
        if k == 0:  # walk-forward fold 0 reads well under half of the table
            assert len(part.x) < len(full.x) / 2
        for name in ("train_idx", "stop_idx", "eval_idx"):
            np.testing.assert_array_equal(getattr(part, name) + lo, getattr(full, name))
        rows = slice(lo, lo + len(part.x))
        np.testing.assert_array_equal(part.x, full.x[rows])
        np.testing.assert_array_equal(part.y, full.y[rows])
        if task == "regression":
            for name in ("y_now", "y_raw", "now_raw"):
                np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[rows])
        assert part.scaler.to_dict() == full.scaler.to_dict()  # fit on the same rows


def test_training_on_either_gives_the_same_model_bit_for_bit():
    base, data = _sweep()
    cfg = tiny(f_cols=F_COLS, sequence_length=8, horizon=2, epochs=2)
    args = (cfg, data.frame(), data.targets, *data.folds[1])
    full = fit(cfg, prepare_fold_for(*args), log=None)
    part = fit(cfg, prepare_fold_for(*args, only_rows_read=True), log=None)
    np.testing.assert_array_equal(full.predictions, part.predictions)
    assert full.metrics == part.metrics
    for a, b in zip(full.model.parameters(), part.model.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_a_bad_value_is_named_by_its_row_in_the_table():
    # Messages count rows of the table, not of the fold's slice.
    base, data = _sweep()
    frame = data.frame().copy()
    fit_idx, stop_idx, eval_idx = data.folds[2]
    frame.iloc[int(stop_idx[3]), frame.columns.get_loc("close")] = np.nan
    part = prepare_fold_for(
        base, frame, data.targets, fit_idx, stop_idx, eval_idx, only_rows_read=True
    )
    assert part.first_row > 0
    with pytest.raises(DataError, match=f"at row {int(stop_idx[3])},"):
        check_fold(base, part)
