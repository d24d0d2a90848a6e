"""--resume unpickles only folders this user's own sweeps sealed (orchestrator/records/state_seal.py):
a folder made elsewhere, moved, or from before seals is refused in one line before anything
is read, unless --trust-state vouches for it. The full CLI round trip (another user's key
refused, --trust-state resuming and resealing) is in tests/test_resume.py."""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from orchestrator.records.state_seal import key_path, new_seal, resealed, seal_holds, seal_problem
from orchestrator.tune import parse_args
from trainables.errors import ConfigError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def sealed(folder, **fields) -> dict:
    record = {"name": folder.name, "created": "2026-12-06T08:00:00", **fields}
    record["state_seal"] = new_seal(folder, record)
    return record


def test_a_seal_holds_only_for_its_folder_name_start_and_key(home, monkeypatch):
    folder = home / "results" / "s"
    record = sealed(folder)
    assert seal_holds(folder, record)
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600 and len(key_path().read_bytes()) == 32
    assert not seal_holds(home / "results" / "t", record)  # copied or moved elsewhere
    assert not seal_holds(folder, {**record, "created": "2026-12-06T08:00:01"})
    assert not seal_holds(folder, {**record, "name": "other"})
    forged = {**record, "state_seal": {**record["state_seal"], "mac": "0" * 64}}
    assert not seal_holds(folder, forged)
    assert not seal_holds(folder, {k: v for k, v in record.items() if k != "state_seal"})
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "another-user"))
    assert not seal_holds(folder, record)  # another user's key
    assert "made elsewhere or moved here" in seal_problem(record, folder / "sweep.json")
    assert "made elsewhere" not in seal_problem(
        {k: v for k, v in record.items() if k != "state_seal"}, folder / "sweep.json"
    )
    # A --trust-state resume seals the record with this user's key.
    again = {**record, **resealed(folder, record)}
    assert seal_holds(folder, again) and resealed(folder, again) == {}


def test_no_key_to_be_had_leaves_the_sweep_unsealed_and_says_why(home):
    key_path().parent.mkdir(parents=True)
    key_path().write_bytes(b"short")  # not a key this project wrote: never trusted
    folder = home / "results" / "s"
    record = sealed(folder)
    assert "unsealed" in record["state_seal"] and not seal_holds(folder, record)
    assert "was started without a seal" in seal_problem(record, folder / "sweep.json")


def write(folder, name: str, record: dict) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(record))
    return (folder / name).read_bytes()


@pytest.mark.parametrize("kind", ["sweep.json", "universe.json"])
def test_resume_refuses_an_unsealed_unfinished_folder_before_reading_on(home, kind):
    folder = home / "results" / "old"
    record = {"name": "old", "created": "2026-11-01T10:00:00", "status": "interrupted"}
    if kind == "universe.json":
        record["members"] = {}
    before = write(folder, kind, record)
    argv = ["--resume", "--name", "old", "--results-dir", str(home / "results")]
    with pytest.raises(ConfigError) as err:
        parse_args(argv)
    line = str(err.value)
    assert line.startswith(f"{folder / kind}: this sweep was started before sweeps were sealed")
    assert "--trust-state" in line and "\n" not in line
    assert (folder / kind).read_bytes() == before
    assert parse_args([*argv, "--trust-state"]).resume  # vouched for: it goes on
    # A finished sweep's resume only shows its results: nothing is unpickled, nothing asked.
    write(folder, kind, {**record, "status": "finished"})
    assert parse_args(argv).resume


def test_a_sealed_folder_copied_elsewhere_is_refused(home):
    folder = home / "results" / "mine"
    write(folder, "sweep.json", sealed(folder, status="interrupted"))
    assert parse_args(["--resume", "--name", "mine", "--results-dir", str(home / "results")])
    shutil.copytree(folder, home / "received" / "mine")
    with pytest.raises(ConfigError, match="made elsewhere or moved here"):
        parse_args(["--resume", "--name", "mine", "--results-dir", str(home / "received")])


def test_sweeps_starting_at_once_share_one_whole_key(home):
    # Each process writes its key whole, then links it into place: one wins, none reads a
    # half-written file, and every seal made meanwhile holds under the key that won.
    import multiprocessing

    folders = [home / "results" / f"s{k}" for k in range(6)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        records = pool.map(_seal_in_child, [(str(home / "config"), str(f)) for f in folders])
    assert all("mac" in r["state_seal"] for r in records)
    assert all(seal_holds(f, r) for f, r in zip(folders, records, strict=True))
    assert sorted(p.name for p in key_path().parent.iterdir()) == ["state.key"]


def _seal_in_child(args) -> dict:
    import os

    config, folder = args
    os.environ["XDG_CONFIG_HOME"] = config
    from pathlib import Path

    return sealed(Path(folder))
