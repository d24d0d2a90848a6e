"""Outputs that are complete or absent: written under a temporary name, renamed at the end.

A rename within one folder is atomic on a local (POSIX) file system, so a reader, a crash,
Ctrl-C or SIGTERM never sees half a file or half a folder. Cloud URIs (``s3://...``) have no
rename; docs/scaling.md says what is and is not atomic there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["partial_name", "replace_folder", "write_file"]


def partial_name(target: Path) -> Path:
    """``.<name>.partial-<pid>`` beside ``target``: hidden, and one per process."""
    return target.parent / f".{target.name}.partial-{os.getpid()}"


def write_file(target: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``target``; on any failure ``target`` is as it
    was (absent or the previous file) and no temporary file is left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(target)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def replace_folder(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` at ``target``; an existing ``target`` is kept aside
    until ``new`` is in place, so a failure leaves either the old folder or the new one."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
