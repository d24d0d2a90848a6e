"""Ray started on a thread of its own while the command line's sweep reads and checks its data.

``ray.init`` of a local Ray takes seconds, mostly waiting for the processes it starts;
``python -m orchestrator.tune`` reads, checks and prepares the data meanwhile (2M bars:
seconds too). A data error in that time is one line at once and exit 2: the command exits
without waiting for Ray, whose processes end with it (Ray starts them to die with the
thread that started them, PR_SET_PDEATHSIG, and that thread ends with the process).

Two rules make the overlap safe:

* The starting thread stays alive until Ray is shut down: the processes it started would
  be killed when it ended (that same PR_SET_PDEATHSIG).
* Ray starts its processes with ``fork`` plus a Python ``preexec_fn``, which can deadlock
  when another thread is importing a module at that moment (seen here: a fork waiting on
  the import lock while the main thread imported torch). So the modules the data path
  needs are imported before Ray starts, and any other import the main thread makes
  meanwhile waits until Ray is up (``_WaitForRay``, on ``sys.meta_path``). A database source
  loads a driver library as it connects: it is read before Ray starts, not beside it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import sys
import threading

from orchestrator.ray_session import init_ray

__all__ = ["BackgroundRay", "abandoned"]

# Imported lazily by pandas and pyarrow when they read a Parquet file: loaded up front.
_DATA_MODULES = ("pyarrow.parquet", "pyarrow.dataset", "pandas.core.arrays.arrow.extension_types")
_ABANDONED = threading.Event()  # a start given up on: the process exits without shutting down


def abandoned() -> bool:
    """Whether a background start was given up on (the command then exits at once)."""
    return _ABANDONED.is_set()


class _WaitForRay:
    """A ``sys.meta_path`` entry: the main thread's imports wait until Ray is up (module doc)."""

    def __init__(self, ready: threading.Event) -> None:
        self.ready = ready

    def find_spec(self, name, path=None, target=None):
        if threading.current_thread() is threading.main_thread():
            self.ready.wait(timeout=120)  # a bound, not a deadlock, if anything goes wrong
        return None  # then the usual finders


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
    as ``orchestrator.ray_session.start_ray`` returns; ``abandon()`` if the data failed."""

    def __init__(self, spec, metadata: dict) -> None:
        self.spec, self.metadata = spec, metadata
        self.ready, self.release = threading.Event(), threading.Event()
        self.lines: list[str] = []  # what starting Ray says, printed by wait() in order
        self.result: tuple[bool, str | None] = (False, None)
        self.error: BaseException | None = None
        self.guard = _WaitForRay(self.ready)
        self.thread: threading.Thread | None = None

    def start(self) -> BackgroundRay:
        for name in _DATA_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        self.sigterm = signal.getsignal(signal.SIGTERM)
        sys.meta_path.insert(0, self.guard)
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
        self._unguard()
        if callable(self.sigterm):  # Ray's core replaced it while starting
            signal.signal(signal.SIGTERM, self.sigterm)
        for line in self.lines:
            log(line)
        if self.error is not None:
            self.release.set()
            raise self.error
        return self.result

    def abandon(self) -> None:
        """The data failed: the command exits now; Ray's processes end with it."""
        _ABANDONED.set()
        self._unguard()

    def stop(self) -> None:
        """After ``ray.shutdown()``: let the starting thread end."""
        self.release.set()

    def _unguard(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self.guard)
