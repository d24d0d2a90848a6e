"""A sweep's folder has one owner at a time: an OS lock on ``results/<name>/sweep.lock``.

A sweep (new or ``--resume``) and a promotion take the lock before they write anything in
the folder and keep it until they end; a second one refuses in one line naming the holder
(``FolderBusy``, exit 2) and touches nothing. Two writers would otherwise mix their trials
for good (a ``--resume`` of a running sweep marked half of it interrupted).

The lock is ``flock`` on the file (``fcntl`` module): the kernel drops it when its process
ends, however it ends (SIGKILL, a lost machine's power is the exception: the folder is then
gone with it), so a lock is never stale. The file holds the holder's pid, host, start time
and what it does, for messages; after a kill that text can be stale, the lock cannot.

It protects a results folder on a LOCAL file system. On NFS or other network storage,
``flock`` may be local to each client (two machines would both get it): run the sweeps of
one results folder from one machine. ``--storage`` (Tune's checkpoints) is not locked.

Readers never take the lock: ``holder(folder)`` says who holds it (from ``/proc/locks`` on
Linux, else from the holder's pid), and ``effective_status`` reads a ``running`` record
whose lock is free as ``interrupted`` (a kill or a full disk left it unclosed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from trainables.disk import as_disk_error
from trainables.errors import ConfigError

__all__ = [
    "LOCK_FILE",
    "FolderBusy",
    "FolderLock",
    "Holder",
    "effective_status",
    "holder",
    "last_holder",
]

LOCK_FILE = "sweep.lock"


class FolderBusy(ConfigError):
    """Another process owns the folder."""


@dataclass(frozen=True)
class Holder:
    """Who took a folder's lock (as its lock file says)."""

    pid: int
    host: str
    started: str  # local time, ISO 8601
    purpose: str  # "sweep", "resume", "promotion"

    def describe(self) -> str:
        return f"a {self.purpose} (pid {self.pid} on {self.host}, since {self.started})"


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text() or "null")
        return Holder(
            int(data["pid"]), str(data["host"]), str(data["started"]), str(data["purpose"])
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def last_holder(folder: Path) -> Holder | None:
    """What the lock file says (the holder, or the last one a kill left behind)."""
    return _read(Path(folder) / LOCK_FILE)


def _locked_in_proc(path: Path) -> bool | None:
    """Whether any process holds a flock on ``path``, from /proc/locks; None where that
    file is not there to ask (not Linux)."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return False if not path.exists() else None
    except OSError:
        return None
    key = f" {os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
    return any(" FLOCK " in line and key in line for line in table.splitlines())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(folder: Path) -> Holder | None:
    """Who holds ``folder``'s lock now (None: nobody), without taking it."""
    path = Path(folder) / LOCK_FILE
    found = _read(path)
    locked = _locked_in_proc(path)
    if locked is None:  # no /proc/locks: trust a live pid on this host
        locked = found is not None and found.host == socket.gethostname() and _alive(found.pid)
    if not locked:
        return None
    return found or Holder(0, "?", "?", "process that left no note")


def effective_status(folder: Path, status: str | None) -> str | None:
    """A record's status as a reader should show it: ``running`` without a holder is a sweep
    that ended without closing its record (killed, or its disk was full): ``interrupted``."""
    if status == "running" and holder(folder) is None:
        return "interrupted"
    return status


class FolderLock:
    """The lock of one folder, taken by ``acquire`` (non-blocking) and given back by
    ``release`` or at the end of a ``with`` block."""

    def __init__(self, folder: Path, *, purpose: str) -> None:
        self.folder = Path(folder)
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock (creating the folder if needed); FolderBusy naming the holder."""
        if self._fd is not None:
            return self
        path = self.folder / LOCK_FILE
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a read-only or full disk: one line, as anywhere else
            disk = as_disk_error(err, where=str(self.folder))
            if disk is None:
                raise
            raise disk from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = _read(path)
            raise FolderBusy(
                f"{self.folder} is in use by {who.describe() if who else 'another process'}: "
                f"a {self.purpose} now would mix its writes with that one's; wait until it "
                f"ends, or stop it first (Ctrl-C; a sweep goes on with --resume)"
            ) from None
        self._fd = fd
        note = Holder(
            os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S"), self.purpose
        )
        with contextlib.suppress(OSError):  # the note is for messages; the lock is the flock
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(asdict(note)) + "\n").encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale note once it ended cleanly
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
