"""``python -m orchestrator.show`` for universes (``--tickers``, docs/universes.md).

    python -m orchestrator.show --name u1               # the universe: settings, one row per ticker, verdict
    python -m orchestrator.show --name u1 --ticker T    # one ticker: what show prints for a sweep

A universe's folder holds ``universe.json`` (not ``sweep.json``) and one single sweep's
folder per ticker under ``tickers/``; the list of every sweep shows it as one row. Pure
reading, as the rest of show: the universe leaderboard is rebuilt from the tickers'
leaderboards (orchestrator/records/universe_record.py), the lock is looked at, never taken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from orchestrator.records.folder_lock import effective_status, holder
from orchestrator.records.tickers import member_ticker, ticker_dir
from orchestrator.records.universe_record import (
    UNIVERSE_FILE,
    is_universe,
    read_universe_record,
    universe_board,
)
from trainables.errors import ConfigError

__all__ = ["describe_universe", "is_universe", "ticker_folder", "universe_row"]

_PROMOTED = "universe_promoted.json"  # orchestrator/promotion/universe.py
_COLUMNS = ("ticker", "status", "completed", "pruned", "failed", "objective", "skill")


def _status(out_dir: Path, record: dict) -> str:
    status = record.get("status", "unknown")
    now = holder(out_dir)
    if status == "running" and now is not None:
        return f"running: {now.describe()}"
    if status in ("running", "interrupted"):
        ended = " (its process ended without closing it)" if status == "running" else ""
        return f"interrupted{ended}; continue: {record.get('resume_command', '--resume')}"
    return status


def _board_text(board: pd.DataFrame) -> str:
    columns = [c for c in _COLUMNS if c in board.columns]
    columns += [c for c in board.columns if c.endswith("_skill") or c.startswith("beats_")]
    shown = board[columns].copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(
                lambda v: "n/a" if not math.isfinite(v) else f"{v:.4g}"
            )
    return shown.fillna("n/a").to_string(index=False)


def describe_universe(out_dir: Path) -> list[str]:
    """The lines ``show --name <universe>`` prints."""
    record = read_universe_record(out_dir)
    members = record.get("members", {})
    by_status: dict[str, int] = {}
    for member in members.values():
        by_status[member.get("status", "?")] = by_status.get(member.get("status", "?"), 0) + 1
    lines = [
        f"Universe {record.get('name', out_dir.name)!r}: {len(members)} tickers x "
        f"{record.get('trials')} trials, space {record.get('space')}, {record.get('folds')} "
        f"folds each, objective {record.get('objective')} ({record.get('mode')}), seed "
        f"{record.get('seed')}; created {str(record.get('created', '?')).replace('T', ' ')}",
        f"Data: {record.get('data_source', '?')}",
        f"Status: {_status(out_dir, record)}; tickers: "
        + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())),
        _board_text(universe_board(out_dir, record)),
    ]
    for ticker, member in members.items():
        if member.get("status") == "refused":
            lines.append(f"{ticker}: refused: {member.get('reason')}")
    promoted = out_dir / _PROMOTED
    if promoted.is_file():
        verdict = json.loads(promoted.read_text())
        lines.append(f"Verdict: {verdict.get('headline')}")
        winners = verdict.get("fdr", {}).get("winners") or []
        lines.append(f"Winners: {', '.join(winners) if winners else 'none'}")
    lines.append(f"One ticker: python -m orchestrator.show --name {out_dir.name} --ticker <ticker>")
    return lines


def ticker_folder(out_dir: Path, ticker: str) -> Path:
    """The sweep folder of ``ticker`` in the universe at ``out_dir``; ConfigError naming the
    universe's tickers when it has no such ticker."""
    members = read_universe_record(out_dir).get("members", {})
    ticker = member_ticker(members, ticker, universe=out_dir.name)
    folder = ticker_dir(out_dir, ticker)
    if not (folder / "sweep.json").is_file():
        raise ConfigError(f"--ticker {ticker!r}: status {members[ticker].get('status')}, no sweep")
    return folder


def universe_row(out_dir: Path) -> dict:
    """The universe's row in the list of every sweep."""
    record = json.loads((out_dir / UNIVERSE_FILE).read_text())
    board = universe_board(out_dir, record)
    trials = int(record.get("trials") or 0) * len(record.get("members", {}))
    done = int(board[["completed", "pruned", "failed"]].to_numpy().sum()) if len(board) else 0
    verdict = "-"
    if (out_dir / _PROMOTED).is_file():
        fdr = json.loads((out_dir / _PROMOTED).read_text()).get("fdr", {})
        verdict = f"{len(fdr.get('winners') or [])}/{fdr.get('family')} tickers (FDR)"
    return {
        "sweep": f"{out_dir.name} (universe, {len(record.get('members', {}))} tickers)",
        "status": effective_status(out_dir, record.get("status")) or "?",
        "trials": f"{done}/{trials}",
        "completed": int(board["completed"].sum()) if len(board) else 0,
        "baselines (test)": verdict,
        "created": str(record.get("created", "?")).replace("T", " "),
    }
