"""Ray started on a thread of its own while the command line's sweep reads and checks its data.

``ray.init`` of a local Ray takes seconds, mostly waiting for the processes it starts;
``python -m orchestrator.tune`` reads, checks and prepares the data meanwhile (2M bars:
seconds too). A data error in that time is one line at once and exit 2; the command then
waits for the start to finish and shuts Ray down (``shut_down_abandoned``): the processes
``ray.init`` starts die with the thread that started them (PR_SET_PDEATHSIG), but the
raylet's agents outlived such an exit by a minute or more.

Two rules make the overlap safe:

* The starting thread stays alive until Ray is shut down: the processes it started would
  be killed when it ended (that same PR_SET_PDEATHSIG).
* Ray starts its processes with ``fork`` plus a Python ``preexec_fn``; a child forked while
  another thread holds a module's import lock would hang if its ``preexec_fn`` imported that
  module. Ray's ``preexec_fn`` imports only modules loaded before the thread starts, and the
  modules the data path loads lazily (Parquet, Arrow) are imported up front, so the main
  thread goes on reading meanwhile with nothing to wait for. (An earlier version made the
  main thread's imports wait for Ray in a ``sys.meta_path`` finder: Python calls finders
  under its global import lock, which every import and every ``fork`` with a
  ``preexec_fn`` takes, so Ray's own start waited for that finder: a 120 s stall.) A
  database source loads a driver library as it connects: it is read before Ray starts,
  not beside it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import threading

from orchestrator.runtime.ray_session import init_ray

__all__ = ["BackgroundRay", "abandoned", "shut_down_abandoned"]

# Imported lazily by pandas and pyarrow when they read a Parquet file, and by Ray's check
# that its children can die with it (before their preexec_fn runs): loaded up front.
_DATA_MODULES = (
    "ctypes",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "pandas.core.arrays.arrow.extension_types",
)
_ABANDONED = threading.Event()  # a start given up on: shut_down_abandoned() ends it at exit
_GIVEN_UP: list[BackgroundRay] = []
# How long an exit waits for a start given up on to finish, so that it can shut Ray down.
_START_WAIT = 60.0


def abandoned() -> bool:
    """Whether a background start was given up on (then the command's exit shuts it down)."""
    return _ABANDONED.is_set()


def shut_down_abandoned() -> None:
    """At exit after a start given up on (the data failed, or Ctrl-C, while Ray started):
    once the start is done, ``ray.shutdown()``. The processes ``ray.init`` starts itself die
    with the process, but the raylet's agents (dashboard, runtime env) outlived it by a
    minute or more. The error line is out already; a second Ctrl-C leaves at once."""
    import ray

    try:
        for early in _GIVEN_UP:
            if early.ready.wait(_START_WAIT) and early.error is None and ray.is_initialized():
                ray.shutdown()
            early.release.set()
    except KeyboardInterrupt:
        pass


class _Held(logging.Filter):
    """On the handlers of Ray's logger while it starts: its warnings (token authentication
    on) are held back and printed with its other lines once the data passed their checks,
    so a data error is still the only line; the warning that it sets no SIGTERM handler
    off the main thread is dropped (the CLI has its own)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def filter(self, record: logging.LogRecord) -> bool:
        if threading.current_thread() is threading.main_thread():
            return True
        message = record.getMessage()
        if "current thread is not the main thread" not in message:
            self.lines.append(f"{record.levelname.lower()}: {message}")
        return False


class BackgroundRay:
    """``start()`` it, read the data, then ``wait(log)`` for (we started Ray, dashboard url),
    as ``orchestrator.runtime.ray_session.start_ray`` returns; ``abandon()`` if the data failed."""

    def __init__(self, spec, metadata: dict) -> None:
        self.spec, self.metadata = spec, metadata
        self.ready, self.release = threading.Event(), threading.Event()
        self.lines: list[str] = []  # what starting Ray says, printed by wait() in order
        self.result: tuple[bool, str | None] = (False, None)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> BackgroundRay:
        for name in _DATA_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        self.sigterm = signal.getsignal(signal.SIGTERM)
        self.thread = threading.Thread(target=self._run, name="ray-start", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        held = _Held(self.lines)
        handlers = logging.getLogger("ray").handlers
        for handler in handlers:
            handler.addFilter(held)
        try:
            self.result = init_ray(self.spec, self.lines.append, self.metadata)
        except BaseException as err:  # noqa: BLE001 - re-raised by wait() on the main thread
            self.error = err
        finally:
            for handler in handlers:
                handler.removeFilter(held)
            self.ready.set()
        self.release.wait()  # Ray's processes live as long as this thread (module doc)

    def wait(self, log) -> tuple[bool, str | None]:
        """Ray up (or its error raised), its lines printed, the CLI's SIGTERM handler back."""
        self.ready.wait()
        if callable(self.sigterm):  # Ray's core replaced it while starting
            signal.signal(signal.SIGTERM, self.sigterm)
        for line in self.lines:
            log(line)
        if self.error is not None:
            self.release.set()
            raise self.error
        return self.result

    def abandon(self) -> None:
        """The data failed: the command says so now; ``shut_down_abandoned`` ends Ray at exit."""
        _ABANDONED.set()
        _GIVEN_UP.append(self)

    def stop(self) -> None:
        """After ``ray.shutdown()``: let the starting thread end."""
        self.release.set()
