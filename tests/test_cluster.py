"""``python -m orchestrator.cluster`` without starting Ray: the token, bad settings, no head,
and which ``--address`` names our head. tests/test_dashboard.py starts real heads."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from orchestrator.runtime import ray_auth
from orchestrator.runtime.head import STATE_FILE, Head, head_for, running_head

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_ray_env(monkeypatch, tmp_path):
    """No token settings from the machine; HOME in tmp_path (Ray's default token file)."""
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_ensure_token_makes_an_owner_only_token_once(clean_ray_env):
    # Rule: with no token anywhere, one is made in ~/.ray/auth_token, mode 600; an existing
    # one is never replaced.
    path = clean_ray_env / "home" / ".ray" / "auth_token"
    assert ray_auth.read_token() is None
    assert ray_auth.ensure_token() is True
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ray_auth.ensure_token() is False
    assert path.read_text() == token
    assert not ray_auth.token_exposed()
    path.chmod(0o644)  # as Ray's own `ray get-auth-token --generate` leaves it
    assert ray_auth.token_exposed()


def test_token_is_found_where_ray_looks_for_it(clean_ray_env, monkeypatch):
    # Rule: RAY_AUTH_TOKEN beats RAY_AUTH_TOKEN_PATH, which beats ~/.ray/auth_token; the
    # login hint names the place the token comes from.
    default = clean_ray_env / "home" / ".ray" / "auth_token"
    default.parent.mkdir(parents=True)
    default.write_text("from-home\n")
    assert ray_auth.read_token() == "from-home"
    assert str(default) in ray_auth.login_hint()

    custom = clean_ray_env / "my_token"
    custom.write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(custom))
    assert ray_auth.read_token() == "from-path"
    assert str(custom) in ray_auth.login_hint()
    assert ray_auth.ensure_token() is False  # the file the variable names counts

    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert ray_auth.read_token() == "from-env"
    assert "RAY_AUTH_TOKEN environment variable" in ray_auth.login_hint()
    assert "ray get-auth-token" in ray_auth.login_hint()


def test_ensure_token_writes_where_ray_auth_token_path_points(clean_ray_env, monkeypatch):
    # Rule: with RAY_AUTH_TOKEN_PATH set, the new token goes to that file (Ray reads only it).
    custom = clean_ray_env / "tokens" / "head"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(custom))
    assert ray_auth.ensure_token() is True
    assert ray_auth.read_token() == custom.read_text()
    assert not (clean_ray_env / "home" / ".ray").exists()


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cluster", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "TMPDIR": str(tmp), "RAY_AUTH_TOKEN_PATH": str(tmp / "token")}


def test_start_on_a_busy_port_fails_before_anything_starts(tmp_path):
    # Rule: a port in use is one line naming the flag and exit 2, before a token, a temp dir
    # or a process exists.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flag in ("--port", "--dashboard-port"):
            done = _cli("start", flag, str(port), env=_env(tmp_path))
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip() == (
                f"error: {flag} {port}: the port is in use (another Ray?); "
                f"pick a free one with {flag}"
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_status_and_stop_without_a_head_say_so(tmp_path):
    # Rule: with no head of ours, status and stop say so and exit 1; nothing is created.
    env = _env(tmp_path)
    status = _cli("status", env=env)
    assert status.returncode == 1
    assert "No Ray head started by `python -m orchestrator.cluster start` runs" in status.stdout
    stop = _cli("stop", env=env)
    assert stop.returncode == 1
    assert "No Ray head started by `python -m orchestrator.cluster start` to stop" in stop.stdout
    assert list(tmp_path.iterdir()) == []


def test_ray_args_are_for_start_only(tmp_path):
    done = _cli("status", "--", "--num-cpus", "1", env=_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == "error: arguments after -- are for `start` only"


def _fake_head(temp: Path, *, pid: int, create_time: float, gcs: str) -> Head:
    """A state file as `start` writes it, for a process that runs (this test's)."""
    temp.mkdir(parents=True, exist_ok=True)
    head = Head(
        pid=pid,
        create_time=create_time,
        gcs_address=gcs,
        dashboard_url="http://127.0.0.1:8265",
        temp_dir=str(temp),
        log_file=str(temp / "head.log"),
        started_at="2026-01-01 00:00:00",
    )
    (temp / STATE_FILE).write_text(json.dumps(head.__dict__))
    (temp / "ray_current_cluster").write_text(gcs)
    return head


def test_head_for_names_only_our_running_head(tmp_path, monkeypatch):
    # Rule: a sweep goes to our head as a job only if --address names it: `auto` (finding it
    # as Ray does) or its GCS address; another port, RAY_ADDRESS elsewhere, ray:// or a dead
    # head (its pid reused by another process) do not.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp = tmp_path / "ray"
    me = psutil.Process()
    head = _fake_head(temp, pid=me.pid, create_time=me.create_time(), gcs="192.0.2.7:6379")
    assert running_head(temp) == head
    assert head_for("auto", temp) == head
    assert head_for("192.0.2.7:6379", temp) == head
    assert head_for("127.0.0.1:6379", temp) == head  # localhost: this machine
    assert head_for("192.0.2.7:6380", temp) is None
    assert head_for("10.0.0.9:6379", temp) is None
    assert head_for("ray://127.0.0.1:10001", temp) is None
    assert head_for(None, temp) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    assert head_for("auto", temp) is None  # Ray's `auto` would go there
    monkeypatch.delenv("RAY_ADDRESS")
    (temp / "ray_current_cluster").write_text("192.0.2.7:7000")  # a later `ray start`
    assert head_for("auto", temp) is None

    _fake_head(temp, pid=me.pid, create_time=me.create_time() - 60, gcs="192.0.2.7:6379")
    assert running_head(temp) is None
    assert head_for("auto", temp) is None
