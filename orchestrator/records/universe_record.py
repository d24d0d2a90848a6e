"""``results/<universe>/universe.json`` and the universe leaderboard: one row per ticker.

``universe.json`` is written before Ray starts and kept up to date (atomically, as a sweep's
``sweep.json``): every setting of the universe (``DECIDING`` plus ``tickers``: ``--resume``
restores them and refuses other values), the tickers asked for, and per ticker its folder,
seed, status and data fingerprint, or why it was refused. Each ticker's own folder
(``tickers/<folder>/``) holds a single sweep's files, ``sweep.json`` included, so promotion,
the report and ``predict`` read a ticker as they read a sweep.

Ticker statuses: ``refused`` (its bars were refused before any work: the reason is kept),
``pending`` (not started yet), ``running``, ``finished`` (every trial ran),
``interrupted`` (some trials ran: ``--resume`` goes on with it), ``not started`` (a time
budget or Ctrl-C came first: ``--resume`` starts it) and ``failed`` (every trial failed).

No Ray here: promotion, predict and the report read the record too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from orchestrator.records.leaderboard import STATUSES
from orchestrator.records.sweep_record import SweepRecord
from orchestrator.records.tickers import ticker_dir
from trainables.errors import ConfigError

__all__ = [
    "BOARD_FILES",
    "UNIVERSE_FILE",
    "UniverseRecord",
    "is_universe",
    "read_universe_record",
    "ticker_row",
    "universe_board",
    "write_board",
]

UNIVERSE_FILE = "universe.json"
BOARD_FILES = ("universe_leaderboard.parquet", "universe_leaderboard.csv")


def is_universe(out_dir: Path) -> bool:
    return (Path(out_dir) / UNIVERSE_FILE).is_file()


def read_universe_record(out_dir: Path) -> dict:
    """The ``universe.json`` of ``out_dir``; ConfigError naming the folder when there is none."""
    path = Path(out_dir) / UNIVERSE_FILE
    if not path.is_file():
        raise ConfigError(
            f"no universe at {out_dir}: {UNIVERSE_FILE} is missing (check --name and --results-dir)"
        )
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict) or not isinstance(record.get("members"), dict):
        raise ConfigError(f"{path}: not a universe record (no 'members'); was it edited?")
    return record


class UniverseRecord(SweepRecord):
    """``universe.json``, kept up to date like a sweep's ``sweep.json`` (``create`` builds it
    from the universe's spec, as ``SweepRecord.create`` does)."""

    def __init__(self, out_dir: Path, record: dict) -> None:
        super().__init__(out_dir, record)
        self.path = Path(out_dir) / UNIVERSE_FILE

    def set_member(self, ticker: str, **fields) -> None:
        members = dict(self.data["members"])
        members[ticker] = {**members.get(ticker, {}), **fields}
        self.update(members=members)


def ticker_row(ticker: str, member: dict, board: pd.DataFrame | None, objective: str) -> dict:
    """The universe leaderboard's row of one ticker: its status, trials, best trial, and the
    baselines on the same folds (a ticker's leaderboard holds them as reference rows)."""
    row = {
        "ticker": ticker,
        "status": member.get("status"),
        "folder": member.get("folder"),
        "seed": member.get("seed"),
        **{s: 0 for s in STATUSES},
        "best_trial": None,
        "objective": math.nan,
        "skill": math.nan,
        "reason": member.get("reason"),
    }
    if board is None or board.empty:
        return row
    trials = board[board["status"] != "baseline"]
    for status in STATUSES:
        row[status] = int((trials["status"] == status).sum())
    ranked = trials[trials["rank"].notna()]
    if not ranked.empty:
        best = ranked.sort_values("rank").iloc[0]
        row.update(best_trial=best["trial_id"], objective=float(best["objective"]))
        row["skill"] = float(best["skill"]) if "skill" in best else math.nan
    for _, ref in board[board["status"] == "baseline"].iterrows():
        name = str(ref["trial_id"]).removeprefix("baseline:")
        row[f"{name}_objective"] = float(ref["objective"])
        if "skill" in ref:
            row[f"{name}_skill"] = float(ref["skill"])
    linear = [k for k in ("ridge", "logistic") if f"{k}_objective" in row]
    if linear and math.isfinite(row["objective"]):
        ref = row[f"{linear[0]}_objective"]
        better = row["objective"] < ref if objective == "mse_ratio" else row["objective"] > ref
        row[f"beats_{linear[0]}_on_cv"] = bool(better)
    return row


def universe_board(out_dir: Path, record: dict) -> pd.DataFrame:
    """One row per ticker of the universe (``ticker_row``), in the universe's order."""
    rows = []
    for ticker, member in record["members"].items():
        path = ticker_dir(out_dir, ticker) / "leaderboard.parquet"
        board = pd.read_parquet(path) if path.is_file() else None
        rows.append(ticker_row(ticker, member, board, record.get("objective", "")))
    return pd.DataFrame(rows)


def write_board(out_dir: Path, board: pd.DataFrame) -> dict[str, Path]:
    """``universe_leaderboard.parquet`` and ``.csv``, each by temporary name and rename."""
    paths = {}
    for name in BOARD_FILES:
        path = Path(out_dir) / name
        tmp = path.with_name(f".{name}.tmp")
        if name.endswith(".csv"):
            board.to_csv(tmp, index=False)
        else:
            board.to_parquet(tmp, index=False)
        tmp.replace(path)
        paths[name] = path
    return paths
