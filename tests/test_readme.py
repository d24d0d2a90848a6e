"""The README's Quick start, run as a newcomer types it: every ``python -m`` command of its
code blocks, in order, in a fresh folder (the install and the test-suite lines aside: this
checkout is installed, and the suite is what is running)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def quick_start_commands() -> list[list[str]]:
    """The Quick start's commands, in order, as argument lists."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            args = shlex.split(line, comments=True)
            if args[:2] == ["python", "-m"] and args[2] != "pytest":
                commands.append([sys.executable, *args[1:]])
    return commands


def test_the_quick_start_lists_the_commands_a_newcomer_needs():
    # Rule: the blocks hold the sweep, sample bars, and what to do with a sweep afterwards.
    modules = [c[2] for c in quick_start_commands()]
    for module in (
        "orchestrator.tune",
        "trainables.synthetic",
        "orchestrator.show",
        "orchestrator.promote",
        "orchestrator.predict",
    ):
        assert module in modules


def test_the_quick_start_runs_as_written(tmp_path):
    # Rule: each command exits 0 in a fresh folder and leaves what the README says.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    outputs = []
    for command in quick_start_commands():
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
        )
        shown = " ".join(command[1:])
        assert done.returncode == 0, f"{shown}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs.append((shown, done.stdout + done.stderr))
    assert (tmp_path / "bars.parquet").is_file() and (tmp_path / "preds.parquet").is_file()
    assert (tmp_path / "results" / "demo" / "promoted.json").is_file()
    show = next(out for cmd, out in outputs if cmd.endswith("orchestrator.show --name demo"))
    assert "Sweep 'demo'" in show and "baseline:ridge" in show
    listing = outputs[-1][1]
    assert "demo" in listing and "finished" in listing
    promoted = next(out for cmd, out in outputs if "orchestrator.promote" in cmd)
    assert "MLflow: registered version 1 of 'lstm-demo' as " in promoted
