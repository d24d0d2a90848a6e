"""The persistent Ray head of ``python -m orchestrator.cluster``: start, find, stop.

``start_head`` runs ``ray start --head --block`` in a session of its own, with token
authentication on and the dashboard on 127.0.0.1, and records the process in
``<temp dir>/lstm-orchestrator-head.json``. ``stop_head`` ends that process and its children
and nothing else: ``ray stop`` would end every Ray on the machine, other people's included.
``head_for`` tells whether a sweep's ``--address`` names this head.

Ray's GCS and raylet listen on every interface of the machine, as on any Ray node (a head's
node address cannot be 127.0.0.1); with token authentication they refuse a client without
the token.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from orchestrator.runtime import ray_auth
from trainables.errors import ConfigError, UserError

__all__ = [
    "Head",
    "auth_headers",
    "default_temp_dir",
    "head_for",
    "head_jobs",
    "is_running",
    "load_head",
    "running_head",
    "start_head",
    "stop_head",
]

STATE_FILE = "lstm-orchestrator-head.json"
LOG_FILE = "lstm-orchestrator-head.log"
RAY_START = [sys.executable, "-m", "ray.scripts.scripts", "start"]


@dataclass(frozen=True)
class Head:
    """A head started by ``start``, as recorded in its state file."""

    pid: int
    create_time: float  # the process's start time: tells our head from a reused pid
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    log_file: str
    started_at: str

    @property
    def state_file(self) -> Path:
        return Path(self.temp_dir) / STATE_FILE


def default_temp_dir() -> Path:
    """Ray's default temp dir, where ``ray start`` records the address ``auto`` finds.

    The same rule as Ray's: $RAY_TMPDIR, else $TMPDIR (Linux), else /tmp; then ``ray``.
    """
    base = os.environ.get("RAY_TMPDIR")
    if not base and sys.platform.startswith("linux"):
        base = os.environ.get("TMPDIR")
    return Path(base or "/tmp") / "ray"


def load_head(temp_dir: Path) -> Head | None:
    """The head recorded in ``temp_dir``, running or not."""
    try:
        return Head(**json.loads((temp_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _process(head: Head) -> psutil.Process | None:
    """The head's ``ray start`` process if it still runs (not a later process with its pid)."""
    try:
        proc = psutil.Process(head.pid)
        if abs(proc.create_time() - head.create_time) < 1 and proc.is_running():
            return proc
    except psutil.Error:
        pass
    return None


def is_running(head: Head) -> bool:
    return _process(head) is not None


def running_head(temp_dir: Path | None = None) -> Head | None:
    """The head that ``start`` started with this temp dir, if it still runs."""
    head = load_head(temp_dir or default_temp_dir())
    return head if head is not None and _process(head) is not None else None


def _same_address(a: str, b: str) -> bool:
    local = {"127.0.0.1", "localhost", "::1"}
    (host_a, _, port_a), (host_b, _, port_b) = a.rpartition(":"), b.rpartition(":")
    return port_a == port_b and (host_a == host_b or host_a in local or host_b in local)


def head_for(address: str | None, temp_dir: Path | None = None) -> Head | None:
    """Our running head, if a sweep's ``--address`` names it.

    ``auto`` finds a head as Ray does: $RAY_ADDRESS, else the address the last ``ray start``
    recorded in the temp dir. A ``host:port`` names it if it is the head's GCS address.
    """
    if not address or address.startswith("ray://"):
        return None
    head = running_head(temp_dir)
    if head is None:
        return None
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS") or _recorded_address(Path(head.temp_dir)) or ""
    return head if _same_address(target, head.gcs_address) else None


def _recorded_address(temp_dir: Path) -> str | None:
    try:
        return (temp_dir / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def _check_port_free(port: int, flag: str) -> None:
    for host in ("0.0.0.0", "127.0.0.1"):
        with socket.socket() as s:
            # SO_REUSEADDR: a port whose last user just ended (TIME_WAIT) is free; only a
            # process listening on it makes bind fail.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                raise ConfigError(
                    f"{flag} {port}: the port is in use (another Ray?); pick a free one with {flag}"
                ) from None


def _dashboard_ready(url: str, token: str) -> bool:
    request = urllib.request.Request(
        f"{url}/api/version", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _ray_start_args(port, dashboard_port, num_cpus, num_gpus, temp: Path, extra) -> list[str]:
    args = [*RAY_START, "--head", "--block", "--port", str(port), "--disable-usage-stats"]
    args += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port)]
    args += ["--temp-dir", str(temp)]
    if num_cpus is not None:
        args += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        args += ["--num-gpus", str(num_gpus)]
    return [*args, *extra]


def start_head(
    *,
    port: int = 6379,
    dashboard_port: int = 8265,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    temp_dir: Path | None = None,
    ray_args: tuple[str, ...] = (),
    timeout: float = 180.0,
) -> Head:
    """Start ``ray start --head --block`` in a session of its own; return once its dashboard
    answers with the token. Bad settings fail before anything starts."""
    temp = (temp_dir or default_temp_dir()).resolve()
    _check_port_free(port, "--port")
    _check_port_free(dashboard_port, "--dashboard-port")
    ray_auth.ensure_token()
    token = ray_auth.read_token() or ""
    temp.mkdir(parents=True, exist_ok=True)
    log_path = temp / LOG_FILE
    args = _ray_start_args(port, dashboard_port, num_cpus, num_gpus, temp, ray_args)
    # RAY_AUTH_MODE=token: without it `ray start` turns authentication on only if a token
    # already exists. Its processes inherit the variable, so jobs and trials have it too.
    env = {**os.environ, ray_auth.AUTH_MODE_VAR: "token", "PYTHONUNBUFFERED": "1"}
    # On SIGTERM `ray start` waits up to 30 s for its node to drain (for Serve replicas to
    # move): a sweep has nowhere to move to, so `stop` stops at once.
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this terminal later must not reach the head
        )
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        gcs = _wait_until_up(proc, temp, port, url, token, log_path, timeout)
    except BaseException:
        _end_tree(psutil.Process(proc.pid), timeout=30)
        raise
    head = Head(
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        gcs_address=gcs,
        dashboard_url=url,
        temp_dir=str(temp),
        log_file=str(log_path),
        started_at=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    head.state_file.write_text(json.dumps(asdict(head), indent=2) + "\n")
    return head


def _wait_until_up(proc, temp: Path, port: int, url: str, token: str, log_path, timeout) -> str:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            lines = [line for line in log_path.read_text().splitlines() if line.strip()]
            last = lines[-1].strip() if lines else "(empty)"
            raise UserError(
                f"the Ray head did not start (exit {proc.returncode}): {last} (log: {log_path})"
            )
        recorded = _recorded_address(temp)
        if recorded and recorded.endswith(f":{port}") and _dashboard_ready(url, token):
            return recorded
        if time.monotonic() > deadline:
            raise UserError(f"the Ray head did not answer within {timeout:.0f} s (log: {log_path})")
        time.sleep(0.5)


def _end_tree(proc: psutil.Process, *, timeout: float) -> int:
    """SIGTERM ``proc`` (``ray start --block`` then stops the processes it started), then
    SIGKILL whatever of its process tree is left after ``timeout``; returns how many."""
    try:
        procs = [proc, *proc.children(recursive=True)]
        proc.terminate()
    except psutil.NoSuchProcess:
        return 0
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=10)
    return len(procs)


def stop_head(head: Head, *, timeout: float = 60.0) -> int:
    """End the head's process tree (nothing else); forget it. Returns the processes ended."""
    proc = _process(head)
    ended = _end_tree(proc, timeout=timeout) if proc is not None else 0
    head.state_file.unlink(missing_ok=True)
    # As `ray stop` does: `--address auto` must not find a head that is gone.
    if _recorded_address(Path(head.temp_dir)) == head.gcs_address:
        (Path(head.temp_dir) / "ray_current_cluster").unlink(missing_ok=True)
    return ended


def auth_headers() -> dict[str, str]:
    token = ray_auth.read_token()
    if not token:
        raise ConfigError(
            f"no Ray token in {ray_auth.token_source()}: the head's dashboard needs the token "
            f"it was started with"
        )
    return {"Authorization": f"Bearer {token}"}


def head_jobs(head: Head) -> list:
    """Every job the head knows (sweeps and other drivers), oldest first."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(head.dashboard_url, headers=auth_headers())
    return sorted(client.list_jobs(), key=lambda job: job.start_time or 0)
