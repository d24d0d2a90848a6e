"""End-to-end sweeps on a real local Ray, real Tune trials, real Optuna and a real MLflow store."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tracking.store import find_parent
from orchestrator.tracking.sweep_runs import default_tracking_uri, find_child_runs
from tests.study_check import assert_study_matches
from trainables.errors import ConfigError
from trainables.parameters.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # One real local Ray for every sweep of this module; run_sweep reuses it.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def tiny(tmp_path: Path, **kw) -> SweepSpec:
    base = dict(
        space="smoke",
        trials=3,
        folds=2,
        epochs=2,
        n_bars=1000,
        num_cpus=2,
        dashboard=False,
        results_dir=str(tmp_path / "results"),
        name="t",
        max_concurrent=2,
    )
    return SweepSpec(**{**base, **kw})


def test_sweep_writes_every_result_file_and_mlflow_runs(tmp_path):
    # A sweep leaves a leaderboard, best config, fold audit, Tune dir and one MLflow child per trial.
    lines: list[str] = []
    out = run_sweep(tiny(tmp_path, scheduler="none"), log=lines.append)
    d = out.out_dir
    for name in (
        "leaderboard.parquet",
        "leaderboard.csv",
        "best_config.yaml",
        "fold_audit.csv",
        "sweep.json",
        "oof.parquet",
    ):
        assert (d / name).is_file(), name
    assert (d / "tune").is_dir()
    # Tune's JSON results (which Tune itself reads back) in every trial folder, and none of
    # its CSV and TensorBoard logs, which nothing reads (#23).
    trial_dirs = [p for p in (d / "tune").iterdir() if p.is_dir()]
    assert len(trial_dirs) == 3
    assert all((t / "result.json").stat().st_size > 0 for t in trial_dirs)
    assert not list((d / "tune").rglob("progress.csv"))
    assert not list((d / "tune").rglob("events.out.tfevents*"))
    board = read_leaderboard(d)
    assert len(board) == 3
    assert set(board.status) == {"completed"}
    assert board.objective.is_monotonic_increasing  # best (lowest mse_ratio) first
    for k in range(2):
        assert np.isfinite(board[f"fold{k}_mse_ratio"]).all()
        # per fold: the ratio of the MSEs in original units (one target: close)
        ratio = board[f"fold{k}_mse"] / board[f"fold{k}_naive_mse"]
        assert np.allclose(board[f"fold{k}_mse_ratio"], ratio)
    # over folds: pooled, sum of MSEs over sum of naive MSEs, and skill is exactly 1 - it
    pooled = (board.fold0_mse + board.fold1_mse) / (board.fold0_naive_mse + board.fold1_naive_mse)
    assert np.allclose(board.objective, pooled)
    assert (board.skill == 1 - board.objective).all()
    assert pd.read_csv(d / "leaderboard.csv").trial_id.tolist()[:3] == board.trial_id.tolist()
    # The best config is a complete, valid training config with the winner's params.
    best = TrainConfig.from_dict(yaml.safe_load((d / "best_config.yaml").read_text()))
    assert best.hidden_size == board.param_hidden_size.iloc[0]
    assert best.epochs == 2
    audit = pd.read_csv(d / "fold_audit.csv")
    assert len(audit) == 2 and (audit.purged > 0).all()
    runs = find_child_runs(default_tracking_uri(tmp_path / "results"), "lstm-sweeps", "t")
    assert sorted(r.info.run_name for r in runs) == sorted(board.trial_id)
    assert all("mse_ratio" in r.data.metrics and "skill" in r.data.metrics for r in runs)
    # The Optuna study is kept in sqlite and loads with plain Optuna.
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{d / 'optuna.db'}")
    assert len(study.trials) == 3
    assert study.best_value == pytest.approx(board.objective.iloc[0])
    # Baselines on the same folds (#19): reference rows after the trials, never ranked, in
    # sweep.json, as parent-run metrics, before the first trial and in the last lines.
    full = assert_study_matches(d)
    ridge = full.set_index("trial_id").loc["baseline:ridge"]
    naive = full.set_index("trial_id").loc["baseline:naive"]
    assert naive.objective == pytest.approx(1.0) and naive.skill == pytest.approx(0.0)
    assert ridge.skill == pytest.approx(1 - ridge.objective)
    # one alpha when every fold chose the same, else "per fold" and one per fold
    number = r"[0-9.e+-]+"
    one, per_fold = (
        rf"window \d+, alpha {number}",
        rf"window \d+, alpha per fold {number}(, {number})+",
    )
    assert re.fullmatch(f"{one}|{per_fold}", ridge.baseline_setting), ridge.baseline_setting
    pooled = (ridge.fold0_mse + ridge.fold1_mse) / (ridge.fold0_naive_mse + ridge.fold1_naive_mse)
    assert ridge.objective == pytest.approx(pooled)
    assert pd.read_csv(d / "leaderboard.csv").trial_id.tolist()[-2:] == [
        "baseline:naive",
        "baseline:ridge",
    ]
    first_trial = next(k for k, line in enumerate(lines) if " trial " in line)
    announced = next(k for k, line in enumerate(lines) if "ridge on these folds: mse_ratio" in line)
    assert announced < first_trial
    assert f"skill {ridge.skill:+.2f}" in lines[announced]
    assert "beat ridge on CV" in lines[-1] or "beats ridge on CV" in lines[-1]
    assert any("baseline:ridge" in line for line in lines)  # in the final top-trials table
    table = next(line for line in lines if "baseline:ridge" in line)
    assert "<NA>" not in table and "nan" not in table  # a baseline has no params: empty cells
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path / "results"))
    exp = client.get_experiment_by_name("lstm-sweeps")
    parent = find_parent(client, exp.experiment_id, "t")
    assert parent.data.metrics["baseline_ridge_objective"] == pytest.approx(ridge.objective)
    assert parent.data.metrics["baseline_naive_skill"] == pytest.approx(0.0)


def test_sweep_never_reads_the_test_part(tmp_path):
    # Trials get only rows before the holdout: the sweep's last row precedes the test's first.
    out = run_sweep(tiny(tmp_path, trials=1, scheduler="none"), log=lambda *_: None)
    spec = yaml.safe_load((out.out_dir / "sweep.json").read_text())
    audit = pd.read_csv(out.out_dir / "fold_audit.csv")
    assert audit.eval_last.max() + 1 <= spec["test_first_row"]


def test_asha_stops_bad_trials_early(tmp_path):
    # With ASHA some trials stop before their last fold: fewer folds run than trials x folds.
    out = run_sweep(
        tiny(tmp_path, trials=6, folds=3, scheduler="asha", max_concurrent=1), log=lambda *_: None
    )
    board = out.leaderboard
    assert board.folds_done.sum() < 6 * 3
    # Pruned trials are PRUNED in the Optuna study, not COMPLETE with a partial score (#19).
    assert_study_matches(out.out_dir)
    pruned = board[board.status == "pruned"]
    assert len(pruned) >= 1
    assert (board.status == "completed").any()  # the best trials still run every fold
    assert pruned.stopped.str.match(r"(in|after) fold [1-3] of 3").all()


def test_one_trial_at_a_time_the_same_sweep_repeats_exactly(tmp_path):
    # Rule (README, docs/sweeps.md): with --max-concurrent 1 a seeded sweep is repeatable:
    # the same configs, pruning decisions and per-fold scores, run after run.
    boards = []
    for k in range(2):
        spec = tiny(tmp_path, trials=4, scheduler="asha", max_concurrent=1, name=f"r{k}")
        board = run_sweep(spec, log=lambda *_: None).leaderboard
        boards.append(board.drop(columns=["trial_id", "seconds", "train_seconds"]))
    pd.testing.assert_frame_equal(boards[0], boards[1])


def test_diverging_trial_is_marked_failed_and_sweep_finishes(tmp_path):
    # A trial whose loss blows up is failed with the reason; the other trials complete.
    space = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    space["name"] = "diverge"
    space["fixed"].update(
        {"optimizer": "sgd", "grad_clip": 0.0, "loss": "mse"}
    )  # huber stays finite
    space["params"] = {"learning_rate": {"type": "categorical", "choices": [1.0e-3, 10.0]}}
    path = tmp_path / "diverge.yaml"
    path.write_text("# python -m orchestrator.tune --space diverge.yaml\n" + yaml.safe_dump(space))
    out = run_sweep(
        tiny(tmp_path, space=str(path), trials=4, scheduler="none", seed=3, max_retries=1),
        log=lambda *_: None,
    )
    board = out.leaderboard
    failed = board[board.status == "failed"]
    assert len(failed) >= 1 and (failed.param_learning_rate == 10.0).all()
    assert failed.reason.str.contains("nan|inf", case=False).all()
    assert (board[board.param_learning_rate == 1e-3].status == "completed").all()


def test_space_value_the_trainer_rejects_fails_before_any_trial(tmp_path):
    # A search-space value outside a parameter's range is a clear ConfigError up front.
    path = tmp_path / "bad.yaml"
    path.write_text(
        "# python -m orchestrator.tune --space bad.yaml\nname: bad\nparams:\n"
        "  dropout: {type: categorical, choices: [0.1, 1.5]}\n"
    )
    with pytest.raises(ConfigError, match=r"bad.yaml.*dropout.*1.5"):
        run_sweep(tiny(tmp_path, space=str(path)), log=lambda *_: None)


def test_crashed_trial_is_retried_from_its_last_fold(tmp_path):
    # An injected crash at fold 1 is retried; the trial completes without redoing fold 0.
    lines: list[str] = []
    out = run_sweep(
        tiny(tmp_path, trials=1, folds=3, scheduler="none", fail_at_fold=1, max_retries=1),
        log=lines.append,
    )
    assert out.leaderboard.status.tolist() == ["completed"]
    assert sum("crashed; retrying" in ln for ln in lines) == 1  # it really crashed once
    rows = pd.read_json(next((out.out_dir / "tune").glob("*/result.json")), lines=True)
    fold_ends = rows[rows.fold_objective.notna()]
    assert fold_ends.fold.tolist() == [0, 1, 2]  # fold 0 was not trained again


@pytest.mark.slow
def test_resume_after_ctrl_c_does_not_rerun_finished_trials(tmp_path):
    # Ctrl-C mid-sweep, then --resume: all trials finish, finished ones are not run again.
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.tune",
        "--space",
        "smoke",
        "--trials",
        "6",
        "--folds",
        "2",
        "--epochs",
        "30",
        "--max-concurrent",
        "1",
        "--scheduler",
        "none",
        "--num-cpus",
        "2",
        "--no-dashboard",
        "--results-dir",
        str(results),
        "--name",
        "r",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )
    first_done = []
    deadline = time.time() + 240
    for line in proc.stdout:
        if " completed |" in line:
            first_done.append(line.split(" trial ", 1)[1].split()[0])
        if len(first_done) == 2 or time.time() > deadline:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, rest[-2000:]
    assert len(first_done) == 2 and all(len(t) == 8 for t in first_done)  # Tune trial ids

    ray.shutdown()  # the resumed CLI starts its own Ray, as a user's would
    try:
        done = subprocess.run(
            [*cmd, "--resume"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=400
        )
    finally:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    board = read_leaderboard(results / "r")
    assert len(board) == 6 and set(board.status) == {"completed"}
    for trial_id in first_done:
        assert f"trial {trial_id} fold" not in done.stdout  # not trained again
    runs = find_child_runs(default_tracking_uri(results), "lstm-sweeps", "r")
    assert len(runs) == 6  # one MLflow child per trial, none duplicated
    assert all(math.isfinite(v) for v in board.objective)


def test_unreachable_mlflow_server_warns_and_sweep_completes(tmp_path):
    # A dead tracking server costs one warning line, never the sweep.
    lines: list[str] = []
    out = run_sweep(
        tiny(tmp_path, trials=1, scheduler="none", mlflow_uri="http://127.0.0.1:9"),
        log=lines.append,
    )
    assert out.leaderboard.status.tolist() == ["completed"]
    assert sum("MLflow tracking at http://127.0.0.1:9 is unreachable" in ln for ln in lines) == 1


def test_trial_that_cannot_fit_fails_fast_with_the_numbers(tmp_path):
    # 2 workers x 1 CPU + the trial's driver do not fit on 2 CPUs: a clear error, no hang.
    with pytest.raises(ConfigError, match=r"needs 2.01 CPUs.*has 2 CPUs"):
        run_sweep(tiny(tmp_path, workers_per_trial=2), log=lambda *_: None)


@pytest.mark.slow
def test_workers_per_trial_trains_each_fold_with_ray_train_ddp(tmp_path):
    # --workers-per-trial 2 runs each fold as a 2-worker TorchTrainer and completes the trial.
    out = run_sweep(
        tiny(tmp_path, trials=1, scheduler="none", workers_per_trial=2, cpus_per_trial=0.9),
        log=lambda *_: None,
    )
    board = out.leaderboard
    assert board.status.tolist() == ["completed"]
    assert np.isfinite(board[["fold0_mse_ratio", "fold1_mse_ratio"]].to_numpy()).all()


def test_a_space_that_samples_the_scaler_ranks_trials_by_skill(tmp_path):
    # Rule: the objective does not depend on the scaler, so ranking by it is ranking by skill
    # (before the fix, standard-scaled trials ranked last on scaled-unit MSE).
    space = tmp_path / "scalers.yaml"
    space.write_text(
        "# python -m orchestrator.tune --space scalers.yaml\nname: scalers\n"
        "fixed: {epochs: 3, num_layers: 1, batch_size: 32, hidden_size: 16, scheduler: none}\n"
        "params:\n  scaler: {type: categorical, choices: [minmax, standard]}\n"
        "  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
    )
    out = run_sweep(
        tiny(tmp_path, space=str(space), trials=5, scheduler="none", seed=1),
        log=lambda *_: None,
    )
    board = out.leaderboard
    done = board[board.status == "completed"]
    assert set(done.param_scaler) == {"minmax", "standard"}  # both were sampled
    assert done.skill.tolist() == sorted(done.skill, reverse=True)
    assert done["rank"].tolist() == list(range(1, len(done) + 1))


def test_time_budget_stops_cleanly_and_writes_every_result(tmp_path):
    # No new trial starts once --time-budget is spent; the running ones stop cleanly
    # (interrupted: --resume goes on with them); the leaderboard, sweep.json and MLflow are written.
    lines: list[str] = []
    out = run_sweep(
        tiny(tmp_path, trials=300, epochs=10, scheduler="none", max_concurrent=1, time_budget=12),
        log=lines.append,
    )
    assert out.stopped_by_budget and out.interrupted
    assert any("time budget of 12 s spent" in ln for ln in lines)
    assert any("Time budget spent: no new trials started. Continue with:" in ln for ln in lines)
    board = out.leaderboard
    assert len(board) < 300 and set(board.status) <= {"completed", "interrupted"}
    record = yaml.safe_load((out.out_dir / "sweep.json").read_text())
    assert record["status"] == "interrupted" and record["stopped_by"] == "time budget"
    runs = find_child_runs(default_tracking_uri(tmp_path / "results"), "lstm-sweeps", "t")
    assert len(runs) == len(board)


def test_a_sweep_keeps_out_of_fold_predictions_that_promotion_turns_into_pbo(tmp_path):
    # oof.parquet holds every completed trial's predictions on every fold's evaluation rows,
    # in original units beside the truth and the naive forecast; with >= 8 complete trials
    # promotion's probability of backtest overfitting is computed from it.
    from orchestrator.stats.overfitting import pbo_of_sweep

    out = run_sweep(tiny(tmp_path, trials=8, scheduler="none"), log=lambda *_: None)
    oof = pd.read_parquet(out.out_dir / "oof.parquet")
    audit = pd.read_csv(out.out_dir / "fold_audit.csv")
    assert sorted(oof.trial_id.unique()) == sorted(out.leaderboard.trial_id)
    per_trial = oof.groupby("trial_id").size()
    assert (per_trial == audit.n_eval.sum()).all()  # every evaluation row of every fold
    assert {"pred_log_return", "true_log_return", "naive_log_return"} <= set(oof.columns)
    # the fold scores are these predictions' MSE over the naive forecast's
    one = oof[(oof.trial_id == oof.trial_id.iloc[0]) & (oof.fold == 0)]
    row = out.leaderboard.set_index("trial_id").loc[oof.trial_id.iloc[0]]
    mse = ((one.pred_log_return - one.true_log_return) ** 2).mean()
    naive = ((one.naive_log_return - one.true_log_return) ** 2).mean()
    assert mse / naive == pytest.approx(row.fold0_mse_ratio, rel=1e-9)
    pbo = pbo_of_sweep(out.out_dir, "regression")
    assert pbo["computed"] and 0.0 <= pbo["pbo"] <= 1.0


def test_the_fixed_seed_smoke_sweep_equals_its_golden_leaderboard(tmp_path):
    # Rule (#14's guard rail): a refactor keeps a seeded sweep's answer on any machine: the
    # same configs, statuses and decisions, every number within GOLDEN_RTOL (bit for bit
    # where the machine's fingerprint equals the recording's); a change of it comes with
    # `python -m tests.sweep_golden` in a commit that says why.
    import json

    from tests.fit_golden import GOLDEN_RTOL, platform
    from tests.sweep_golden import GOLDEN, leaderboard, tie_margin

    want = json.loads(GOLDEN.read_text())
    # Float noise cannot flip a decision of the recorded run: none sits near a tie.
    for d in want["decisions"]:
        assert tie_margin(d) > GOLDEN_RTOL, f"recorded decision within noise of a tie: {d}"
    got = leaderboard(tmp_path / "results")
    assert got["columns"] == want["columns"]
    exact = want["platform"] == platform()

    def same(value, expected, where):
        if isinstance(expected, float) and not exact:
            assert value == pytest.approx(expected, rel=GOLDEN_RTOL, abs=1e-12), where
        else:  # configs, statuses, where a trial stopped; every bit on this platform
            assert value == expected, where

    for k, (row, golden) in enumerate(zip(got["rows"], want["rows"], strict=True)):
        for column, value, expected in zip(want["columns"], row, golden, strict=True):
            same(value, expected, f"row {k} {column}: {value!r}, golden {expected!r}")
    assert len(got["decisions"]) == len(want["decisions"])
    for k, (d, golden) in enumerate(zip(got["decisions"], want["decisions"], strict=True)):
        for key in golden:
            same(d[key], golden[key], f"decision {k} {key}: {d[key]!r}, golden {golden[key]!r}")
