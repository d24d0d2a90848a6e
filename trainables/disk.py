"""Where outputs go: a folder checked before any work, and a full or read-only disk as one line.

* :func:`check_writable`: a file can be created in the folder (or, for a folder still to
  be made, in its nearest existing parent); else :class:`~trainables.errors.DiskError`
  naming the folder and why (read-only file system, permission denied). The check writes a
  hidden empty file and removes it: the only reliable answer (``os.access`` says yes to
  root on a folder whose mode says no, and nothing about a full disk).
* :func:`check_free_space`: at least ``need_mb`` MB free there.
* :func:`disk_failure`: whether an exception (or one it was raised from) is a full disk, a
  read-only file system or a denied write, in words, with the file it names; SQLite's
  ``database or disk is full`` included (Optuna's and MLflow's stores).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from trainables.errors import DiskError

__all__ = [
    "MIN_FREE_MB",
    "as_disk_error",
    "check_free_space",
    "check_writable",
    "disk_failure",
    "min_free_mb",
]

# Free space a sweep asks for before it starts: `--trials 50` on the cpu space left 8.9 MB
# (record, Optuna study, MLflow runs, per-fold checkpoints with out-of-fold predictions; 41
# of its trials pruned). LSTM_ORCH_MIN_FREE_MB changes it (0 turns the check off).
MIN_FREE_MB = 50.0

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
# SQLite's words for the same failures (sqlite3.OperationalError, wrapped by SQLAlchemy).
_SQLITE = {
    "database or disk is full": "no space left on the device",
    "attempt to write a readonly database": "read-only file system",
    "disk i/o error": "disk I/O error (is it full?)",
}


def min_free_mb() -> float:
    text = os.environ.get("LSTM_ORCH_MIN_FREE_MB", "")
    try:
        return max(float(text), 0.0) if text.strip() else MIN_FREE_MB
    except ValueError:
        return MIN_FREE_MB


def _existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists (where a new folder would be made)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: Path, *, what: str) -> None:
    """DiskError unless files can be created in folder ``path`` (or where it would be made)."""
    folder = _existing(Path(path))
    if not folder.is_dir():
        raise DiskError(f"{what} {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = _REASONS.get(err.errno, err.strerror or str(err))
        where = "" if folder == Path(path).absolute() else f" (its parent {folder})"
        raise DiskError(
            f"{what} {path}: cannot write there{where}: {reason}; choose a folder you can write to"
        ) from None


def check_free_space(path: Path, *, what: str, need_mb: float | None = None) -> None:
    """DiskError when the file system of ``path`` has less than ``need_mb`` MB free."""
    need = min_free_mb() if need_mb is None else need_mb
    if need <= 0:
        return
    folder = _existing(Path(path))
    free = shutil.disk_usage(folder).free / 2**20
    if free < need:
        raise DiskError(
            f"{what} {path}: only {free:.1f} MB free on its disk ({folder}); a sweep needs "
            f"at least {need:g} MB (its record, Optuna study, MLflow runs and checkpoints): "
            f"free some space or choose another folder (LSTM_ORCH_MIN_FREE_MB changes the "
            f"limit)"
        )


def disk_failure(err: BaseException | None) -> tuple[str, str | None] | None:
    """(reason, file or None) when ``err`` or an exception it came from is a disk failure."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _REASONS:
            name = err.filename if isinstance(err.filename, str) else None
            return _REASONS[err.errno], name
        text = str(err).lower()
        for words, reason in _SQLITE.items():
            if words in text:
                return reason, None
        err = err.__cause__ or err.__context__
    return None


def as_disk_error(err: BaseException, *, where: str, exit_code: int = 2) -> DiskError | None:
    """``err`` as one line naming ``where`` when it is a disk failure, else None."""
    found = disk_failure(err)
    if found is None:
        return None
    reason, name = found
    return DiskError(
        f"{where}: {reason}: could not write {name or 'its output'}; nothing half-written "
        f"was kept: free space (or choose a writable folder) and run it again",
        exit_code=exit_code,
    )
