"""Full disks and read-only folders (#21 defects 4, 5, 7): one line, exit 2 before any work
(1 once trials ran), nothing left claiming a sweep runs, and --resume once space is free.

Real file systems where this machine allows (a 2 MB tmpfs, a tmpfs remounted read-only;
tests/mounts.py skips with the reason elsewhere), plus a fault-injected full disk that
always runs: the sweep's own record write raising ENOSPC, as a full disk makes it."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

import orchestrator.records.sweep_record as record_module
import orchestrator.sweep.run as sweep_module
from orchestrator.models.predict import main as predict_main
from orchestrator.promotion.run import main as promote_main
from orchestrator.records.folder_lock import effective_status, holder
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tune import main as tune_main
from tests.mounts import fill, read_only, small_fs
from tests.study_check import assert_study_matches
from trainables.errors import ConfigError, DiskError
from trainables.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def tiny(results: Path, **kw) -> SweepSpec:
    base = dict(
        space="smoke",
        trials=2,
        folds=2,
        epochs=1,
        n_bars=1000,
        num_cpus=2,
        dashboard=False,
        scheduler="none",
        max_concurrent=1,
        results_dir=str(results),
        name="d",
    )
    return SweepSpec(**{**base, **kw})


# --- before any work -------------------------------------------------------------------------


def test_a_results_folder_on_a_small_disk_is_refused_before_any_work(tmp_path, capsys):
    with small_fs(tmp_path / "small", size_kb=2048) as disk:
        code = tune_main(["--smoke-test", "--name", "s", "--results-dir", str(disk)])
        err = _one_line(capsys.readouterr().err)
        assert code == 2
        assert f"--results-dir {disk}: only 2.0 MB free on its disk" in err
        assert "a sweep needs at least 50 MB" in err
        assert _tree(disk) == []


def test_read_only_outputs_are_refused_before_any_work(tmp_path, capsys):
    # Rule: sweep, promote, trainables.train and predict --out: one line naming the folder,
    # exit 2, before data are read or a model trains.
    def a_sweep(path: Path) -> None:
        (path / "p").mkdir()
        (path / "p" / "sweep.json").write_text(json.dumps({"name": "p", "space": "smoke"}))

    with read_only(tmp_path / "ro", setup=a_sweep) as ro:
        before = _tree(ro)
        runs = {
            "sweep": lambda: tune_main(["--smoke-test", "--name", "s", "--results-dir", str(ro)]),
            "promote": lambda: promote_main(["--name", "p", "--results-dir", str(ro)]),
            "train": lambda: train_main(["--out", str(ro / "run"), "--epochs", "1"]),
            "predict": lambda: predict_main(
                ["--model", str(ro / "p" / "models" / "1"), "--out", str(ro / "x.csv")]
            ),
        }
        for what, run in runs.items():
            code = run()
            captured = capsys.readouterr()
            err = captured.err.strip().splitlines()[-1] + "\n"
            _one_line(err)
            assert code == 2, (what, err)
            assert "cannot write there" in err and str(ro) in err, (what, err)
            assert "read-only file system" in err or "permission denied" in err, (what, err)
            assert "Data:" not in captured.out + captured.err  # trainables.train read nothing
        assert _tree(ro) == before


def test_impossible_resources_are_refused_before_ray_starts_and_nothing_is_written(
    tmp_path, capsys
):
    # Rule: --gpus-per-trial 1 without a GPU, or more CPUs than a local Ray gets, fail
    # before Ray, data or any record (never a sweep.json claiming running).
    cpus = os.cpu_count() or 1
    for args, needle in (
        (["--gpus-per-trial", "1"], "needs 1 CPUs and 1 GPUs"),
        (["--cpus-per-trial", str(cpus + 1)], f"needs {cpus + 1} CPUs"),
        (["--num-cpus", "1", "--cpus-per-trial", "2"], "has 1 CPUs"),
    ):
        if args[0] == "--gpus-per-trial":
            import torch

            if torch.cuda.is_available():
                continue
        code = tune_main(["--smoke-test", "--results-dir", str(tmp_path / "r"), *args])
        captured = capsys.readouterr()
        err = _one_line(captured.err)
        assert code == 2 and needle in err and "this machine" in err, err
        assert "Ray:" not in captured.out and "built-in data" not in captured.out
    assert not (tmp_path / "r").exists()


# --- a disk that fills up while the sweep runs -------------------------------------------------


class _FullDisk:
    """``orchestrator.records.sweep_record._write`` failing with ENOSPC as on a full disk: every write
    (``first_trial=False``), or from the first trial's status on."""

    def __init__(self, real, *, first_trial: bool) -> None:
        self.real, self.first_trial = real, first_trial

    def __call__(self, path, record):
        if not self.first_trial or record.get("trial_status"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return self.real(path, record)


def _no_ray(*args, **kwargs):
    raise ConfigError("injected: Ray would not start")


def test_a_full_disk_before_the_first_trial_leaves_nothing_behind(tmp_path, monkeypatch):
    # The record's first write fails: exit 2, no folder claiming a sweep.
    monkeypatch.setattr(record_module, "_write", _FullDisk(record_module._write, first_trial=False))
    with pytest.raises(DiskError) as err:
        run_sweep(tiny(tmp_path / "r"), log=lambda *_: None)
    assert err.value.exit_code == 2
    assert str(err.value).startswith(f"{tmp_path / 'r' / 'd'}: no space left on the device")
    assert "could not write" in str(err.value) and "sweep.json" in str(err.value)
    assert not (tmp_path / "r" / "d").exists()


@pytest.fixture
def one_ray():
    # One real local Ray for the runs of a test (run_sweep uses it instead of starting one).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_disk_full_mid_sweep_is_one_line_exit_1_and_resume_finishes_it(
    tmp_path, monkeypatch, one_ray
):
    # Fault injected: from the first trial's status on, sweep.json cannot be written (as on a
    # full disk). The sweep stops in one line (exit 1), its record still says running, its
    # lock is free: readers and --resume take it as interrupted; --resume finishes it.
    results = tmp_path / "r"
    monkeypatch.setattr(record_module, "_write", _FullDisk(record_module._write, first_trial=True))
    with pytest.raises(DiskError) as err:
        run_sweep(tiny(results), log=lambda *_: None)
    monkeypatch.undo()
    folder = results / "d"
    assert err.value.exit_code == 1, str(err.value)
    assert str(err.value).startswith(f"{folder}: no space left on the device: could not write")
    assert "--resume --name d" in str(err.value)
    record = json.loads((folder / "sweep.json").read_text())
    assert record["status"] == "running" and holder(folder) is None
    assert effective_status(folder, record["status"]) == "interrupted"
    # A resume that fails before its first trial (Ray would not start) leaves the record
    # saying what is true: interrupted, not running.
    monkeypatch.setattr(sweep_module, "start_ray", _no_ray)
    lines: list[str] = []
    with pytest.raises(ConfigError, match="injected: Ray would not start"):
        run_sweep(tiny(results, resume=True), log=lines.append)
    monkeypatch.undo()
    assert "says running, but no process holds its lock" in lines[0]
    assert json.loads((folder / "sweep.json").read_text())["status"] == "interrupted"
    out = run_sweep(tiny(results, resume=True), log=lambda *_: None)
    assert json.loads((folder / "sweep.json").read_text())["status"] == "finished"
    assert out.leaderboard.status.tolist() == ["completed", "completed"]
    assert_study_matches(folder)


@pytest.mark.slow
def test_a_real_disk_that_fills_mid_sweep_and_resume_once_space_is_free(tmp_path):
    # A real tmpfs fills after the first trial: one line, exit 1, no traceback; the record
    # says running with a free lock; once the filler goes, --resume finishes the sweep.
    with small_fs(tmp_path / "disk", size_kb=8192) as disk:
        env = {**ENV, "LSTM_ORCH_MIN_FREE_MB": "0"}
        cmd = [sys.executable, "-m", "orchestrator.tune", "--smoke-test", "--trials", "3"]
        cmd += ["--max-concurrent", "1", "--scheduler", "none", "--no-dashboard"]
        cmd += ["--num-cpus", "2", "--name", "full", "--results-dir", str(disk)]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if " completed |" in line:
                filler = fill(disk)
                break
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 1, "".join(lines) + out + err
        assert "Traceback" not in out + err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: {disk / 'full'}: no space left on the device: could not")
        assert last.endswith(f"--resume --name full --results-dir {disk}")
        folder = disk / "full"
        assert json.loads((folder / "sweep.json").read_text())["status"] == "running"
        assert holder(folder) is None
        filler.unlink()
        done = subprocess.run(
            [*cmd[:3], "--resume", "--name", "full", "--results-dir", str(disk)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=400,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "says running, but no process holds its lock" in done.stdout
        assert json.loads((folder / "sweep.json").read_text())["status"] == "finished"
        board = assert_study_matches(folder)
        assert (board.status == "completed").sum() == 3
