"""``results/<name>/sweep.json``: the record a sweep is resumed and promoted from.

It is written before Ray starts and updated as the sweep goes (the status of every trial
that finished, the sweep's status), always by an atomic rename. It holds every setting that
decides the sweep's answer (``DECIDING``), the data source as an absolute path and a
fingerprint of the rows read, and the search space as it was loaded, so neither an edited
YAML file nor a different data file can silently change a sweep on ``--resume`` or in
promotion. Settings that only decide where and how fast it runs (``RUNTIME``) may change on
``--resume``; a deciding one given with another value is refused.

No Ray here: promotion and the report read the record too.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.records.names import check_existing_name
from orchestrator.records.state_seal import new_seal
from trainables.bars.sources import public_url
from trainables.errors import ConfigError

__all__ = [
    "DECIDING",
    "RECORD_FILE",
    "RUNTIME",
    "SweepRecord",
    "absolute_data",
    "check_resume",
    "checked_record",
    "read_record",
    "refuse_existing",
    "resume_hint",
]

RECORD_FILE = "sweep.json"

# Settings that decide the sweep's answer: --resume restores them and refuses other values.
DECIDING = (
    "data",
    "data_env",
    "table",
    "query",
    "start",
    "end",
    "snapshot",
    "timezone",
    "dst",
    "max_jump",
    "ticker",
    "tickers",
    "space",
    "trials",
    "task",
    "cv",
    "folds",
    "epochs",
    "seed",
    "n_bars",
    "overrides",
    "scheduler",
    "asha_eta",
    "asha_grace",
    "race_margin",
    "inner_val",
    "smoke_test",
)
# Settings that only decide where and how fast it runs: free to change on --resume.
RUNTIME = (
    "max_concurrent",
    "cpus_per_trial",
    "gpus_per_trial",
    "workers_per_trial",
    "max_retries",
    "address",
    "storage",
    "results_dir",
    "mlflow_uri",
    "num_cpus",
    "dashboard",
    "time_budget",
    "space_auto",
)


def absolute_data(data: str | None) -> str | None:
    """A local data path made absolute (so a record names one file), a SQLite URL's file
    too (``sqlite:///bars.db`` is relative to where the sweep ran: promotion from another
    folder would not find it); other URLs stay as they are."""
    if data is None:
        return data
    if "://" not in data:
        return str(Path(data).expanduser().resolve())
    if not data.lower().startswith("sqlite"):
        return data
    from sqlalchemy.engine import make_url  # here only: a sweep of files never needs it

    try:
        url = make_url(data)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: the source says so later
        return data
    file = url.database
    if not file or file == ":memory:" or file.startswith("file:") or Path(file).is_absolute():
        return data
    absolute = str(Path(file).expanduser().resolve())
    return url.set(database=absolute).render_as_string(hide_password=False)


def _write(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)


def read_record(out_dir: Path) -> dict:
    """The sweep.json of ``out_dir``; ConfigError naming the folder when there is none."""
    path = Path(out_dir) / RECORD_FILE
    if not path.is_file():
        raise ConfigError(
            f"no sweep at {out_dir}: {RECORD_FILE} is missing (check --name and --results-dir)"
        )
    try:
        return checked_record(json.loads(path.read_text()), path)
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


def checked_record(record: Any, path: Path) -> dict:
    """A sweep.json's content, refused in one line when it is not a record or names a sweep
    outside its results folder (an edited ``"name": "../../x"``)."""
    if not isinstance(record, dict):
        raise ConfigError(
            f"{path}: not a sweep record (a JSON object), but {type(record).__name__}"
        )
    if "name" in record:
        check_existing_name(record["name"], flag=f"{path}: name")
    return record


def refuse_existing(out_dir: Path, name: str) -> None:
    """A new sweep may not reuse the folder of an earlier one (it would mix their trials)."""
    marks = [m for m in (RECORD_FILE, "tune", "optuna.db") if (Path(out_dir) / m).exists()]
    if marks:
        raise ConfigError(
            f"{out_dir} already holds sweep {name!r} ({', '.join(marks)}): continue it with "
            f"--resume --name {name}, or choose another --name"
        )


def _same(key: str, recorded: Any, given: Any) -> bool:
    if key == "data":  # a URL is recorded without its password
        return absolute_data(recorded) == absolute_data(
            public_url(given, mask=False) if given else given
        )
    if key == "end" and recorded is not None and given is not None:
        # The record keeps the last bar read at or before --end: any --end from there on
        # reads the same rows (resume reads up to the recorded one).
        try:
            return pd.Timestamp(given) >= pd.Timestamp(recorded)
        except (TypeError, ValueError):
            return False
    if isinstance(recorded, float) or isinstance(given, float):
        try:
            return float(recorded) == float(given)
        except (TypeError, ValueError):
            return False
    return recorded == given


# Deciding settings whose command-line flag is not the field's name.
FLAGS = {"overrides": "--set", "n_bars": "--bars"}


def check_resume(record: dict, given: dict[str, Any]) -> None:
    """Refuse a deciding setting given on --resume with another value than the record's."""
    for key in DECIDING:
        if key in given and not _same(key, record.get(key), given[key]):
            flag = FLAGS.get(key, f"--{key.replace('_', '-')}")
            was = _recorded(record, key)
            raise ConfigError(
                f"--resume continues sweep {record.get('name')!r} as it was recorded: "
                f"{flag} was {was}, not {given[key]!r}; drop {flag} or start a "
                f"new sweep with another --name"
            )


def _recorded(record: dict, key: str) -> str:
    """A recorded setting as a message shows it: None is "not given" (Python's None is not)."""
    value = record.get(key)
    if value is not None:
        return repr(value)
    builtin = record.get("data") is None and record.get("data_env") is None
    if key in ("data", "data_env") and builtin:
        return f"not given (the built-in data, {record.get('n_bars', 4000):,} bars)"
    return "not given"


def resume_hint(name: str, results_dir: str, default_results_dir: str = "results") -> str:
    """The command that continues sweep ``name``, ready to paste."""
    extra = "" if results_dir == default_results_dir else f" --results-dir {results_dir}"
    return f"python -m orchestrator.tune --resume --name {name}{extra}"


class SweepRecord:
    """sweep.json, kept up to date: ``update(**fields)`` rewrites it atomically."""

    def __init__(self, out_dir: Path, record: dict) -> None:
        self.path = Path(out_dir) / RECORD_FILE
        self.data = record

    @classmethod
    def create(cls, out_dir: Path, spec, **extra: Any) -> SweepRecord:
        names = {f.name for f in fields(spec)}
        record = {k: v for k, v in asdict(spec).items() if k in names}
        record.update(extra)
        record.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
        record.setdefault("trial_status", {})
        # What --resume may unpickle (orchestrator/records/state_seal.py).
        record.setdefault("state_seal", new_seal(out_dir, record))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = cls(out_dir, record)
        out.update(status="running")
        return out

    def update(self, **changes: Any) -> None:
        self.data.update(changes)
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write(self.path, self.data)

    def finished_trials(self) -> dict[str, str]:
        """trial id -> completed / pruned / failed, for every trial that finished so far."""
        return dict(self.data.get("trial_status") or {})

    def mark_trial(self, trial_id: str, status: str) -> None:
        statuses = self.finished_trials()
        statuses[trial_id] = status
        self.update(trial_status=statuses)
