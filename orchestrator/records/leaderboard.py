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

from orchestrator.stats.objective import running_objective

__all__ = [
    "STATUSES",
    "TrialRecord",
    "build_leaderboard",
    "trial_rows",
    "with_baselines",
    "objective_value",
    "read_leaderboard",
    "fold_metrics",
    "previous_best",
    "trial_summary",
    "write_results",
]

# completed: every fold scored; pruned: stopped by the scheduler; failed: diverged or
# crashed past its retries; interrupted: cut by Ctrl-C, SIGTERM or a lost driver (--resume
# goes on with it).
STATUSES = ("completed", "pruned", "failed", "interrupted")
# Reference rows (orchestrator/sweep/cv_baselines.py): never ranked, never read as trials.
BASELINE = "baseline"
# Per-fold metrics shown next to the objective when the trials report them (mse and
# naive_mse in the target's original units).
FOLD_EXTRAS = ("skill", "mse", "naive_mse", "directional_accuracy", "r2", "accuracy")


@dataclass
class TrialRecord:
    """What the driver knows about one trial after (or during) a sweep."""

    trial_id: str
    params: dict
    folds: list[dict] = field(default_factory=list)  # per-fold metric dicts, fold order
    status: str = "interrupted"  # one of STATUSES
    reason: str | None = None
    seconds: float = 0.0
    stopped_mid_fold: bool = False  # pruned inside a fold (else at a fold's end)

    @property
    def folds_done(self) -> int:
        return len(self.folds)


def objective_value(folds: list[dict], name: str) -> tuple[float, float]:
    """(objective over the folds, std of the per-fold values)."""
    values = [f[name] for f in folds if name in f]
    if not values:
        return math.nan, math.nan
    if name == "mse_ratio" and all("mse_by_target" in f for f in folds):
        return running_objective(folds, "regression"), float(np.std(values))
    return float(np.mean(values)), float(np.std(values))


def build_leaderboard(
    records: list[TrialRecord], *, n_folds: int, objective: str, mode: str
) -> pd.DataFrame:
    """One row per trial, best first: params, per-fold metrics, objective, std, status.

    ``objective`` is the sweep's objective over the folds a trial ran (pooled for
    regression, orchestrator/stats/objective.py) and, for regression, ``skill = 1 - objective``.
    Only trials that ran every fold are ranked; the others follow, unranked.
    """
    rows = []
    for rec in records:
        mean, std = objective_value(rec.folds, objective)
        row = {
            "trial_id": rec.trial_id,
            "status": rec.status,
            "objective": mean,
            "objective_std": std,
            "folds_done": rec.folds_done,
            "stopped": _stopped(rec, n_folds),
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
        if objective == "mse_ratio":
            row["skill"] = 1.0 - mean
        elif any("skill" in f for f in rec.folds):
            row["skill"] = objective_value(rec.folds, "skill")[0]
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
    return board


def with_baselines(
    board: pd.DataFrame, baselines: list, *, n_folds: int, objective: str, mode: str
) -> pd.DataFrame:
    """The trials' leaderboard with the baselines' reference rows after them: status
    ``baseline``, rank empty, trial_id ``baseline:<name>``, the same objective, skill and
    per-fold columns, and ``baseline_setting`` (e.g. "window 20, alpha 10")."""
    if not baselines:
        return board
    rows = build_leaderboard(
        [b.record() for b in baselines], n_folds=n_folds, objective=objective, mode=mode
    )
    rows["rank"] = pd.array([pd.NA] * len(rows), dtype="Int64")
    # build_leaderboard sorts by objective: match each setting to its row by trial id
    rows["baseline_setting"] = rows["trial_id"].map({b.trial_id: b.setting for b in baselines})
    # Listed in the given order (the naive one first), whatever their objective.
    order = {b.trial_id: k for k, b in enumerate(baselines)}
    rows = rows.sort_values("trial_id", key=lambda s: s.map(order), kind="stable")
    out = pd.concat([board, rows], ignore_index=True) if not board.empty else rows
    out["rank"] = out["rank"].astype("Int64")
    for c in board.columns:  # an int or bool parameter stays one (empty on baseline rows)
        if pd.api.types.is_bool_dtype(board[c]):
            out[c] = out[c].astype("boolean")
        elif pd.api.types.is_integer_dtype(board[c]):
            out[c] = out[c].astype("Int64")
    return out


def trial_rows(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's trials only (without the baselines' reference rows)."""
    if board.empty or "status" not in board.columns:
        return board
    return board[board["status"] != BASELINE].reset_index(drop=True)


def _stopped(rec: TrialRecord, n_folds: int) -> str | None:
    """Where a pruned trial stopped: 'in fold 1 of 5' or 'after fold 2 of 5' (1-based)."""
    if rec.status != "pruned":
        return None
    if rec.stopped_mid_fold:
        return f"in fold {rec.folds_done + 1} of {n_folds}"
    return f"after fold {rec.folds_done} of {n_folds}"


def trial_summary(rec: TrialRecord, objective: str) -> dict[str, float]:
    """A trial's summary numbers for MLflow: the objective over its folds, std, skill."""
    out = {"folds_done": float(rec.folds_done), "seconds": rec.seconds}
    value, std = objective_value(rec.folds, objective)
    if math.isfinite(value):
        out[objective] = value
        out[f"std_{objective}"] = std
        if objective == "mse_ratio":
            out["skill"] = 1.0 - value
    return out


# Per-fold values that are no measurements: the fold's index (MLflow's step says it) and
# settings a fold chose (batch_size: auto picks one per fold). Settings become params.
_FOLD_INDEX = ("fold",)
_FOLD_SETTINGS = ("batch_size",)


def fold_metrics(folds: list[dict]) -> tuple[list[dict[str, float]], dict[str, str]]:
    """(each fold's measurements for MLflow, the settings the folds chose as params): a
    setting the same in every fold is one param (``batch_size_used``), else one per fold."""
    metrics = [
        {
            k: v
            for k, v in f.items()
            if isinstance(v, (int, float)) and k not in (*_FOLD_INDEX, *_FOLD_SETTINGS)
        }
        for f in folds
    ]
    params: dict[str, str] = {}
    for name in _FOLD_SETTINGS:
        values = [f[name] for f in folds if name in f]
        if values and len(set(values)) == 1:
            params[f"{name}_used"] = str(values[0])
        else:
            params.update(
                {f"fold{k}_{name}": str(f[name]) for k, f in enumerate(folds) if name in f}
            )
    return metrics, params


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
    spec: dict | None = None,
    oof: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write the result files of a sweep (sweep.json only when ``spec`` is given: a sweep
    keeps its own up to date, orchestrator/records/sweep_record.py); returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "leaderboard.parquet": out_dir / "leaderboard.parquet",
        "leaderboard.csv": out_dir / "leaderboard.csv",
        "fold_audit.csv": out_dir / "fold_audit.csv",
    }
    _atomic_write(paths["leaderboard.parquet"], lambda p: leaderboard.to_parquet(p, index=False))
    _atomic_write(paths["leaderboard.csv"], lambda p: leaderboard.to_csv(p, index=False))
    _atomic_write(paths["fold_audit.csv"], lambda p: audit.to_csv(p, index=False))
    if spec is not None:
        paths["sweep.json"] = out_dir / "sweep.json"
        _atomic_write(
            paths["sweep.json"], lambda p: p.write_text(json.dumps(spec, indent=2, default=str))
        )
    if best_config is not None:
        paths["best_config.yaml"] = out_dir / "best_config.yaml"
        _atomic_write(
            paths["best_config.yaml"],
            lambda p: p.write_text(yaml.safe_dump(best_config, sort_keys=True)),
        )
    if oof is not None and not oof.empty:
        paths["oof.parquet"] = out_dir / "oof.parquet"
        _atomic_write(paths["oof.parquet"], lambda p: oof.to_parquet(p, index=False))
    return paths


def read_leaderboard(out_dir: Path, *, baselines: bool = False) -> pd.DataFrame:
    """The trials of a sweep's leaderboard (with ``baselines``, their reference rows too)."""
    board = pd.read_parquet(out_dir / "leaderboard.parquet")
    return board if baselines else trial_rows(board)


def previous_best(out_dir: Path) -> list[tuple[float, str]]:
    """(objective, trial id) of every completed trial in a leaderboard already written there
    (an interrupted run's, which ``--resume`` continues); [] for a new sweep."""
    path = Path(out_dir) / "leaderboard.parquet"
    if not path.is_file():
        return []
    done = trial_rows(pd.read_parquet(path, columns=["trial_id", "status", "objective"]))
    done = done[(done["status"] == "completed") & done["objective"].notna()]
    return [(float(v), str(t)) for v, t in zip(done["objective"], done["trial_id"], strict=True)]


def table_text(frame: pd.DataFrame) -> str:
    """A table for the terminal: empty cells for missing values (pandas prints ``<NA>`` for
    the baselines' missing params whatever ``na_rep`` says) and 5 significant digits."""

    def cell(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.5g}" if isinstance(v, float) else str(v)

    return frame.astype(object).map(cell).to_string(index=False)
