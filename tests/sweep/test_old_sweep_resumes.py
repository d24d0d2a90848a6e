"""A sweep interrupted under an earlier layout of the code resumes under this one.

tests/fixtures/sweep_before_layout/ holds a smoke sweep stopped with Ctrl-C after its first
trial by the code before orchestrator/ and trainables/ were split into subpackages (its
README says how it was made). Tune's experiment state in it names project classes by their
old module paths (the scheduler, the searcher, the callbacks); ``--resume`` must unpickle
them, keep the finished trial and run the two left, as the same code did before the move.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from orchestrator.records.leaderboard import read_leaderboard

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sweep_before_layout"
# The folder the fixture was made in. A sweep resumes only where it was started (its record,
# Tune's state and the Optuna storage hold absolute paths), so the copy goes to a folder
# whose name has the same length and every mention is rewritten byte for byte (pickles and
# SQLite pages keep their lengths): the sweep is, to the code, where it was made.
MADE_IN = "/tmp/lstmfxFIXTURE0"


def _place_fixture() -> Path:
    root = Path(tempfile.mkdtemp(prefix="lstmfx", dir="/tmp"))
    assert len(str(root)) == len(MADE_IN)
    shutil.copytree(FIXTURE / "results", root / "results")
    old, new = MADE_IN.encode(), str(root).encode()
    for path in (root / "results").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            moved = data.replace(old, new).replace(old.hex().encode(), new.hex().encode())
            if moved != data:
                path.write_bytes(moved)
    return root


@pytest.fixture
def old_sweep():
    root = _place_fixture()
    yield root / "results"
    shutil.rmtree(root, ignore_errors=True)


def test_the_fixture_names_the_old_module_paths():
    # What makes this test mean something: Tune's pickled state names the modules as they
    # were before the move (orchestrator.schedulers, not orchestrator.sweep.schedulers).
    state = (FIXTURE / "results" / "old" / "tune" / "tuner.pkl").read_bytes()
    for old in ("schedulers", "study_search", "progress", "record", "preflight", "tracking_thread"):
        assert f"orchestrator.{old}".encode() + b"\x94" in state, old


def test_a_sweep_interrupted_before_the_move_resumes_after_it(old_sweep):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    before = read_leaderboard(old_sweep / "old")
    assert list(before.status) == ["completed"]
    first = before.trial_id.iloc[0]

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "orchestrator.tune", "--resume", "--name", "old"]
    # --trust-state: the fixture predates the state seals too (orchestrator/records/state_seal.py);
    # without it --resume refuses before unpickling anything (tests/records/test_state_seal.py).
    cmd += ["--results-dir", str(old_sweep), "--no-dashboard", "--num-cpus", "2", "--trust-state"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Resuming sweep from" in done.stdout
    assert f"trial {first} fold" not in done.stdout  # the finished trial is kept, not re-run
    assert "Traceback" not in done.stderr

    record = json.loads((old_sweep / "old" / "sweep.json").read_text())
    assert record["status"] == "finished"
    board = read_leaderboard(old_sweep / "old")
    assert len(board) == 3 and first in set(board.trial_id)
    # The same trials as the code before the move ran from this folder: configs drawn by the
    # restored searcher, the restored scheduler's decisions, the scores of seeded fits.
    assert len(expected) == 3
    for trial in expected:
        match = [i for i in board.index if _same_config(board.loc[i], trial["config"])]
        assert len(match) == 1, (trial["config"], board.to_string())
        row = board.loc[match[0]]
        assert row["status"] == trial["status"]
        assert row["objective"] == pytest.approx(trial["objective"], rel=1e-5, nan_ok=True)


def _same_config(row, config: dict) -> bool:
    return all(
        row[f"param_{k}"] == pytest.approx(v, rel=1e-9)
        if isinstance(v, float)
        else row[f"param_{k}"] == v
        for k, v in config.items()
    )
