"""A sweep as a Ray job on the head of ``python -m orchestrator.cluster``.

The dashboard shows the output of a job only if it was submitted through the Job Submission
API: a driver that merely attaches (``ray.init(address=...)``) is listed on the Jobs page,
with its name and metadata, but without its logs. So ``python -m orchestrator.tune --address
auto`` on a machine whose head our ``cluster start`` started submits itself to that head:
the same command, run from the same directory with the same Python, as a job named after the
sweep. This process follows the job's output, so the terminal shows what a local sweep
shows; Ctrl-C detaches from it and the sweep goes on (``ray job stop`` stops it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import sys
from pathlib import Path

from orchestrator.runtime.head import Head, auth_headers
from orchestrator.stats.objective import objective_of
from orchestrator.sweep.spaces import load_space
from trainables.errors import UserError

__all__ = ["job_metadata", "submit_sweep"]

# What the submitted command adds so that it runs the sweep instead of submitting again.
NO_JOB_FLAG = "--no-job"


def job_metadata(*, name: str, space: str, trials: int, objective: str, results: Path) -> dict:
    """What the dashboard's Jobs page shows of a sweep (``job_name`` fills its Name column)."""
    return {
        "job_name": name,
        "space": space,
        "trials": str(trials),
        "objective": objective,
        "results": str(Path(results).resolve()),
    }


def _client(head: Head):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head.dashboard_url, headers=auth_headers())


def _without_name(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if not skip and arg != "--name" and not arg.startswith("--name="):
            out.append(arg)
        skip = arg == "--name"
    return out


def _entrypoint(argv: list[str], name: str) -> str:
    # The job's driver runs on the head's machine (this one) with the head's environment:
    # `cd` here so that relative paths (--data, --results-dir, a space file) mean what they
    # mean in this shell, and this Python so that it runs this installation.
    args = [*_without_name(argv), "--name", name, NO_JOB_FLAG]
    command = shlex.join([sys.executable, "-u", "-m", "orchestrator.tune", *args])
    return f"cd {shlex.quote(os.getcwd())} && exec {command}"


async def _follow(client, submission_id: str, write) -> None:
    # The SDK logs "WebSocket closed ..." at INFO when the job ends: not the user's news.
    logging.getLogger(client.tail_job_logs.__module__).setLevel(logging.WARNING)
    async for chunk in client.tail_job_logs(submission_id):
        write(chunk)


def submit_sweep(argv: list[str], spec, head: Head, *, log=print) -> int:
    """Run the sweep ``argv`` describes as a job on ``head``; follow its output until it ends
    (its exit code) or Ctrl-C (130: detached, the sweep goes on)."""
    from orchestrator.sweep.spec import base_config

    name = spec.sweep_name  # fixed here: the job, its metadata and the results share it
    space = load_space(spec.space)
    objective, mode = objective_of(base_config(spec, space).task)
    client = _client(head)
    submission_id = f"{name}-{secrets.token_hex(3)}"
    client.submit_job(
        entrypoint=_entrypoint(argv, name),
        submission_id=submission_id,
        metadata=job_metadata(
            name=name,
            space=space.name,
            trials=spec.trials,
            objective=f"{objective} ({mode})",
            results=Path(spec.results_dir) / name,
        ),
    )
    stop = f"RAY_AUTH_MODE=token ray job stop --address {head.dashboard_url} {submission_id}"
    follow = f"RAY_AUTH_MODE=token ray job logs -f --address {head.dashboard_url} {submission_id}"
    try:  # from here on the job runs: Ctrl-C only detaches from it
        log(f"Sweep {name!r} runs on the Ray head at {head.gcs_address} as job {submission_id}:")
        log(f"  {head.dashboard_url}/#/jobs/{submission_id}")
        log("Its output follows. Ctrl-C detaches (the sweep goes on); to stop it: " + stop)
        asyncio.run(_follow(client, submission_id, lambda text: print(text, end="", flush=True)))
    except KeyboardInterrupt:
        log(f"\nDetached: the sweep goes on as job {submission_id}. Follow it: {follow}")
        log(f"Stop it: {stop}")
        return 130
    except RuntimeError as err:  # the SDK's error for a log stream that broke off
        raise UserError(
            f"lost the output of job {submission_id} ({err}); it may still run: {follow}"
        ) from None
    info = client.get_job_info(submission_id)
    if info.driver_exit_code is not None:
        return int(info.driver_exit_code)
    return 0 if info.status == "SUCCEEDED" else 1
