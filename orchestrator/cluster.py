"""``python -m orchestrator.cluster start|status|stop``: a persistent Ray head on this machine.

A sweep's own Ray (no ``--address``) and its dashboard end with the sweep. A head started
here outlives its sweeps: ``python -m orchestrator.tune --address auto ...`` runs each sweep
on it as a Ray job named after the sweep (orchestrator/jobs.py), so the dashboard's Jobs page
lists every sweep since the head started, with its settings and its output. The job list
lives in the head's memory and goes with ``stop``; MLflow and results/<name>/ stay the
permanent record.

The head runs with token authentication on (a token is made if none exists) and its
dashboard listens on 127.0.0.1 only. ``start`` records the head's process id in
``<temp dir>/lstm-orchestrator-head.json``; ``stop`` ends that process and its children and
nothing else (``ray stop`` would end every Ray on the machine, other people's included).

Examples::

    python -m orchestrator.cluster start                  # all cores, ports 6379 / 8265
    python -m orchestrator.cluster status                 # the head, its dashboard, its jobs
    python -m orchestrator.cluster stop
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
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

from orchestrator import ray_auth
from trainables.errors import ConfigError, OrchestratorError

__all__ = ["Head", "default_temp_dir", "head_for", "main", "running_head", "start_head"]

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


def _load(temp_dir: Path) -> Head | None:
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


def running_head(temp_dir: Path | None = None) -> Head | None:
    """The head that ``start`` started with this temp dir, if it still runs."""
    head = _load(temp_dir or default_temp_dir())
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
            raise OrchestratorError(
                f"the Ray head did not start (exit {proc.returncode}): {last} (log: {log_path})"
            )
        recorded = _recorded_address(temp)
        if recorded and recorded.endswith(f":{port}") and _dashboard_ready(url, token):
            return recorded
        if time.monotonic() > deadline:
            raise OrchestratorError(
                f"the Ray head did not answer within {timeout:.0f} s (log: {log_path})"
            )
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


def _sweep_address(head: Head) -> str:
    # `auto` reads the default temp dir; a head elsewhere is named by its address.
    return "auto" if Path(head.temp_dir) == default_temp_dir().resolve() else head.gcs_address


def _temp_flag(head: Head) -> str:
    default = Path(head.temp_dir) == default_temp_dir().resolve()
    return "" if default else f" --temp-dir {shlex.quote(head.temp_dir)}"


def describe(head: Head, *, log=print) -> None:
    """Where the head is and how to use it: the lines `start` and `status` print."""
    log(f"  GCS address  {head.gcs_address}")
    log(f"  dashboard    {head.dashboard_url} (this machine only; {ray_auth.login_hint()})")
    log(
        f"  sweeps       python -m orchestrator.tune --address {_sweep_address(head)} ... "
        f"(each one a job on the dashboard's Jobs page, with its output)"
    )
    log(
        f"  Ray's CLI    export RAY_AUTH_MODE=token; ray status --address {head.gcs_address}; "
        f"ray job list --address {head.dashboard_url}"
    )
    log(f"  stop         python -m orchestrator.cluster stop{_temp_flag(head)}")


def _print_jobs(head: Head, log) -> None:
    jobs = head_jobs(head)
    running = sum(job.status == "RUNNING" for job in jobs)
    log(
        f"  jobs         {len(jobs)} since the head started, {running} running "
        f"(kept in the head's memory until it stops; MLflow keeps every sweep)"
    )
    for job in jobs:
        name = (job.metadata or {}).get("job_name", "-")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((job.start_time or 0) / 1000))
        log(f"    {job.status:<9} {name:<28} {job.submission_id or job.job_id}  started {started}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.cluster",
        description="A persistent Ray head on this machine (token authentication on, dashboard "
        "on 127.0.0.1): sweeps run with --address auto show on its dashboard's Jobs page.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser(
        "start",
        help="start the head",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Start a Ray head that outlives its sweeps. Arguments after -- go to "
        "`ray start` as they are, e.g. -- --ray-client-server-port 10002",
    )
    start.add_argument("--port", type=int, default=6379, help="the head's GCS port")
    start.add_argument("--dashboard-port", type=int, default=8265, help="dashboard port")
    start.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs for trials (default: all cores)"
    )
    start.add_argument(
        "--num-gpus", type=int, default=None, help="GPUs for trials (default: all found)"
    )
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Ray")
    status = sub.add_parser("status", help="show the head, its dashboard and its jobs")
    stop = sub.add_parser("stop", help="stop the head that `start` started (nothing else)")
    for cmd in (start, status, stop):
        cmd.add_argument(
            "--temp-dir",
            type=Path,
            default=None,
            help="Ray's temp dir, where the head's state file is kept "
            "(default: $RAY_TMPDIR, else $TMPDIR, else /tmp; then /ray)",
        )
    return p


def _start(args, ray_args: list[str]) -> int:
    head = running_head(args.temp_dir)
    if head is not None:
        print(f"A Ray head started by this command already runs (pid {head.pid}); stop it first")
        print("to start one with other settings.")
        describe(head)
        return 0
    head = start_head(
        port=args.port,
        dashboard_port=args.dashboard_port,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        temp_dir=args.temp_dir,
        ray_args=tuple(ray_args),
        timeout=args.timeout,
    )
    print(f"Ray head started: pid {head.pid}, token authentication on, log {head.log_file}")
    describe(head)
    return 0


def _status(args) -> int:
    head = running_head(args.temp_dir)
    if head is None:
        temp = args.temp_dir or default_temp_dir()
        print(f"No Ray head started by `python -m orchestrator.cluster start` runs ({temp}).")
        return 1
    print(f"Ray head running: pid {head.pid}, since {head.started_at}")
    describe(head)
    _print_jobs(head, print)
    return 0


def _stop(args) -> int:
    head = _load(args.temp_dir or default_temp_dir())
    if head is None:
        print("No Ray head started by `python -m orchestrator.cluster start` to stop.")
        return 1
    alive = _process(head) is not None
    ended = stop_head(head)
    if not alive:
        print(f"The Ray head (pid {head.pid}) had already ended; forgot it.")
        return 1
    print(
        f"Stopped the Ray head (pid {head.pid}, {ended} processes). Its job list is gone; "
        f"MLflow and results/<sweep>/ keep every sweep."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Arguments after `--` are for `ray start` (argparse would take them as positionals).
    ray_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(ours)
    if ray_args and args.command != "start":
        print("error: arguments after -- are for `start` only", file=sys.stderr)
        return 2
    try:
        if args.command == "start":
            return _start(args, ray_args)
        if args.command == "status":
            return _status(args)
        return _stop(args)
    except OrchestratorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
