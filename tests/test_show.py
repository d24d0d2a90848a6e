"""``python -m orchestrator.show``: a finished, a running and an odd sweep folder, read only.

The folders are written with the sweep's own writers (build_leaderboard, with_baselines,
write_results, SweepRecord) and a real Optuna sqlite study; the promoted case is in
test_promote.py (a real promotion), a real running sweep in the slow test below.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from orchestrator.records.folder_lock import FolderLock
from orchestrator.records.leaderboard import (
    TrialRecord,
    build_leaderboard,
    with_baselines,
    write_results,
)
from orchestrator.show import describe_sweep, list_sweeps, main
from orchestrator.sweep.cv_baselines import CVBaseline
from trainables.prep.splits import PurgedWalkForward, audit_frame

ROOT = Path(__file__).resolve().parents[1]


def _fold(ratio: float) -> dict:
    return {"mse_ratio": ratio, "skill": 1 - ratio}


def _baselines() -> list[CVBaseline]:
    # ridge beats naive: build_leaderboard sorts it first, the settings must still follow ids
    naive = CVBaseline("naive", [_fold(1.0), _fold(1.0)], "persistence", "mse_ratio")
    ridge = CVBaseline("ridge", [_fold(0.8), _fold(0.9)], "window 8, alpha 10", "mse_ratio")
    return [naive, ridge]


def _record(name: str, **extra) -> dict:
    return {
        "name": name,
        "space": "smoke",
        "trials": 4,
        "cv": "walk-forward",
        "folds": 2,
        "scheduler": "asha",
        "seed": 0,
        "objective": "mse_ratio",
        "mode": "min",
        "data_source": "built-in",
        "data_summary": "built-in data: 1,200 bars",
        "created": "2026-01-02T03:04:05",
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "baselines": [b.to_dict() for b in _baselines()],
        **extra,
    }


def finished_sweep(results: Path, name: str = "done") -> Path:
    out = results / name
    records = [
        TrialRecord("aaaa1111", {"hidden_size": 16}, [_fold(0.7), _fold(0.75)], "completed"),
        TrialRecord("bbbb2222", {"hidden_size": 32}, [_fold(0.9), _fold(0.8)], "completed"),
        TrialRecord("cccc3333", {"hidden_size": 8}, [_fold(1.2)], "pruned"),
        TrialRecord("dddd4444", {"hidden_size": 24}, [], "failed", reason="loss is NaN"),
    ]
    board = build_leaderboard(records, n_folds=2, objective="mse_ratio", mode="min")
    board = with_baselines(board, _baselines(), n_folds=2, objective="mse_ratio", mode="min")
    audit = audit_frame(PurgedWalkForward(2, sequence_length=16, horizon=1).audit(np.arange(600)))
    record = _record(name, status="finished")
    write_results(out, leaderboard=board, best_config=None, audit=audit, spec=record)
    return out


def running_sweep(results: Path, name: str = "live") -> Path:
    """sweep.json of a sweep half-way (two trials finished), and its Optuna study so far."""
    out = results / name
    out.mkdir(parents=True)
    statuses = {"aaaa1111": "completed", "cccc3333": "pruned"}
    record = _record(name, status="running", trial_status=statuses)
    (out / "sweep.json").write_text(json.dumps(record))
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")
    dist = {"hidden_size": optuna.distributions.IntDistribution(8, 32)}
    study.add_trial(
        optuna.trial.create_trial(params={"hidden_size": 16}, distributions=dist, value=0.72)
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"hidden_size": 8}, distributions=dist, state=optuna.trial.TrialState.PRUNED
        )
    )
    study.ask()  # a trial running now
    return out


def test_a_finished_sweep_shows_settings_statuses_top_trials_baselines_and_folds(tmp_path):
    # Rule: one sweep's page has its settings line, the status counts, the ranked trials
    # with the baselines on the same folds below them (each with its own setting), and the
    # fold audit; without promotion it says how to promote.
    out = finished_sweep(tmp_path / "results")
    text = "\n".join(describe_sweep(out))
    assert text.startswith(
        "Sweep 'done': space smoke, 4 trials, walk-forward CV with 2 folds, objective "
        "mse_ratio (min), scheduler asha, seed 0; created 2026-01-02 03:04:05"
    )
    assert "Trials: 4 of 4 finished: 2 completed, 1 pruned, 1 failed" in text
    table = text.split("below them the baselines on the same folds:\n")[1].splitlines()
    assert table[1].split()[:2] == ["1", "aaaa1111"] and table[2].split()[:2] == ["2", "bbbb2222"]
    assert table[3].split()[0] == "baseline:naive" and table[4].split()[0] == "baseline:ridge"
    assert "cccc3333" not in text  # pruned trials are not ranked
    assert "Baseline settings: naive: persistence; ridge: window 8, alpha 10" in text
    assert "Fold audit" in text and "purged" in text
    assert "Not promoted yet: python -m orchestrator.promote --name done" in text


def test_a_running_sweep_shows_its_progress_from_sweep_json_and_the_study(tmp_path):
    # Rule: while a sweep runs (no leaderboard yet; it holds its folder's lock) show reads
    # sweep.json's statuses and baselines and the completed trials of its Optuna study,
    # read-only; the same record without a holder is a sweep that was killed.
    out = running_sweep(tmp_path / "results")
    before = (out / "optuna.db").read_bytes()
    with FolderLock(out, purpose="sweep"):
        text = "\n".join(describe_sweep(out))
        listed = "\n".join(list_sweeps(tmp_path / "results"))
    assert f"Status: running: a sweep (pid {os.getpid()} on " in text and "; last update" in text
    assert " running " in listed
    killed = "\n".join(describe_sweep(out))
    assert "Status: interrupted (its process ended without closing it); continue: " in killed
    assert " interrupted " in "\n".join(list_sweeps(tmp_path / "results"))
    assert "Trials: 2 of 4 finished: 1 completed, 1 pruned, 0 failed" in text
    assert (
        "Baseline ridge on the same folds: mse_ratio 0.85, skill +0.1500 (window 8, alpha 10)"
        in text
    )
    assert "Completed trials so far (from the Optuna study)" in text and "0.72" in text
    assert (out / "optuna.db").read_bytes() == before  # nothing written
    assert not (out / "leaderboard.parquet").exists()


def test_show_never_waits_for_a_lock_nor_imports_ray(tmp_path):
    # Rule: show is pure reading: with every file of the sweep folder locked exclusively by
    # another process (as a running sweep may hold its lock file), it answers at once, and
    # it never imports Ray.
    results = tmp_path / "results"
    out = running_sweep(results)
    (out / "sweep.lock").touch()
    held = [open(p, "rb+") for p in out.iterdir() if p.is_file()]  # noqa: SIM115
    for f in held:
        fcntl.flock(f, fcntl.LOCK_EX)
    code = (
        "import sys; from orchestrator.show import main; "
        f"rc = main(['--results-dir', {str(results)!r}, '--name', 'live']); "
        "rc2 = main(['--results-dir', " + repr(str(results)) + "]); "
        "assert 'ray' not in sys.modules, 'ray imported'; sys.exit(rc or rc2)"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        for f in held:
            f.close()
    assert done.returncode == 0, done.stderr
    assert "Status: running: a process that left no note" in done.stdout and "live" in done.stdout


def test_the_list_has_one_row_per_sweep_and_one_line_per_odd_folder(tmp_path):
    # Rule: without --name, every sweep with status, trials, best skill and date; a folder
    # that is not a sweep, or whose sweep.json is cut short, costs one line.
    results = tmp_path / "results"
    finished_sweep(results)
    running_sweep(results)
    (results / "mlartifacts").mkdir()  # MLflow's, not a sweep: not listed
    (results / "stray").mkdir()
    (results / "broken").mkdir()
    (results / "broken" / "sweep.json").write_text('{"name": "bro')
    table = "\n".join(list_sweeps(results))
    lines = table.splitlines()
    header = lines[1].split()
    assert header[:3] == ["sweep", "status", "trials"] and "created" in header
    done = next(line for line in lines if line.split()[0] == "done")
    assert "finished" in done and "4/4" in done and "+0.2750" in done
    live = next(line for line in lines if line.split()[0] == "live")
    assert "interrupted" in live and "2/4" in live  # its record says running; nobody holds it
    assert "mlartifacts" not in table
    assert sum("stray: no sweep.json" in line for line in lines) == 1
    assert sum(line.startswith("broken: unreadable") for line in lines) == 1
    # python -m trainables.train's default folder (results/train/<run>) is said as such,
    # not as a broken sweep
    (results / "train" / "synthetic-20260102-030405").mkdir(parents=True)
    (results / "train" / "synthetic-20260102-030405" / "config.json").write_text("{}")
    lines = list_sweeps(results)
    assert "train: 1 single-model run(s) of python -m trainables.train" in lines
    assert not any(line.startswith("train: no sweep.json") for line in lines)


def test_an_unpromoted_ticker_of_a_universe_says_the_promote_that_works(tmp_path):
    # A universe's ticker is promoted with --name <universe> --ticker T (the hint used to
    # say --name <ticker folder>, which promote refuses: no such sweep).
    universe = tmp_path / "results" / "u"
    finished_sweep(universe / "tickers", name="BRK_2eB")  # BRK.B's folder
    (universe / "universe.json").write_text(json.dumps({"name": "u"}))
    text = "\n".join(describe_sweep(universe / "tickers" / "BRK_2eB"))
    assert "Not promoted yet: python -m orchestrator.promote --name u --ticker BRK.B" in text


def test_an_unknown_sweep_or_folder_is_one_line_and_exit_2(tmp_path, capsys):
    finished_sweep(tmp_path / "results")
    assert main(["--results-dir", str(tmp_path / "results"), "--name", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no sweep 'nope' in {tmp_path / 'results'}/ (sweeps there: done)"]
    assert main(["--results-dir", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_show_reads_a_real_sweep_while_it_runs(tmp_path):
    # Rule: a real smoke sweep in another process; show answers while it runs (status
    # running) and after it (the leaderboard with its baselines).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.tune", "--smoke-test", "--trials", "6"]
        + ["--name", "real", "--no-dashboard", "--max-concurrent", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen_running = False
        while sweep.poll() is None:
            record = tmp_path / "results/real/sweep.json"
            if record.is_file() and json.loads(record.read_text()).get("status") == "running":
                shown = subprocess.run(
                    [sys.executable, "-m", "orchestrator.show", "--name", "real"],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert shown.returncode == 0, shown.stderr
                if "Status: running: a sweep (pid " in shown.stdout:
                    seen_running = True
                    break
            time.sleep(0.5)
        assert sweep.wait(timeout=600) == 0
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert seen_running
    shown = subprocess.run(
        [sys.executable, "-m", "orchestrator.show", "--name", "real"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Status: finished" in shown.stdout and "baseline:ridge" in shown.stdout
