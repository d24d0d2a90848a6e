"""``python -m orchestrator.show``: past and running sweeps in the terminal.

    python -m orchestrator.show                      # every sweep in results/: status, trials, best skill, date
    python -m orchestrator.show --name <sweep>       # one sweep: settings, statuses, top trials with the
                                                     # baselines on the same folds, fold audit, verdict
    python -m orchestrator.show --name <universe> [--ticker T]   # a universe: one row per ticker

Pure reading: it opens only the files a sweep and a promotion write (sweep.json,
leaderboard.parquet, fold_audit.csv, promoted.json and, while a sweep runs, its optuna.db
read-only), never takes a folder's lock (it only asks who holds it, to tell a running sweep
from one that was killed: orchestrator.records.folder_lock.holder) and never starts Ray, so it works
while a sweep runs and on a machine without one. A folder it cannot read is one line, not a traceback; an unknown sweep
is one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import pandas as pd

from orchestrator.records.folder_lock import effective_status, holder
from orchestrator.records.leaderboard import BASELINE, table_text
from orchestrator.records.names import check_existing_name, decode_ticker
from orchestrator.records.sweep_record import RECORD_FILE
from orchestrator.universe.show import describe_universe, is_universe, ticker_folder, universe_row
from trainables.cli import ArgumentParser
from trainables.errors import ConfigError, UserError

__all__ = ["describe_sweep", "list_sweeps", "main"]

# Folders of results/ that are not sweeps (MLflow's artifact store).
_NOT_SWEEPS = ("mlartifacts", "mlruns")
_TOP = 10


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: unreadable ({type(err).__name__}: {err})") from None


def _num(value, fmt: str = ".5g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, fmt)


def _ago(stamp: str | None) -> str:
    """'12 s ago' / '3 min ago' / '2.5 h ago' from sweep.json's local time stamp."""
    try:
        seconds = time.time() - time.mktime(time.strptime(stamp or "", "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "at an unknown time"
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.1f} h ago"


def _counts(record: dict, board: pd.DataFrame | None) -> dict[str, int]:
    """Trial statuses: the leaderboard's once written, else sweep.json's (kept as trials end)."""
    if board is not None and not board.empty:
        trials = board[board["status"] != BASELINE]
        return {str(k): int(v) for k, v in trials["status"].value_counts().items()}
    out: dict[str, int] = {}
    for status in (record.get("trial_status") or {}).values():
        out[status] = out.get(status, 0) + 1
    return out


def _leaderboard(out_dir: Path) -> pd.DataFrame | None:
    path = out_dir / "leaderboard.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def _status(out_dir: Path, record: dict) -> str:
    """The record's status as it is now: a ``running`` record whose lock nobody holds was
    left by a sweep that ended without closing it (orchestrator.records.folder_lock; the lock is
    looked at, never taken)."""
    status = record.get("status", "unknown")
    now = holder(out_dir)
    if status == "running" and now is not None:
        return f"running: {now.describe()}; last update {_ago(record.get('updated'))}"
    if status in ("running", "interrupted"):
        ended = " (its process ended without closing it)" if status == "running" else ""
        return f"interrupted{ended}; continue: {record.get('resume_command', '--resume')}"
    if now is not None:  # a finished sweep being promoted
        return f"{status}; now {now.describe()}"
    return status


# ---------------------------------------------------------------------- one sweep


def describe_sweep(out_dir: Path, *, top: int = _TOP) -> list[str]:
    """The lines ``show --name`` prints for the sweep in ``out_dir``."""
    out_dir = Path(out_dir)
    if not (out_dir / RECORD_FILE).is_file():
        raise ConfigError(f"no sweep at {out_dir}: {RECORD_FILE} is missing")
    record = _read_json(out_dir / RECORD_FILE)
    objective, mode = record.get("objective", "objective"), record.get("mode", "min")
    lines = [
        f"Sweep {record.get('name', out_dir.name)!r}: space {record.get('space')}, "
        f"{record.get('trials')} trials, {record.get('cv')} CV with {record.get('folds')} "
        f"folds, objective {objective} ({mode}), scheduler {record.get('scheduler')}, seed "
        f"{record.get('seed')}; created {record.get('created', '?').replace('T', ' ')}",
        f"Data: {record.get('data_summary') or record.get('data_source', '?')}",
        f"Status: {_status(out_dir, record)}",
    ]
    try:
        board = _leaderboard(out_dir)
    except (OSError, ValueError) as err:
        board = None
        lines.append(
            f"leaderboard.parquet: unreadable ({type(err).__name__}); shown from sweep.json"
        )
    counts = _counts(record, board)
    done = sum(counts.values())
    order = ("completed", "pruned", "failed", "interrupted")
    text = ", ".join(
        f"{counts.get(s, 0)} {s}" for s in order if counts.get(s) or s != "interrupted"
    )
    lines.append(f"Trials: {done} of {record.get('trials')} finished: {text}")
    lines += _top_trials(out_dir, record, board, objective, mode, top)
    lines += _fold_audit(out_dir)
    lines += _promotion(out_dir)
    return lines


def _top_trials(out_dir, record, board, objective: str, mode: str, top: int) -> list[str]:
    if board is None or board.empty:
        return _running_trials(out_dir, record, objective, mode, top)
    trials = board[board["status"] != BASELINE]
    ranked = trials[trials["rank"].notna()].head(top)
    refs = board[board["status"] == BASELINE]
    head = f"Top trials by {objective} ({mode}) over {record.get('folds')} purged CV folds"
    if ranked.empty:
        head = f"No trial ran every fold ({objective} is ranked over complete trials only)"
    skill = ["skill"] if "skill" in board.columns else []
    params = [c for c in board.columns if c.startswith("param_")]
    cols = ["rank", "trial_id", "objective", "objective_std", *skill, *params]
    shown = pd.concat([ranked[cols], refs.reindex(columns=cols)], ignore_index=True)
    if shown.empty:
        return [head]
    lines = [head + ":", table_text(shown.rename(columns=lambda c: c.removeprefix("param_")))]
    if not refs.empty:
        lines[0] = head + "; below them the baselines on the same folds:"
        settings = refs.get("baseline_setting", pd.Series([""] * len(refs), index=refs.index))
        described = [
            f"{str(t).removeprefix('baseline:')}: {s}"
            for t, s in zip(refs["trial_id"], settings, strict=True)
            if isinstance(s, str) and s
        ]
        if described:
            lines.append("Baseline settings: " + "; ".join(described))
    return lines


def _running_trials(out_dir: Path, record: dict, objective: str, mode: str, top: int):
    """A sweep without a leaderboard yet: its baselines (sweep.json) and the completed
    trials the Optuna study holds so far."""
    lines = ["No leaderboard yet (it is written when the sweep ends or is stopped)."]
    for b in record.get("baselines") or []:
        skill = f", skill {_num(b.get('skill'), '+.4f')}" if b.get("skill") is not None else ""
        lines.append(
            f"Baseline {b['name']} on the same folds: {objective} {_num(b.get('objective'))}"
            f"{skill} ({b.get('setting', '')})"
        )
    study = out_dir / "optuna.db"
    if not study.is_file():
        return lines
    try:
        frame = _study_frame(study, record.get("name", out_dir.name))
    except Exception as err:  # noqa: BLE001 - any store error is one line, never a traceback
        return [*lines, f"optuna.db: not readable now ({type(err).__name__}); try again"]
    done = frame[frame["state"] == "COMPLETE"].sort_values("value", ascending=mode == "min")
    if done.empty:
        return [*lines, "No trial has completed every fold yet."]
    done = done.head(top).rename(columns={"value": objective})
    if objective == "mse_ratio":
        done.insert(2, "skill", 1.0 - done[objective])
    params = [c for c in done.columns if c.startswith("params_")]
    table = done[["number", objective, *(["skill"] if "skill" in done else []), *params]]
    table = table.rename(columns=lambda c: c.removeprefix("params_"))
    return [
        *lines,
        "Completed trials so far (from the Optuna study), best first:",
        table_text(table),
    ]


def _study_frame(path: Path, name: str) -> pd.DataFrame:
    """The study's trials, read through a read-only sqlite connection (the sweep writes it)."""
    import optuna  # only for a running sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    return optuna.load_study(study_name=name, storage=storage).trials_dataframe()


def _fold_audit(out_dir: Path) -> list[str]:
    path = out_dir / "fold_audit.csv"
    if not path.is_file():
        return ["Fold audit: not written yet (fold_audit.csv comes with the leaderboard)"]
    try:
        audit = pd.read_csv(path)
    except (OSError, ValueError) as err:
        return [f"fold_audit.csv: unreadable ({type(err).__name__})"]
    want = {
        "fold": "fold",
        "n_fit": "train",
        "n_stop": "early-stop",
        "n_eval": "eval",
        "eval_first_time": "eval from",
        "eval_last_time": "eval to",
        "purged": "purged",
        "embargoed": "embargoed",
    }
    cols = [c for c in want if c in audit.columns]
    return [
        "Fold audit (samples per fold; rows purged and embargoed around each evaluation block):",
        audit[cols].rename(columns=want).to_string(index=False),
    ]


def _promotion(out_dir: Path) -> list[str]:
    path = out_dir / "promoted.json"
    if not path.is_file():
        universe = out_dir.parent.parent  # a universe's ticker: results/<u>/tickers/<folder>
        if out_dir.parent.name == "tickers" and is_universe(universe):
            flags = f"--name {universe.name} --ticker {decode_ticker(out_dir.name)}"
        else:
            flags = f"--name {out_dir.name}"
        return [f"Not promoted yet: python -m orchestrator.promote {flags}"]
    try:
        index = _read_json(path)
        chosen, data = index["chosen"], index["data"]
    except (ConfigError, KeyError) as err:
        return [f"promoted.json: unreadable ({err})"]
    lines = [
        f"Promoted {index.get('created', '?').replace('T', ' ')}: {index.get('top_k')} config(s) "
        f"x {index.get('seeds')} seed(s); test part {data.get('n_test', '?'):,} samples "
        f"({data.get('test_first_time')} .. {data.get('test_last_time')})",
        f"Verdict: {chosen.get('verdict')}",
    ]
    mlflow = chosen.get("mlflow") or {}
    if mlflow.get("version"):
        lines.append(
            f"Registered: {mlflow['registered_model']} version {mlflow['version']} as "
            f"{mlflow.get('alias', '?')} (models:/{mlflow['registered_model']}@"
            f"{mlflow.get('alias', mlflow['version'])})"
        )
    lines.append(f"Report: {out_dir / 'report.html'}")
    return lines


# ---------------------------------------------------------------------- every sweep


def _summary_row(out_dir: Path) -> dict:
    """One row of the list: name, status, trials, best, verdict, date (or what is wrong)."""
    record = _read_json(out_dir / RECORD_FILE)
    board = _leaderboard(out_dir)
    counts = _counts(record, board)
    best = "n/a"
    if board is not None and not board.empty and board["rank"].notna().any():
        row = board[board["rank"].notna()].iloc[0]
        best = (
            _num(row.get("skill"), "+.4f") if "skill" in board.columns else _num(row["objective"])
        )
    promoted = "-"
    if (out_dir / "promoted.json").is_file():
        verdict = _read_json(out_dir / "promoted.json").get("chosen", {}).get("verdict", "")
        promoted = "does NOT beat" if "NOT" in verdict else "beats" if verdict else "?"
    return {
        "sweep": out_dir.name,
        "status": effective_status(out_dir, record.get("status")) or "?",
        "trials": f"{sum(counts.values())}/{record.get('trials', '?')}",
        "completed": counts.get("completed", 0),
        "best skill" if record.get("objective") == "mse_ratio" else "best": best,
        "baselines (test)": promoted,
        "created": str(record.get("created", "?")).replace("T", " "),
    }


def list_sweeps(results_dir: Path) -> list[str]:
    """The lines ``show`` prints without --name: one row per sweep in ``results_dir``."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"--results-dir {results_dir}: no such folder (no sweep has run here)")
    rows, odd = [], []
    for d in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        if d.name.startswith(".") or d.name in _NOT_SWEEPS:
            continue
        if is_universe(d):  # a universe: one row (orchestrator/universe/show.py)
            try:
                rows.append(universe_row(d))
            except (ConfigError, OSError, ValueError, KeyError) as err:
                odd.append(f"{d.name}: unreadable universe ({err})")
            continue
        if not (d / RECORD_FILE).is_file():
            runs = [r for r in d.iterdir() if (r / "config.json").is_file()]
            if d.name == "train" and runs:  # python -m trainables.train's default folder
                odd.append(f"train: {len(runs)} single-model run(s) of python -m trainables.train")
            else:
                odd.append(f"{d.name}: no {RECORD_FILE} (not a sweep, or one that never started)")
            continue
        try:
            rows.append(_summary_row(d))
        except (ConfigError, OSError, ValueError, KeyError) as err:
            odd.append(f"{d.name}: unreadable ({err})")
    if not rows:
        return [f"No sweeps in {results_dir}/ yet: python -m orchestrator.tune --smoke-test", *odd]
    table = pd.DataFrame(rows).sort_values("created", kind="stable").fillna("n/a")
    lines = [f"Sweeps in {results_dir}/ (python -m orchestrator.show --name <sweep> for one):"]
    return [*lines, table.to_string(index=False), *odd]


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m orchestrator.show",
        description="Past and running sweeps: without --name every sweep in --results-dir, "
        "with it one sweep's settings, trials, baselines, fold audit and verdict. Reads "
        "files only (no Ray, no lock).",
    )
    p.add_argument("--name", help="one sweep (a folder of --results-dir)")
    p.add_argument("--results-dir", default="results", help="default: %(default)s")
    p.add_argument("--ticker", help="with --name of a universe: one ticker's sweep")
    p.add_argument("--top", type=int, default=_TOP, help="trials shown (default: %(default)s)")
    try:
        args = p.parse_args(argv)
        lines = _lines(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _lines(args) -> list[str]:
    results_dir = Path(args.results_dir)
    if args.name is None:
        if args.ticker is not None:
            raise ConfigError("--ticker needs --name of a universe")
        return list_sweeps(results_dir)
    out_dir = _sweep_dir(results_dir, args.name)
    if is_universe(out_dir):
        if args.ticker is None:
            return describe_universe(out_dir)
        return describe_sweep(ticker_folder(out_dir, args.ticker), top=args.top)
    if args.ticker is not None:
        raise ConfigError(f"--ticker: {args.name!r} is a single sweep, not a universe")
    return describe_sweep(out_dir, top=args.top)


def _sweep_dir(results_dir: Path, name: str) -> Path:
    out_dir = results_dir / check_existing_name(name)  # only folders of --results-dir
    if (out_dir / RECORD_FILE).is_file() or is_universe(out_dir):
        return out_dir
    known = []
    if results_dir.is_dir():
        known = sorted(
            d.name for d in results_dir.iterdir() if (d / RECORD_FILE).is_file() or is_universe(d)
        )
    there = f"sweeps there: {', '.join(known)}" if known else "no sweeps there"
    raise ConfigError(f"no sweep {name!r} in {results_dir}/ ({there})")


if __name__ == "__main__":
    sys.exit(main())
