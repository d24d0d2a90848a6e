"""A sweep's MLflow tracker on a thread of its own, off the sweep's critical path.

Opening the store (importing MLflow, creating a new sqlite store's schema) took seconds
before the first trial could start, and each finished trial's child run was written inside
Tune's event loop, which waited for it before starting the next trial. ``BackgroundTracker``
runs a ``SweepTracker`` on one thread: it is opened while the Tuner starts, and every call
(``log_trial``, ``log_summary``, closing) is queued and run there in order. Still a single
writer (docs: tracking.py), and the order of writes is the order of the calls.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundTracker"]

_CLOSE = object()


class BackgroundTracker:
    """``with BackgroundTracker(make) as tracker:``, where ``make()`` builds the
    ``SweepTracker`` (on the tracker's thread); the block's calls return at once."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._calls: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.close_status: str | None = None  # as SweepTracker's: the parent's final status
        self.uri: str | None = None  # the store's, once the tracker is built
        self.experiment_id: str | None = None  # the experiment's, once the store is open

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks (and so this) into the experiment state; a resumed run
        # brings its own tracker, so a copy keeps no thread, queue or store.
        return {
            "close_status": self.close_status,
            "uri": self.uri,
            "experiment_id": self.experiment_id,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(lambda: None)
        self.__dict__.update(state)

    def __enter__(self) -> BackgroundTracker:
        self._thread = threading.Thread(target=self._run, name="mlflow-tracker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Wait for every queued write, then close the parent run as ``SweepTracker`` does."""
        self._calls.put((_CLOSE, (exc_type, exc, tb), {}))
        if self._thread is not None:
            self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def log_trial(self, *args, **kwargs) -> None:
        self._calls.put(("log_trial", args, kwargs))

    def log_summary(self, *args, **kwargs) -> None:
        self._calls.put(("log_summary", args, kwargs))

    def _run(self) -> None:
        tracker = None
        try:
            tracker = self._make()
            self.uri = tracker.uri
            tracker = tracker.__enter__()
            self.experiment_id = tracker.experiment_id
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = err
        while True:
            name, args, kwargs = self._calls.get()
            if name is _CLOSE:
                break
            if tracker is None or self._error is not None:
                continue  # a failed tracker: drain the queue, report the error at exit
            try:
                getattr(tracker, name)(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = err
        if tracker is not None:
            tracker.close_status = self.close_status
            try:
                tracker.__exit__(*args)
            except BaseException as err:  # noqa: BLE001
                self._error = self._error or err
