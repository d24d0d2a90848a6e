"""The sweep's answer on disk: leaderboard, best config and fold audit in results/<name>/.

Files are written to a temporary name and renamed, so an interrupted write never leaves a
half-written leaderboard behind.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["TrialRecord", "build_leaderboard", "read_leaderboard", "write_results"]

STATUSES = ("completed", "pruned", "failed", "unfinished")
# Per-fold metrics shown next to the objective when the trials report them.
FOLD_EXTRAS = ("skill", "directional_accuracy", "r2", "accuracy")


@dataclass
class TrialRecord:
    """What the driver knows about one trial after (or during) a sweep."""

    trial_id: str
    params: dict
    folds: list[dict] = field(default_factory=list)  # per-fold metric dicts, fold order
    status: str = "unfinished"  # one of STATUSES
    reason: str | None = None
    seconds: float = 0.0

    @property
    def folds_done(self) -> int:
        return len(self.folds)


def _score(folds: list[dict], name: str) -> tuple[float, float]:
    values = [f[name] for f in folds if name in f]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values))


def build_leaderboard(
    records: list[TrialRecord], *, n_folds: int, objective: str, mode: str
) -> pd.DataFrame:
    """One row per trial, best first: params, per-fold metrics, mean, std, status, seconds.

    Only trials that ran every fold are ranked; pruned and failed trials follow, unranked.
    """
    rows = []
    for rec in records:
        mean, std = _score(rec.folds, objective)
        row = {
            "trial_id": rec.trial_id,
            "status": rec.status,
            "objective": mean,
            "objective_std": std,
            "folds_done": rec.folds_done,
            "stopped_at_fold": rec.folds_done if rec.status == "pruned" else None,
            "seconds": round(rec.seconds, 3),
            "train_seconds": round(sum(f.get("seconds", 0.0) for f in rec.folds), 3),
            "epochs_run": int(sum(f.get("epochs", 0) for f in rec.folds)),
            "reason": rec.reason,
        }
        row.update({f"param_{k}": _plain(v) for k, v in sorted(rec.params.items())})
        for k in range(n_folds):
            fold = rec.folds[k] if k < len(rec.folds) else {}
            for name in (objective, *FOLD_EXTRAS):
                if name == objective or name in fold:
                    row[f"fold{k}_{name}"] = fold.get(name, math.nan)
        if any("skill" in f for f in rec.folds):
            row["skill"] = _score(rec.folds, "skill")[0]
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    complete = board["status"] == "completed"
    ascending = mode == "min"
    ranked = board[complete].sort_values("objective", ascending=ascending, kind="stable")
    rest = board[~complete].sort_values(
        ["folds_done", "objective"], ascending=[False, ascending], kind="stable"
    )
    board = pd.concat([ranked, rest], ignore_index=True)
    board.insert(
        0, "rank", [i + 1 if s == "completed" else None for i, s in enumerate(board["status"])]
    )
    board["rank"] = board["rank"].astype("Int64")
    board["stopped_at_fold"] = board["stopped_at_fold"].astype("Int64")
    return board


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return v


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_results(
    out_dir: Path,
    *,
    leaderboard: pd.DataFrame,
    best_config: dict | None,
    audit: pd.DataFrame,
    spec: dict,
) -> dict[str, Path]:
    """Write every result file of a sweep; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "leaderboard.parquet": out_dir / "leaderboard.parquet",
        "leaderboard.csv": out_dir / "leaderboard.csv",
        "fold_audit.csv": out_dir / "fold_audit.csv",
        "sweep.json": out_dir / "sweep.json",
    }
    _atomic_write(paths["leaderboard.parquet"], lambda p: leaderboard.to_parquet(p, index=False))
    _atomic_write(paths["leaderboard.csv"], lambda p: leaderboard.to_csv(p, index=False))
    _atomic_write(paths["fold_audit.csv"], lambda p: audit.to_csv(p, index=False))
    _atomic_write(
        paths["sweep.json"], lambda p: p.write_text(json.dumps(spec, indent=2, default=str))
    )
    if best_config is not None:
        paths["best_config.yaml"] = out_dir / "best_config.yaml"
        _atomic_write(
            paths["best_config.yaml"],
            lambda p: p.write_text(yaml.safe_dump(best_config, sort_keys=True)),
        )
    return paths


def read_leaderboard(out_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(out_dir / "leaderboard.parquet")
