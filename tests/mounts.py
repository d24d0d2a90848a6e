"""Real small or read-only file systems for the disk tests: a tmpfs mounted for the test.

``small_fs(path, size_kb)`` mounts a tmpfs of that size (a disk that really fills up);
``read_only(path)`` a folder where writes really fail: a tmpfs remounted read-only as root,
else (not root) a folder of mode 0555. Where neither can be had, the test is skipped and
says why. Each mount is unmounted by its own path afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["fill", "read_only", "small_fs"]


def _mount(*args: str) -> str | None:
    """None when it worked, else why not."""
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    return (
        None if done.returncode == 0 else (done.stderr.strip() or f"mount exit {done.returncode}")
    )


@contextmanager
def small_fs(path: Path, *, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KB at ``path`` (created); skips where mounting is impossible."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (this test runs as a user)")
    why = _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path))
    if why:
        pytest.skip(f"cannot mount a {size_kb} KB tmpfs here: {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write zeros into ``path/filler`` until the disk is full; returns the filler."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@contextmanager
def read_only(path: Path, *, setup=None) -> Iterator[Path]:
    """Folder ``path`` that cannot be written, after ``setup(path)`` put files in it."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        why = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path))
        if why:
            pytest.skip(f"root, but cannot mount a tmpfs to make read-only: {why}")
        try:
            if setup:
                setup(path)
            why = _mount("-o", "remount,ro", str(path))
            if why:
                pytest.skip(f"cannot remount a tmpfs read-only: {why}")
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        return
    if setup:
        setup(path)
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(0o555)
    try:
        with tempfile.TemporaryFile(dir=path):
            pytest.skip("a folder of mode 0555 is still writable here")
    except OSError:
        pass
    try:
        yield path
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
