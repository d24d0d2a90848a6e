"""A sweep owns its folder (#21 defect 1): a second sweep, a --resume or a promotion of a
folder in use refuses in one line naming the holder, exit 2, and touches nothing.

The real test runs a real sweep in a subprocess and aims --resume and promote at it while it
runs; the others hold the real lock in this process (a promotion, or a killed process)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.promotion.run import main as promote_main
from orchestrator.records.folder_lock import (
    LOCK_FILE,
    FolderBusy,
    FolderLock,
    effective_status,
    holder,
    last_holder,
)
from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.records.state_seal import new_seal
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tune import main as tune_main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (but the lock's note) -> a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_FILE
    }


def test_a_second_lock_is_refused_naming_the_holder_and_readers_only_look(tmp_path):
    # Rule: one holder at a time; the refusal names pid, host and what holds it; holder()
    # answers without taking the lock; release frees it and leaves no stale note.
    folder = tmp_path / "s"
    with FolderLock(folder, purpose="sweep"):
        with pytest.raises(FolderBusy) as err:
            FolderLock(folder, purpose="promotion").acquire()
        text = str(err.value)
        assert "\n" not in text
        assert f"a sweep (pid {os.getpid()} on {socket.gethostname()}, since " in text
        assert "a promotion now would mix its writes" in text
        for _ in range(3):  # asking does not take it, nor change who holds it
            assert holder(folder).pid == os.getpid() and holder(folder).purpose == "sweep"
        assert effective_status(folder, "running") == "running"
    assert holder(folder) is None and last_holder(folder) is None
    assert effective_status(folder, "running") == "interrupted"  # nobody runs it any more
    FolderLock(folder, purpose="promotion").acquire().release()


def test_a_killed_holder_frees_the_folder_and_its_note_says_who_it_was(tmp_path):
    # Rule: the kernel drops the lock of a SIGKILLed process; only its note remains.
    folder = tmp_path / "s"
    code = (
        "import sys, time; from orchestrator.records.folder_lock import FolderLock; "
        f"FolderLock({str(folder)!r}, purpose='sweep').acquire(); print('held', flush=True); "
        "time.sleep(600)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert holder(folder).pid == proc.pid
        with pytest.raises(FolderBusy, match=f"pid {proc.pid}"):
            FolderLock(folder, purpose="resume").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert holder(folder) is None
    assert last_holder(folder).pid == proc.pid  # stale text, free lock
    FolderLock(folder, purpose="resume").acquire().release()


def test_promotion_refuses_a_folder_another_promotion_holds(tmp_path, capsys):
    # Rule: two promotions of one sweep: the second says who holds it, exit 2, no file.
    folder = tmp_path / "r" / "p"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"name": "p", "space": "smoke"}))
    before = _digest(folder)
    with FolderLock(folder, purpose="promotion"):
        code = promote_main(["--name", "p", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and f"{folder} is in use by a promotion (pid {os.getpid()}" in err
    assert _digest(folder) == before


def test_resume_refuses_a_folder_in_use_before_reading_any_data(tmp_path, capsys):
    folder = tmp_path / "r" / "s"
    folder.mkdir(parents=True)
    record = {"name": "s", "space": "smoke", "status": "running", "created": "2026-12-06"}
    record["state_seal"] = new_seal(folder, record)  # this user's own sweep (state_seal.py)
    (folder / "sweep.json").write_text(json.dumps(record))
    before = _digest(folder)
    with FolderLock(folder, purpose="sweep"):
        code = tune_main(["--resume", "--name", "s", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is in use by a sweep" in err, err
    assert _digest(folder) == before


def test_a_sweep_holds_its_folder_while_it_runs_and_frees_it_after(tmp_path):
    # Rule: from its first write (the record) to its end, a new sweep owns its folder.
    results = tmp_path / "r"
    seen: list = []

    def log(line: str) -> None:
        if line.startswith("["):  # a progress line: trials run
            seen.append(holder(results / "s"))

    spec = SweepSpec(
        space="smoke",
        trials=1,
        folds=2,
        epochs=1,
        n_bars=1000,
        num_cpus=2,
        dashboard=False,
        scheduler="none",
        results_dir=str(results),
        name="s",
    )
    assert run_sweep(spec, log=log).leaderboard.status.tolist() == ["completed"]
    assert seen and all(
        h is not None and (h.pid, h.purpose) == (os.getpid(), "sweep") for h in seen
    )
    assert holder(results / "s") is None


def _start_sweep(results: Path, name: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "orchestrator.tune", "--smoke-test", "--trials", "4"]
    # 150 epochs, no early stopping: ~20 s of trials after the first fold line (12 epochs with
    # the smoke space's patience ended in 1.5 s, before two refused commands had even started).
    cmd += ["--epochs", "150", "--set", "patience=0", "--max-concurrent", "1"]
    cmd += ["--scheduler", "none", "--num-cpus", "2"]
    cmd += ["--no-dashboard", "--results-dir", str(results), "--name", name]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT
    )


@pytest.mark.slow
def test_resume_and_promote_of_a_running_sweep_are_refused_and_the_sweep_finishes(tmp_path):
    # Issue #21's twin: --resume (and promote) of a sweep that runs used to cut it in half
    # for good. Now both refuse in one line naming the sweep's process, and it finishes.
    results = tmp_path / "results"
    proc = _start_sweep(results, "twin")
    lines: list[str] = []
    try:
        deadline = time.time() + 300
        for line in proc.stdout:
            lines.append(line)
            if " fold 1/2 " in line or time.time() > deadline:
                break  # trials run: the folder is in use
        assert proc.poll() is None, "".join(lines)
        folder = results / "twin"
        record_before = json.loads((folder / "sweep.json").read_text())
        refused = [
            subprocess.Popen(
                [sys.executable, "-m", *cmd, "--results-dir", str(results)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=ENV,
                cwd=ROOT,
            )
            for cmd in (
                ["orchestrator.tune", "--resume", "--name", "twin"],
                ["orchestrator.promote", "--name", "twin", "--seeds", "1"],
            )
        ]
        for other in refused:  # both at once, while the sweep runs
            out, err = other.communicate(timeout=300)
            assert other.returncode == 2, out + err
            assert (
                err.strip()
                .splitlines()[-1]
                .startswith(f"error: {folder} is in use by a sweep (pid {proc.pid} on ")
            ), err
            assert "Ray" not in out + err  # refused before anything started
        assert proc.poll() is None, "the sweep ended before the refusals: make it longer"
        rest, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out[-3000:]
    assert "Trials: 4 completed" in out
    record = json.loads((folder / "sweep.json").read_text())
    assert record["status"] == "finished" and record["created"] == record_before["created"]
    assert sorted(record["trial_status"].values()) == ["completed"] * 4
    board = read_leaderboard(folder)
    assert len(board) == 4 and set(board.status) == {"completed"}
    assert not (folder / "models").exists() and not (folder / "promoted.json").exists()
    assert holder(folder) is None
