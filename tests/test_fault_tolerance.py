"""Fault tolerance, for real: a Ray node killed mid-sweep, the driver killed with SIGKILL,
and trial processes that crash, with the retry limit set by --max-retries.

Faults are real kills of real processes (SIGKILL, as the OOM killer or a lost machine
would), except one test that uses the sweep's own ``fail_at_fold`` crash injection. The
clusters are real Ray nodes started with `ray start` (see tests/test_multinode.py).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tracking.sweep_runs import default_tracking_uri, find_child_runs
from tests.study_check import assert_study_matches
from tests.test_multinode import (
    ROOT,
    WORKER_IP,
    cmdline,
    descendants,
    kill_tree,
    ray_cluster,
    sweep_cmd,
    trial_id_of,
    trial_rows,
    uniform_space,
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs Linux (/proc, 127.0.0.2, ray start)"
)


def _popen(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _child_runs(results: Path, name: str) -> list[str]:
    runs = find_child_runs(default_tracking_uri(results), "lstm-sweeps", name)
    return [r.info.run_name for r in runs]


@pytest.mark.slow
@linux_only
def test_worker_node_killed_mid_sweep_its_trial_finishes_on_another_node(tmp_path):
    # A node dies mid-trial: the trial goes on elsewhere from its last fold; all trials finish.
    results = tmp_path / "results"
    space = uniform_space(tmp_path / "uniform.yaml", epochs=6)
    lines: list[str] = []
    # As in cluster.yaml, the head runs no trials (0 CPUs): every trial runs on worker0 until
    # it dies, then on worker1, which joins the way the autoscaler would replace a lost node.
    with ray_cluster(workers=1, head_cpus=0) as cluster:
        cmd = sweep_cmd(
            results,
            "nodekill",
            *["--space", str(space), "--trials", "2", "--folds", "4"],
            *["--max-concurrent", "1", "--max-retries", "1", "--address", cluster.address],
        )
        proc = _popen(cmd, cluster.env)
        try:
            for line in proc.stdout:
                lines.append(line)
                if " fold 2/4 " in line and "worker0" in cluster.nodes:
                    victim = trial_id_of(line)  # 2 folds done, inside its third
                    cluster.kill_node("worker0")
                    cluster.add_worker("worker1", ip="127.0.0.3")
            proc.wait(timeout=400)
        finally:
            kill_tree(proc)
    out = "".join(lines)
    assert proc.returncode == 0, out[-4000:]
    assert "worker0" not in cluster.nodes  # the node was really killed mid-sweep
    assert "crashed; retrying from its last finished fold" in out
    board = read_leaderboard(results / "nodekill")
    assert len(board) == 2 and set(board.status) == {"completed"}
    assert all(math.isfinite(v) for v in board.objective)
    assert sorted(_child_runs(results, "nodekill")) == sorted(board.trial_id)
    rows = trial_rows(results / "nodekill" / "tune")
    on_dead = [r["folds_done"] for r in rows[victim] if r["node_ip"] == WORKER_IP]
    on_new = [r["folds_done"] for r in rows[victim] if r["node_ip"] == "127.0.0.3"]
    assert len(on_dead) + len(on_new) == len(rows[victim])
    # It started on the dead node and finished on the new one, with every fold reported.
    assert on_dead[0] == 1 and on_new[-1] == 4 and sorted({*on_dead, *on_new}) == [1, 2, 3, 4]
    # The retry went on after its checkpointed folds, never from fold 1. Tune records a
    # fold's checkpoint one round trip after its result, so a node that dies in between
    # costs that one fold (here fold 2) again.
    assert on_new == list(range(on_new[0], 5)) and on_new[0] in (2, 3)
    (other,) = set(rows) - {victim}
    assert [r["folds_done"] for r in rows[other]] == [1, 2, 3, 4]


@pytest.mark.slow
@linux_only
def test_driver_killed_mid_sweep_resume_finishes_without_rerunning_finished_trials(tmp_path):
    # SIGKILL the driver, then --resume: every trial finishes, finished ones are not re-run,
    # and their results (leaderboard, MLflow) are the ones from before the kill.
    results = tmp_path / "results"
    space = uniform_space(tmp_path / "uniform.yaml", epochs=4)
    with ray_cluster(workers=1) as cluster:
        cmd = sweep_cmd(
            results,
            "driverkill",
            *["--space", str(space), "--trials", "6", "--folds", "2"],
            *["--max-concurrent", "2", "--address", cluster.address],
        )
        proc = _popen(cmd, cluster.env)
        finished: dict[str, str] = {}  # trial id -> its objective as printed (5 digits)
        means: dict[str, str] = {}
        try:
            for line in proc.stdout:
                if " fold 2/2 " in line:
                    means[trial_id_of(line)] = line.rsplit(" mse_ratio=", 1)[1].strip()
                if " completed |" in line:
                    finished[trial_id_of(line)] = means[trial_id_of(line)]
                    if len(finished) == 2:
                        break
        finally:
            kill_tree(proc)  # SIGKILL: no chance to save anything on the way out
        assert len(finished) == 2, "the sweep ended before two trials finished"
        resumed = subprocess.run(
            [*cmd, "--resume"],
            env=cluster.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=400,
        )
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    for trial_id in finished:
        assert f"trial {trial_id} fold" not in resumed.stdout  # not trained again
    board = read_leaderboard(results / "driverkill")
    assert set(finished) <= set(board.trial_id), "trials finished before the kill are lost"
    assert len(board) == 6 and set(board.status) == {"completed"}
    by_id = board.set_index("trial_id")
    for trial_id, objective in finished.items():
        assert f"{by_id.objective[trial_id]:.5g}" == objective  # the result from before the kill
    runs = _child_runs(results, "driverkill")
    assert sorted(runs) == sorted(board.trial_id)  # one MLflow child per trial, none twice
    # The trials the kill left RUNNING in the Optuna study were closed by the resumed run.
    study = optuna.load_study(
        study_name="driverkill", storage=f"sqlite:///{results / 'driverkill' / 'optuna.db'}"
    )
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states and len(states) >= 6


def test_crashed_trial_with_max_retries_0_is_failed_and_keeps_its_finished_folds(tmp_path):
    # With max_retries=0 a crash is final: the trial is failed, its fold 0 score is kept.
    lines: list[str] = []
    out = run_sweep(
        SweepSpec(
            space="smoke",
            trials=1,
            folds=3,
            epochs=2,
            n_bars=1000,
            num_cpus=2,
            dashboard=False,
            scheduler="none",
            results_dir=str(tmp_path / "results"),
            name="noretry",
            fail_at_fold=1,
            max_retries=0,
        ),
        log=lines.append,
    )
    board = out.leaderboard
    assert board.status.tolist() == ["failed"]
    assert "injected fault at fold 1" in board.reason.iloc[0]
    assert board.folds_done.tolist() == [1]
    assert math.isfinite(board.fold0_mse_ratio.iloc[0])
    assert not any("crashed; retrying" in ln for ln in lines)  # no retry was made


def _kill_trial_process_after_fold_2(proc: subprocess.Popen, lines: list[str]) -> None:
    """SIGKILL the process running the first trial once it has reported fold 2."""
    killed = False
    for line in proc.stdout:
        lines.append(line)
        if not killed and " fold 2/4 " in line:
            deadline = time.time() + 30
            while not killed and time.time() < deadline:
                for pid in descendants(proc.pid):
                    if cmdline(pid).startswith("ray::ImplicitFunc"):
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                time.sleep(0.1)
    assert killed, "found no trial process to kill"


@pytest.mark.slow
@linux_only
@pytest.mark.parametrize(
    ("max_retries", "status"), [("0", "failed"), ("1", "completed")], ids=["0", "1"]
)
def test_cli_max_retries_decides_whether_a_killed_trial_is_retried(tmp_path, max_retries, status):
    # --max-retries 0: a trial whose process is killed is failed; 1: it goes on from its folds.
    results = tmp_path / "results"
    space = uniform_space(tmp_path / "uniform.yaml", epochs=6)
    cmd = sweep_cmd(
        results,
        "kill",
        *["--space", str(space), "--trials", "2", "--folds", "4", "--max-concurrent", "1"],
        *["--num-cpus", "2", "--no-dashboard", "--max-retries", max_retries],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    proc = _popen(cmd, {**env, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    try:
        _kill_trial_process_after_fold_2(proc, lines)
        proc.wait(timeout=400)
    finally:
        kill_tree(proc)
    out = "".join(lines)
    assert proc.returncode == 0, out[-4000:]
    board = read_leaderboard(results / "kill")
    first = trial_id_of(next(ln for ln in lines if " fold 2/4 " in ln))
    by_id = board.set_index("trial_id")
    assert by_id.status[first] == status
    assert sorted(board.status) == sorted([status, "completed"])  # the other trial completed
    if status == "failed":
        assert by_id.folds_done[first] == 2  # its finished folds are kept, not lost
        assert "crashed; retrying" not in out
    else:
        assert "crashed; retrying from its last finished fold" in out
        folds = [r["folds_done"] for r in trial_rows(results / "kill" / "tune")[first]]
        # Killed after fold 2: the retry goes on with fold 3 (or redoes fold 2 if the kill
        # came before Tune recorded fold 2's checkpoint), never from fold 1.
        assert folds == sorted(folds) and sorted(set(folds)) == [1, 2, 3, 4]
        assert folds.count(1) == 1 and folds.count(2) <= 2


@pytest.mark.slow
@linux_only
def test_sigkill_mid_trial_twice_then_resume_leaves_a_study_that_matches_the_leaderboard(
    tmp_path,
):
    # #21 defect 6: a SIGKILL mid-trial left a duplicate trial in the Optuna study (9
    # COMPLETE for 8 trials). The whole process tree is killed (driver and its local Ray)
    # right after a trial finished, while the next ones run, twice; --resume finishes it.
    # The study's states then equal the leaderboard's statuses, one for one.
    results = tmp_path / "results"
    space = uniform_space(tmp_path / "uniform.yaml", epochs=3)
    cmd = sweep_cmd(
        results,
        "kill9",
        *["--space", str(space), "--trials", "6", "--folds", "2", "--max-concurrent", "2"],
        *["--num-cpus", "2", "--no-dashboard"],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONUNBUFFERED"] = "1"
    for round_, resume in enumerate(([], ["--resume"])):
        proc = _popen([*cmd, *resume], env)
        try:
            for line in proc.stdout:
                if " completed |" in line:
                    break  # a trial just finished: the searcher asks for the next one
        finally:
            kill_tree(proc)  # SIGKILL: no chance to save anything on the way out
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the sweep ended by itself"
    done = subprocess.run(
        [*cmd, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    board = assert_study_matches(results / "kill9")
    trials = board[board.status != "baseline"]
    assert len(trials) == 6 and set(trials.status) == {"completed"}
    study = optuna.load_study(
        study_name="kill9", storage=f"sqlite:///{results / 'kill9' / 'optuna.db'}"
    )
    assert len(study.trials) == 6  # no orphan, no duplicate
