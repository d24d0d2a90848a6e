"""The three commands on corrupted bar files, as a user runs them (slow: real subprocesses).

``orchestrator.tune --smoke-test``, ``orchestrator.predict`` and ``trainables.train`` on a
few files from the property test's corruptions: each exits 0 or 2; exit 2 is one
``error:`` line on stderr (``warning:`` lines aside) and no traceback, and leaves no new
folder or file behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bad_input_property import _apply, _parquet_bytes, _retime
from trainables.bars.synthetic import make_bars

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, Path]:
    """Name -> a corrupted (or merely unusual) bars file, all from 1,200 valid bars."""
    valid = make_bars(1200, seed=3).reset_index()
    frames = {
        "huge_close.csv": _apply(valid, ("set", "close", 600, 1e300)),
        "ny_offsets.csv": _retime(valid, "new_york"),  # loads: converted to UTC
        "half_aware.csv": _retime(valid, "half_aware"),
        "duplicate_row.csv": _apply(valid, ("duplicate", 700)),
        "text_in_low.csv": _apply(valid, ("set", "low", 42, "1,5")),
        "misspelt.csv": _apply(valid, ("rename", "close", "clsoe")),
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / name
        frame.to_csv(paths[name], index=False)
    paths["bool_close.parquet"] = folder / "bool_close.parquet"
    paths["bool_close.parquet"].write_bytes(_parquet_bytes(valid, "bool"))
    text = valid.to_csv(index=False)
    paths["utf16.csv"] = folder / "utf16.csv"
    paths["utf16.csv"].write_bytes(text.encode("utf-16"))
    paths["truncated.parquet"] = folder / "truncated.parquet"
    paths["truncated.parquet"].write_bytes(_parquet_bytes(valid, "as is")[:-300])
    return paths


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode in (0, 2), f"{what}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, f"{what}:\n{proc.stderr[-3000:]}"
    if proc.returncode == 2:
        lines = [x for x in proc.stderr.splitlines() if not x.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {proc.stderr}"


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def test_three_commands_on_corrupted_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    files = _files(data)
    # A model to predict with: one tiny run on valid bars.
    model = tmp_path / "model"
    tiny = ["--hidden_size", "8", "--num_layers", "1", "--sequence_length", "8", "--epochs", "1"]
    _check(_run(["trainables.train", *tiny, "--out", str(model)], tmp_path), "train (valid)")
    outcomes = {}
    for name, path in files.items():
        before = _tree(tmp_path / "results")
        tune = _run(
            [
                "orchestrator.tune",
                "--data",
                str(path),
                "--smoke-test",
                "--trials",
                "1",
                "--name",
                name.replace(".", "_"),
                "--num-cpus",
                "1",
                "--no-dashboard",
            ],
            tmp_path,
        )
        _check(tune, f"tune {name}")
        if tune.returncode == 2:
            assert _tree(tmp_path / "results") == before, name
        out = tmp_path / f"{name}.predictions.csv"
        predict = _run(
            ["orchestrator.predict", "--model", str(model), "--data", str(path), "--out", str(out)],
            tmp_path,
        )
        _check(predict, f"predict {name}")
        assert out.exists() == (predict.returncode == 0), name
        run = tmp_path / "runs" / name
        train = _run(["trainables.train", "--data", str(path), *tiny, "--out", str(run)], tmp_path)
        _check(train, f"train {name}")
        assert run.exists() == (train.returncode == 0), name
        assert list(run.parent.glob(".*partial*")) == [], name
        outcomes[name] = (tune.returncode, predict.returncode, train.returncode)
    # The one file that is merely unusual loads everywhere; every corrupted one is refused.
    assert outcomes.pop("ny_offsets.csv") == (0, 0, 0)
    assert set(outcomes.values()) == {(2, 2, 2)}, outcomes
