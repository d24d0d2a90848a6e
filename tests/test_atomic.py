"""Complete or absent: files and folders replaced only once they are finished."""

from __future__ import annotations

import os

import pytest

from trainables import atomic


def _folder(path, text):
    path.mkdir()
    (path / "model.pt").write_text(text)
    return path


def test_replace_folder_puts_the_new_one_in_place(tmp_path):
    # Rule: the new folder replaces the old one, and nothing else is left beside it.
    target = _folder(tmp_path / "models", "old")
    atomic.replace_folder(_folder(tmp_path / ".staging", "new"), target)
    assert (target / "model.pt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_a_failed_swap_keeps_the_old_folder(tmp_path, monkeypatch):
    # Rule: if moving the new folder in fails (injected), the old models/ is still there
    # (promotion used to delete it first).
    target = _folder(tmp_path / "models", "old")
    staging = _folder(tmp_path / ".staging", "new")
    real = os.replace

    def fails_for_staging(src, dst):
        if str(src) == str(staging):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fails_for_staging)
    with pytest.raises(OSError):
        atomic.replace_folder(staging, target)
    assert (target / "model.pt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", "models"]


def test_write_file_leaves_the_previous_file_when_writing_fails(tmp_path):
    # Rule: a write that raises half way leaves the earlier file and no temporary one.
    target = tmp_path / "p.csv"
    target.write_text("old")

    def half(tmp):
        tmp.write_text("ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_file(target, half)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]
