"""Interrupting and resuming a sweep as a user does: Ctrl-C / SIGTERM on the real CLI, the
printed hint pasted back, flags that would change the sweep refused, a finished sweep
resumed, every trial's record true afterwards (leaderboard, MLflow, Optuna)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.records.state_seal import seal_holds
from orchestrator.records.sweep_record import DECIDING
from orchestrator.tracking.sweep_runs import default_tracking_uri, find_child_runs
from orchestrator.tune import main, parse_args
from trainables.bars.synthetic import make_bars

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def sweep_cmd(results: Path, name: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orchestrator.tune",
        "--space",
        "smoke",
        "--trials",
        "4",
        "--folds",
        "2",
        "--epochs",
        "6",
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
        name,
        *extra,
    ]


def interrupt_after_first_trial(cmd: list[str], sig: int) -> tuple[int, str, str]:
    """Run the CLI, send ``sig`` once the first trial completed; (exit code, its id, output)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT
    )
    first, lines = None, []
    deadline = time.time() + 300
    for line in proc.stdout:
        lines.append(line)
        if " completed |" in line:
            first = line.split(" trial ", 1)[1].split()[0]
            proc.send_signal(sig)
            break
        if time.time() > deadline:
            proc.send_signal(sig)
            break
    rest = proc.communicate(timeout=180)[0]
    return proc.returncode, first, "".join(lines) + rest


def run(cmd: list[str], timeout: int = 400, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env or ENV, cwd=ROOT, timeout=timeout
    )


def test_ctrl_c_then_the_printed_hint_continues_the_same_sweep(tmp_path, monkeypatch):
    results = tmp_path / "results"
    data = tmp_path / "bars.csv"
    make_bars(1000, seed=3).to_csv(data)
    code, first, out = interrupt_after_first_trial(
        sweep_cmd(results, "s", "--data", str(data)), signal.SIGINT
    )
    assert code == 130, out[-3000:]
    assert "Traceback" not in out
    folder = results / "s"
    record = json.loads((folder / "sweep.json").read_text())
    assert record["status"] == "interrupted"
    assert record["data"] == str(data.resolve())  # absolute: pasting the hint elsewhere works
    # A trial cut by Ctrl-C is 'interrupted', never 'pruned' (the scheduler stopped nothing).
    board = read_leaderboard(folder)
    assert "pruned" not in set(board.status)
    assert "interrupted" in set(board.status) or len(board) < 4
    assert board.set_index("trial_id").loc[first, "status"] == "completed"
    uri = default_tracking_uri(results)
    cut = [
        r
        for r in find_child_runs(uri, "lstm-sweeps", "s")
        if r.data.tags["status"] == "interrupted"
    ]
    assert all(r.info.status == "KILLED" for r in cut)

    # The hint, pasted as printed (sys.executable for "python").
    hint = next(ln for ln in out.splitlines() if "Finish it with: " in ln).split(
        "Finish it with: "
    )[1]
    assert hint == f"python -m orchestrator.tune --resume --name s --results-dir {results}"
    pasted = [sys.executable, *shlex.split(hint)[1:]]

    # A setting that decides the answer, given with another value, is refused: nothing moves.
    before = (folder / "sweep.json").read_bytes()
    refused = run([*pasted, "--trials", "9"])
    assert refused.returncode == 2
    assert "--trials was 4, not 9" in refused.stderr and len(refused.stderr.splitlines()) == 1
    # So is data whose rows changed since the sweep started.
    original = data.read_text()
    make_bars(1000, seed=4).to_csv(data)
    changed = run(pasted)
    assert changed.returncode == 2 and "changed since it started" in changed.stderr
    data.write_text(original)
    # Another user (another key) is refused before anything is unpickled, in one line, and
    # so is a --trust-state without --resume.
    elsewhere = {**ENV, "XDG_CONFIG_HOME": str(tmp_path / "another-user")}
    foreign = run(pasted, env=elsewhere)
    assert foreign.returncode == 2 and len(foreign.stderr.splitlines()) == 1, foreign.stderr
    assert "not sealed in this folder with this user's key" in foreign.stderr
    assert "--trust-state" in foreign.stderr and "Traceback" not in foreign.stderr
    stray = run([*sweep_cmd(results, "s2"), "--trust-state"])
    assert stray.returncode == 2 and "--trust-state goes with --resume" in stray.stderr
    assert (folder / "sweep.json").read_bytes() == before
    assert not (results / "s2").exists()

    # That user vouches for the folder: it resumes, and is sealed with their key from now on.
    resumed = run([*pasted, "--trust-state", "--no-dashboard", "--num-cpus", "2"], env=elsewhere)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"trial {first} fold" not in resumed.stdout  # a finished trial is not run again
    # The tally counts the trial completed before the resume, and knows its score.
    tallies = [ln for ln in resumed.stdout.splitlines() if " done: " in ln]
    assert tallies and not [ln for ln in tallies if "no complete trial yet" in ln]
    after = json.loads((folder / "sweep.json").read_text())
    assert after["status"] == "finished"
    assert {k: after[k] for k in DECIDING} == {k: record[k] for k in DECIDING}
    board = read_leaderboard(folder)
    assert len(board) == 4 and set(board.status) == {"completed"}
    # One MLflow run per trial, each finished with its final metrics.
    runs = find_child_runs(uri, "lstm-sweeps", "s")
    assert sorted(r.info.run_name for r in runs) == sorted(board.trial_id)
    assert all(r.info.status == "FINISHED" and "mse_ratio" in r.data.metrics for r in runs)
    assert all(r.data.tags["status"] == "completed" for r in runs)
    # The Optuna study holds no stale RUNNING trial.
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]

    assert after["state_seal"] != record["state_seal"]
    monkeypatch.setenv("XDG_CONFIG_HOME", elsewhere["XDG_CONFIG_HOME"])
    assert seal_holds(folder, after) and not seal_holds(folder, record)
    monkeypatch.undo()
    # Resuming a finished sweep says so, shows its answer again and trains nothing.
    again = run(pasted, env=elsewhere)
    assert again.returncode == 0
    assert "already finished" in again.stdout and "Top trials by mse_ratio" in again.stdout
    assert " fold 1/2 " not in again.stdout


def test_sigterm_stops_like_ctrl_c(tmp_path):
    # What `timeout`, schedulers and cloud shutdowns send: partial results, the hint, exit
    # 143, the MLflow parent KILLED (not FAILED), no stack dump.
    results = tmp_path / "results"
    code, first, out = interrupt_after_first_trial(sweep_cmd(results, "t"), signal.SIGTERM)
    assert code == 143, out[-3000:]
    assert "Traceback" not in out
    assert "Finish it with: python -m orchestrator.tune --resume --name t" in out
    assert "Tuner.restore(" not in out  # Tune's own advice is not a way to continue a sweep
    assert (results / "t" / "leaderboard.parquet").is_file()
    assert json.loads((results / "t" / "sweep.json").read_text())["status"] == "interrupted"
    client = MlflowClient(default_tracking_uri(results))
    parent = client.search_runs(
        [client.get_experiment_by_name("lstm-sweeps").experiment_id],
        filter_string="attributes.run_name = 't'",
    )[0]
    assert parent.info.status == "KILLED"


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main([*args, "--no-dashboard"])
    return code, capsys.readouterr().err


def test_resume_of_a_missing_sweep_touches_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, "--resume", "--name", "nope", "--results-dir", "r")
    assert code == 2 and "no sweep at r/nope" in err
    assert list(tmp_path.iterdir()) == []  # no folder, no MLflow store, no Ray session dir


def test_a_new_sweep_may_not_reuse_the_name_of_an_earlier_one(capsys, tmp_path):
    folder = tmp_path / "r" / "x"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text("{}")
    code, err = run_cli(capsys, "--smoke-test", "--name", "x", "--results-dir", str(tmp_path / "r"))
    assert code == 2
    assert f"{folder} already holds sweep 'x'" in err and "--resume --name x" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--space", "nonexistent"], "nonexistent"),
        (["--set", "epochs=abc"], "epochs"),
        (["--set", "epochs=3", "--epochs", "5"], "epochs"),
    ],
)
def test_smoke_test_never_hides_what_the_user_typed(capsys, tmp_path, args, needle):
    code, err = run_cli(capsys, "--smoke-test", *args, "--results-dir", str(tmp_path))
    assert code == 2 and needle in err
    assert list(tmp_path.iterdir()) == []


def test_explicit_flags_win_over_the_smoke_defaults():
    spec = parse_args(["--smoke-test", "--trials", "2", "--folds", "3", "--space", "quick"])
    assert (spec.trials, spec.folds, spec.space, spec.epochs) == (2, 3, "quick", 2)
    assert parse_args(["--smoke-test", "--set", "epochs=5"]).epochs is None  # --set decides


def test_every_trial_failing_exits_non_zero_with_the_first_reason(capsys, tmp_path):
    space = tmp_path / "diverge.yaml"
    space.write_text(
        "# python -m orchestrator.tune --space diverge.yaml\nname: diverge\n"
        "fixed: {epochs: 2, optimizer: sgd, grad_clip: 0.0, num_layers: 1, batch_size: 32, loss: mse}\n"
        "params:\n  learning_rate: {type: categorical, choices: [9.0, 10.0]}\n"
    )
    code, err = run_cli(
        capsys,
        "--space",
        str(space),
        "--trials",
        "2",
        "--folds",
        "2",
        "--scheduler",
        "none",
        "--max-retries",
        "0",
        "--num-cpus",
        "2",
        "--results-dir",
        str(tmp_path / "r"),
        "--name",
        "d",
    )
    assert code == 1
    assert "every trial of sweep 'd' failed; the first: trial" in err
    assert "nan" in err.lower() or "inf" in err.lower()
    assert (tmp_path / "r" / "d" / "leaderboard.parquet").is_file()  # results still written
