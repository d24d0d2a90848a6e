"""The Ray a sweep runs on: attach to ``--address`` or start a private local one.

A local sweep starts its own Ray (``address="local"``), even where a ``ray start`` head runs,
and shuts it down at the end; attached to a cluster, it only connects. Either way the
driver's job carries the sweep's metadata for the dashboard's Jobs page.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.runtime.ray_auth import auth_enabled, login_hint
from orchestrator.sweep.spec import DRIVER_CPU, SweepSpec, check_resources
from trainables.errors import ConfigError

__all__ = [
    "check_fits",
    "exit_without_teardown",
    "init_ray",
    "on_this_ray",
    "start_ray",
    "trial_resources",
]


def start_ray(spec: SweepSpec, log, metadata: dict) -> tuple[bool, str | None]:
    """Attach to ``--address`` or start a local Ray; returns (we started it, dashboard url)."""
    if ray.is_initialized():
        return False, None
    with _keep_sigterm_handler():
        return init_ray(spec, log, metadata)


@contextlib.contextmanager
def _keep_sigterm_handler():
    """Ray's core installs its own SIGTERM handler (a stack dump, then abort); put back the
    Python one the CLI installed, which stops a sweep the way Ctrl-C does."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        main = threading.current_thread() is threading.main_thread()
        if main and callable(handler):
            signal.signal(signal.SIGTERM, handler)


def init_ray(spec: SweepSpec, log, metadata: dict) -> tuple[bool, str | None]:
    """``ray.init`` as a sweep wants it (``start_ray``'s work, without its checks)."""
    # The dashboard's Jobs page lists this driver under metadata["job_name"].
    job_config = ray.job_config.JobConfig(metadata=metadata)
    if spec.address:
        try:
            ctx = ray.init(address=spec.address, log_to_driver=False, job_config=job_config)
        except (ConnectionError, ray.exceptions.AuthenticationError) as err:
            # The usual causes: no Ray at that address, or a token-auth cluster (such as
            # cluster.yaml's) refusing a driver that lacks its token.
            raise ConfigError(
                f"--address {spec.address}: cannot attach to a Ray cluster ({err}). Check that "
                f"Ray runs there and, for a cluster with token authentication, that "
                f"RAY_AUTH_MODE=token is set and its token is in ~/.ray/auth_token "
                f"(or RAY_AUTH_TOKEN_PATH)"
            ) from None
    else:
        # "local": a Ray of our own even where `ray start` runs one (plain ray.init() would
        # attach to it, and refuse num_cpus).
        ctx = ray.init(
            address="local",
            logging_level=logging.WARNING,  # our own line below says what started
            job_config=job_config,
            num_cpus=spec.num_cpus or os.cpu_count(),
            include_dashboard=spec.dashboard,
            dashboard_host="127.0.0.1",
            log_to_driver=False,
        )
    url = getattr(ctx, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    log(
        f"Ray: {'attached to ' + spec.address if spec.address else 'local'}; "
        f"{ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
        f"{ray.cluster_resources().get('GPU', 0):.0f} GPUs" + (f"; dashboard {url}" if url else "")
    )
    if url and auth_enabled():
        log(f"Ray dashboard: token authentication on; {login_hint()}")
    return True, url


def check_fits(spec: SweepSpec) -> None:
    """One trial must fit on a local Ray, or Tune would wait for it forever (checked before
    Ray starts too, orchestrator/sweep/preflight.py; this is what Ray itself found)."""
    cpus = ray.cluster_resources().get("CPU", 0.0)
    gpus = ray.cluster_resources().get("GPU", 0.0)
    check_resources(spec, cpus=cpus, gpus=gpus, where="this Ray")


def trial_resources(spec: SweepSpec) -> dict:
    if spec.workers_per_trial > 1:
        # The trial only drives a TorchTrainer, whose workers ask for the real resources.
        return {"cpu": DRIVER_CPU}
    return {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}


def exit_without_teardown(code: int) -> None:
    """End a command whose work is done: Ray shut down (or the driver detached), logs and
    output flushed, then ``os._exit(code)``.

    The interpreter's own teardown after a sweep (destructors of Ray's core worker, gRPC,
    torch and thousands of modules) took 3-8 s on a loaded 2-core machine, after the last
    line was printed and every file written: nothing a user needs is in it. Only for a
    command's ``__main__``, never inside a program that goes on.
    """
    from orchestrator.runtime.ray_start import abandoned, shut_down_abandoned

    for stream in (sys.stdout, sys.stderr):  # what went wrong is said before any waiting
        with contextlib.suppress(Exception):
            stream.flush()
    if abandoned():
        shut_down_abandoned()
    elif ray.is_initialized():
        ray.shutdown()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def on_this_ray(fn, /, *args):
    """``fn(*args)`` in a Ray task on this node whose processes, and every actor they start,
    have ``RAY_ADDRESS`` set to this Ray.

    Ray Train's placement-group cleaner (an actor the TorchTrainer starts) asks Ray's State
    API for its controller without an address; the API then looks for a Ray on the machine
    by itself, and where another Ray runs (a head of ``orchestrator.cluster start``, a
    colleague's sweep) it fails with "Found multiple active Ray instances" tracebacks, or
    asks the other Ray and takes the controller for dead. An exported variable in this
    process would not reach that actor: a task's runtime_env does, as its children inherit
    it. The task runs here, so the files ``fn`` writes are where the caller reads them."""
    ctx = ray.get_runtime_context()
    task = ray.remote(num_cpus=0, max_retries=0)(fn).options(
        runtime_env={"env_vars": {"RAY_ADDRESS": ctx.gcs_address}},
        scheduling_strategy=NodeAffinitySchedulingStrategy(ctx.get_node_id(), soft=False),
    )
    ref = task.remote(*args)
    try:
        return ray.get(ref)
    except BaseException:  # Ctrl-C, SIGTERM: the training stops with the caller
        ray.cancel(ref, force=True)
        raise
