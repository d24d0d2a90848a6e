"""``python -m orchestrator.cluster start|status|stop``: a persistent Ray head on this machine.

A sweep's own Ray (no ``--address``) and its dashboard end with the sweep. A head started
here outlives its sweeps: ``python -m orchestrator.tune --address auto ...`` runs each sweep
on it as a Ray job named after the sweep (orchestrator/sweep/jobs.py), so the dashboard's Jobs page
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
import shlex
import sys
import time
from pathlib import Path

from orchestrator.runtime import ray_auth
from orchestrator.runtime.head import (
    Head,
    default_temp_dir,
    head_jobs,
    is_running,
    load_head,
    running_head,
    start_head,
    stop_head,
)
from trainables.errors import UserError

__all__ = ["build_parser", "describe", "main"]


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
    try:
        jobs = head_jobs(head)
    except Exception as err:  # status must still print what it knows
        log(f"  jobs         unknown: the dashboard did not answer ({type(err).__name__})")
        return
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
    )
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser(
        "start",
        help="start the head",
        description="Start a Ray head that outlives its sweeps. Arguments after -- go to "
        "`ray start` as they are, e.g. -- --ray-client-server-port 10002",
    )
    start.add_argument("--port", type=int, default=6379, help="the head's GCS port (default: 6379)")
    start.add_argument(
        "--dashboard-port",
        type=int,
        default=8265,
        help="dashboard port, on 127.0.0.1 (default: 8265)",
    )
    start.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs for trials (default: all cores)"
    )
    start.add_argument(
        "--num-gpus", type=int, default=None, help="GPUs for trials (default: all found)"
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for Ray to come up (default: 180)",
    )
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
    if ray_auth.token_exposed():
        path = ray_auth.token_file()
        print(f"warning: other users can read the token: chmod 600 {shlex.quote(str(path))}")
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
    head = load_head(args.temp_dir or default_temp_dir())
    if head is None:
        print("No Ray head started by `python -m orchestrator.cluster start` to stop.")
        return 1
    alive = is_running(head)
    running = _running_sweeps(head) if alive else []
    ended = stop_head(head)
    if not alive:
        print(f"The Ray head (pid {head.pid}) had already ended; forgot it.")
        return 1
    print(
        f"Stopped the Ray head (pid {head.pid}, {ended} processes). Its job list is gone; "
        f"MLflow and results/<sweep>/ keep every sweep."
    )
    for name in running:
        print(
            f"Sweep {name!r} was running and stopped with it; continue it after `start` with: "
            f"python -m orchestrator.tune --address {_sweep_address(head)} --resume --name {name}"
        )
    return 0


def _running_sweeps(head: Head) -> list[str]:
    try:
        jobs = head_jobs(head)
    except Exception:  # the dashboard may be down: stopping must not depend on it
        return []
    return [
        job.metadata["job_name"]
        for job in jobs
        if job.status == "RUNNING" and "job_name" in (job.metadata or {})
    ]


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
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
