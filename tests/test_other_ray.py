"""Ray Train beside another Ray on the machine (#21 defect 8): promotion and a sweep with
--workers-per-trial 2 run while a head of ``python -m orchestrator.cluster start`` runs, and
print no Ray Train traceback (it printed "Found multiple active Ray instances", or its
placement-group cleaner asked the other Ray and took the run for dead).

The head runs in a private temp dir with its own ports and token (as tests/test_dashboard.py
starts it), so ``ray_current_cluster`` names it; ``stop`` ends that head and nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_multinode import free_port

ROOT = Path(__file__).resolve().parents[1]
NOISE = (
    "Traceback",
    "Found multiple active Ray instances",
    "Failed to register placement group with cleaner",
    "Invalid authentication token",
    "Detected that the Ray Train controller actor",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (ray start)"),
]


def test_promotion_and_ddp_trials_beside_a_running_head_print_no_ray_train_traceback():
    root = Path(tempfile.mkdtemp(prefix="or", dir="/tmp"))  # short: Ray's socket paths
    (root / "t").mkdir()
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        TMPDIR=str(root / "t"),
        RAY_AUTH_TOKEN_PATH=str(root / "token"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", *args],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )

    gcs, dash, client, agent = (free_port() for _ in range(4))
    try:
        started = run(
            *["orchestrator.cluster", "start", "--num-cpus", "2"],
            *["--port", str(gcs), "--dashboard-port", str(dash), "--"],
            *["--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent)],
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert (root / "t" / "ray" / "ray_current_cluster").is_file()  # the head is found
        sessions = set((root / "t" / "ray").glob("session_2*"))
        sweep = run(
            *["orchestrator.tune", "--smoke-test", "--trials", "1", "--scheduler", "none"],
            *["--workers-per-trial", "2", "--cpus-per-trial", "0.9", "--num-cpus", "2"],
            *["--no-dashboard", "--name", "ddp"],
        )
        assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
        assert "Trials: 1 completed" in sweep.stdout
        promoted = run("orchestrator.promote", "--name", "ddp", "--seeds", "1", "--epochs", "3")
        out = promoted.stdout + promoted.stderr
        assert promoted.returncode == 0, out[-3000:]
        assert "promote: rank 1 seed 0: best epoch" in out
        for needle in NOISE:
            assert needle not in out, (needle, out[-3000:])
        # The sweep's trials log to Ray's files, not the terminal: read those of its Ray.
        for session in set((root / "t" / "ray").glob("session_2*")) - sessions:
            for log in (session / "logs").glob("*"):
                if log.is_file():
                    text = log.read_text(errors="replace")
                    for needle in NOISE[1:]:
                        assert needle not in text, (log, needle)
    finally:
        run("orchestrator.cluster", "stop")
        shutil.rmtree(root, ignore_errors=True)
