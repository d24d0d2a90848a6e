"""python -m orchestrator.predict on saved runs: seed folders, rank folders, new data files.

The runs are trained here in-process (2 tiny epochs, no Ray) and saved with save_run into the
layout promotion writes: results/<name>/models/<rank>/seed<k>/ next to a sweep.json.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from orchestrator.models.predict import main
from tests.folds import make_fold
from trainables.artifacts import save_run
from trainables.bars.synthetic import BUILTIN_SOURCE, make_bars
from trainables.parameters.train_config import TrainConfig
from trainables.prep.features import build_features
from trainables.training.trainer import fit

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
        built = make_fold(cfg, bars)
        fold, features, split = built.fold, built.features, built.split
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
        fresh.loc[saved.index, "predicted_log_return"].to_numpy(),
        saved.predicted_log_return.to_numpy(),
    )
    target = fresh.loc[saved.index, "target_timestamp"]
    assert (target.to_numpy() == saved.target_timestamp.to_numpy()).all()


def test_rank_folder_averages_its_seeds(models, tmp_path):
    # A rank folder's forecast is the mean of its seeds', with their spread alongside.
    both = _predict(["--model", str(models / "1")], tmp_path)
    seeds = [_predict(["--model", str(models / "1" / f"seed{k}")], tmp_path) for k in (0, 1)]
    values = np.stack([s.predicted_log_return.to_numpy() for s in seeds])
    assert np.allclose(both.predicted_log_return, values.mean(axis=0), rtol=0, atol=1e-12)
    std = values.std(axis=0, ddof=1)
    assert np.allclose(both.predicted_log_return_std, std, rtol=0, atol=1e-12)


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
    assert lines[0] == "timestamp,target_timestamp,predicted_log_return"
    assert len(lines) > 100


# --- bad input and faults (issue #13) -------------------------------------------------------


def _copy_run(models: Path, tmp_path: Path) -> Path:
    """A copy of a seed folder to damage, inside a copy of its sweep (its built-in bars)."""
    sweep = tmp_path / "s"
    sweep.mkdir()
    shutil.copy(models.parent / "sweep.json", sweep)
    run = sweep / "models" / "1" / "seed0"
    shutil.copytree(models / "1" / "seed0", run)
    return run


class _Evil:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("damage", ["malicious pickle", "empty", "truncated", "not weights"])
def test_unreadable_model_file_is_one_line_and_exit_2(models, tmp_path, capsys, damage):
    # A model.pt that is a code-running pickle, empty, cut short, or not a state dict is
    # refused in one line (exit 2, no traceback), and no pickled code runs.
    run = _copy_run(models, tmp_path)
    weights = run / "model.pt"
    marker = tmp_path / "pwned"
    if damage == "malicious pickle":
        weights.write_bytes(pickle.dumps(_Evil(marker)))
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:300])
    else:
        torch.save([torch.zeros(3)], weights)
    assert main(["--model", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {weights}: ")
    assert "Traceback" not in err and not marker.exists()


def test_unknown_out_extension_is_refused_before_any_work(models, tmp_path, capsys):
    # --out p.xlsx would get Parquet bytes under an Excel name: refused, nothing written.
    out = tmp_path / "p.xlsx"
    assert main(["--model", str(models / "1"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --out {out}: unknown file type '.xlsx'; use .parquet, .pq, .csv"
    )
    assert not out.exists()


def test_failed_write_keeps_the_previous_file_and_leaves_no_partial(
    models, tmp_path, monkeypatch, capsys
):
    # A write that fails half way (injected: bytes written, then a full disk) leaves the
    # earlier predictions file as it was and no temporary file beside it.
    out = tmp_path / "preds.parquet"
    assert main(["--model", str(models / "1" / "seed0"), "--out", str(out)]) == 0
    before = out.read_bytes()
    real = pd.DataFrame.to_parquet

    def disk_full(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    assert main(["--model", str(models / "1" / "seed1"), "--out", str(out)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"--out {out}: cannot write (No space left on device)")
    )
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.parquet"]


def test_nan_forecasts_are_refused_not_written(models, tmp_path, capsys):
    # A model whose weights turned NaN gives NaN forecasts: refused in one line, no file.
    run = _copy_run(models, tmp_path)
    state = torch.load(run / "model.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save(state, run / "model.pt")
    out = tmp_path / "p.csv"
    assert main(["--model", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run}: ") and err.count("\n") == 0
    assert "forecasts for the built-in data are NaN/inf, first for row " in err
    assert "refusing to write them" in err and not out.exists()


def test_absurd_value_in_new_data_is_one_line(models, tmp_path, write_bars, capsys):
    # A close of 1e300 (which used to give empty forecasts and exit 0) names file and row.
    bars = make_bars(300, seed=7)
    bars.iloc[200, bars.columns.get_loc("close")] = 1e300
    path = write_bars(bars, "new.csv")
    out = tmp_path / "p.parquet"
    assert main(["--model", str(models / "1"), "--data", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {path}: column 'close' jumps")
    assert "at row 200 " in err and not out.exists()


def test_too_few_bars_names_the_file(models, write_bars, capsys):
    # Fewer bars than one window (after the warm-up) is one line naming the file.
    path = write_bars(make_bars(15, seed=7), "short.csv")
    assert main(["--model", str(models / "1"), "--data", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {path}: 15 bars give 6 feature rows after the 9-row warm-up, fewer than one"
        " window of sequence_length=8; the model needs at least 17 bars"
    )


def test_missing_model_flag_is_one_line(capsys):
    # Neither --model nor a universe's --name (#22): one line, not the whole usage text.
    assert main([]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: give --model (one promoted model) or --name (a promoted sweep, or a universe)"
    )


def test_name_of_a_promoted_sweep_predicts_its_rank(models, tmp_path, capsys):
    # --name of a single sweep (not only of a universe) reads results/<name>/models/<rank>:
    # the same forecasts as --model on that folder, over the sweep's built-in data.
    results = models.parent.parent
    by_name = _predict(["--name", "s", "--results-dir", str(results)], tmp_path)
    by_model = _predict(["--model", str(models / "1")], tmp_path)
    pd.testing.assert_frame_equal(by_name, by_model)
    rank2 = _predict(["--name", "s", "--results-dir", str(results), "--rank", "2"], tmp_path)
    assert "p_up" in rank2.columns  # rank 2 is the classifier
    capsys.readouterr()
    # a rank not promoted, and a name that is no sweep: one line each, exit 2
    assert main(["--name", "s", "--results-dir", str(results), "--rank", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: sweep 's' has no promoted model at {results / 's' / 'models' / '3'}: run "
        "python -m orchestrator.promote --name s --top-k 3 first"
    )
    assert main(["--name", "t", "--results-dir", str(results)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --name t: no sweep or universe at {results / 't'} (check --name and --results-dir)"
    )


def test_a_model_moved_out_of_its_sweep_needs_data(models, tmp_path, capsys):
    # Without sweep.json above it, which built-in bars (--bars, --seed) the model read is
    # unknown: refused in one line (it used to forecast the default 4,000-bar series quietly).
    moved = tmp_path / "moved"
    shutil.copytree(models / "1", moved)
    assert main(["--model", str(moved)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --model {moved}: no sweep.json above it (moved out of its sweep?), so which "
        "built-in bars it was trained on is unknown; pass --data, or give the model inside "
        "its sweep's folder (results/<sweep>/models/...)"
    )


@pytest.mark.parametrize("trained_on", [BUILTIN_SOURCE, "bars.csv"])
def test_a_trainables_train_run_predicts_what_its_config_names(models, tmp_path, capsys, trained_on):
    # A run of `python -m trainables.train` has no sweep above it; its config.json's origin
    # says what it read: the default built-in series is rebuilt, a file must be given again.
    run = tmp_path / "run"
    shutil.copytree(models / "1" / "seed0", run)
    info = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**info, "origin": {"data": trained_on}}))
    if trained_on == BUILTIN_SOURCE:
        preds = _predict(["--model", str(run)], tmp_path)
        assert preds.index[-1] == make_bars().index[-1]  # the default series, to its last bar
    else:
        assert main(["--model", str(run)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: --model {run} was trained on bars.csv; pass --data (or --data-env)"
        )

