"""python -m orchestrator.predict on saved runs: seed folders, rank folders, new data files.

The runs are trained here in-process (2 tiny epochs, no Ray) and saved with save_run into the
layout promotion writes: results/<name>/models/<rank>/seed<k>/ next to a sweep.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from orchestrator.predict import main
from trainables.artifacts import save_run
from trainables.config import TrainConfig
from trainables.dataset import prepare_fold
from trainables.features import build_features
from trainables.splits import final_split
from trainables.synthetic import make_bars
from trainables.table import build_table
from trainables.trainer import fit

N_BARS = 600


def _train_rank(rank_dir: Path, bars: pd.DataFrame, **settings) -> None:
    """Two seeds of one tiny config, saved as promotion saves them."""
    for k in (0, 1):
        cfg = TrainConfig(
            hidden_size=8,
            num_layers=1,
            sequence_length=8,
            epochs=2,
            batch_size=64,
            scheduler="none",
            warmup_epochs=0,
            seed=k,
            **settings,
        )
        features, targets = build_table(bars, cfg)
        split = final_split(len(features), seq_len=8, horizon=cfg.horizon)
        fold = prepare_fold(
            features, targets, split.train, split.val, f_cols=list(cfg.f_cols), seq_len=8
        )
        result = fit(cfg, fold, log=None)
        save_run(
            rank_dir / f"seed{k}",
            result=result,
            cfg=cfg,
            fold=fold,
            index=features.index,
            test_idx=split.test,
        )


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """results/s/models with rank 1 (regression) and rank 2 (classification), 2 seeds each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train fastest on one thread
    out = tmp_path_factory.mktemp("predict") / "results" / "s"
    out.mkdir(parents=True)
    (out / "sweep.json").write_text(
        json.dumps({"name": "s", "data": None, "n_bars": N_BARS, "seed": 0})
    )
    bars = make_bars(N_BARS, seed=0)
    _train_rank(out / "models" / "1", bars)
    _train_rank(out / "models" / "2", bars, task="classification", horizon=5, threshold=0.005)
    torch.set_num_threads(threads)
    return out / "models"


def _predict(args: list[str], tmp_path: Path) -> pd.DataFrame:
    target = tmp_path / "preds.parquet"
    assert main([*args, "--out", str(target)]) == 0
    return pd.read_parquet(target)


def test_seed_folder_reproduces_its_saved_predictions(models, tmp_path):
    # A seed folder predicts the sweep's built-in data exactly as training saved it (val and test).
    fresh = _predict(["--model", str(models / "1" / "seed0")], tmp_path)
    saved = pd.read_parquet(models / "1" / "seed0" / "predictions.parquet").set_index("timestamp")
    assert set(saved.split) == {"val", "test"}
    assert np.array_equal(
        fresh.loc[saved.index, "predicted_close"].to_numpy(), saved.predicted_close.to_numpy()
    )
    target = fresh.loc[saved.index, "target_timestamp"]
    assert (target.to_numpy() == saved.target_timestamp.to_numpy()).all()


def test_rank_folder_averages_its_seeds(models, tmp_path):
    # A rank folder's forecast is the mean of its seeds', with their spread alongside.
    both = _predict(["--model", str(models / "1")], tmp_path)
    seeds = [_predict(["--model", str(models / "1" / f"seed{k}")], tmp_path) for k in (0, 1)]
    values = np.stack([s.predicted_close.to_numpy() for s in seeds])
    assert np.allclose(both.predicted_close, values.mean(axis=0), rtol=0, atol=1e-12)
    assert np.allclose(both.predicted_close_std, values.std(axis=0, ddof=1), rtol=0, atol=1e-12)


def test_classification_rank_folder_is_a_soft_vote(models, tmp_path):
    # Class probabilities are averaged over seeds; the predicted class is the likeliest one.
    both = _predict(["--model", str(models / "2")], tmp_path)
    seeds = [_predict(["--model", str(models / "2" / f"seed{k}")], tmp_path) for k in (0, 1)]
    cols = ["p_down", "p_flat", "p_up"]
    mean = (seeds[0][cols].to_numpy() + seeds[1][cols].to_numpy()) / 2
    assert np.allclose(both[cols].to_numpy(), mean, rtol=0, atol=1e-12)
    assert np.allclose(both[cols].sum(axis=1), 1.0)
    assert (both.predicted.to_numpy() == mean.argmax(axis=1)).all()


def test_new_data_file_gets_a_forecast_for_every_full_window(models, tmp_path, write_bars):
    # New bars (extra columns are fine) get one forecast per bar that ends a window; the last
    # bar's target lies beyond the data.
    bars = make_bars(300, seed=7)
    bars["vwap"] = bars["close"]
    path = write_bars(bars, "new.parquet")
    preds = _predict(["--model", str(models / "1"), "--data", str(path)], tmp_path)
    features = build_features(bars, TrainConfig().f_cols, extra=["close"])
    assert len(preds) == len(features) - 8 + 1
    assert preds.index[-1] == bars.index[-1]
    assert pd.isna(preds.target_timestamp.iloc[-1])
    assert preds.target_timestamp.iloc[-2] == bars.index[-1]


def test_data_missing_a_model_column_is_refused_in_one_line(models, write_bars, capsys):
    # Data without a column the model was trained on: exit 2 and one line naming the column.
    path = write_bars(make_bars(300).drop(columns=["volume"]), "novolume.csv")
    assert main(["--model", str(models / "1"), "--data", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "missing column(s) ['volume']" in err and str(models / "1") in err


def test_folder_without_a_model_is_refused(tmp_path, capsys):
    # A folder that holds no saved run and no seed runs: exit 2 and a hint at the right path.
    assert main(["--model", str(tmp_path)]) == 2
    assert "models/<rank>" in capsys.readouterr().err


def test_without_out_predictions_go_to_stdout_as_csv(models, capsys):
    # No --out: CSV on stdout, so the command can be piped.
    assert main(["--model", str(models / "1" / "seed1")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "timestamp,target_timestamp,predicted_close"
    assert len(lines) > 100
