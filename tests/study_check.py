"""The check that a sweep's Optuna study tells the same story as its leaderboard (#19 §3)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest

from orchestrator.records.leaderboard import read_leaderboard

# The leaderboard's trial status -> the Optuna state the sweep's searcher tells; a trial the
# sweep was cut in (interrupted) stays RUNNING until a resumed run finishes it.
STATE_OF = {"completed": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "interrupted": "RUNNING"}


def assert_study_matches(out_dir: Path, *, study: tuple[Path, str] | None = None) -> pd.DataFrame:
    """The study's state counts equal the leaderboard's trial status counts (baseline rows
    left out), each COMPLETE value is its trial's objective, and the leaderboard holds its
    baseline rows. ``study``: (optuna.db, study name) when not the sweep's own (a universe's
    ticker). Returns the full leaderboard."""
    full = read_leaderboard(out_dir, baselines=True)
    board = read_leaderboard(out_dir)
    record = json.loads((out_dir / "sweep.json").read_text())
    names = {"regression": ["naive", "ridge"], "classification": ["majority", "logistic"]}
    task = "classification" if record["objective"] == "macro_f1" else "regression"
    refs = full[full.status == "baseline"]
    assert refs.trial_id.tolist() == [f"baseline:{n}" for n in names[task]], (
        "a baseline row is missing"
    )
    assert refs["rank"].isna().all() and refs.objective.notna().all()
    assert [b["name"] for b in record["baselines"]] == names[task]
    db, name = study or (out_dir / "optuna.db", out_dir.name)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    states = Counter(t.state.name for t in study.trials)
    assert states == Counter(STATE_OF[s] for s in board.status), (states, board.status.tolist())
    # The COMPLETE values are the completed trials' objectives, one for one.
    complete = sorted(t.value for t in study.trials if t.state.name == "COMPLETE")
    objectives = sorted(board[board.status == "completed"].objective)
    assert complete == pytest.approx(objectives, rel=1e-12)
    for trial in study.get_trials(states=(optuna.trial.TrialState.PRUNED,)):
        # its intermediate values are the objective at fold ends, step = folds done
        assert set(trial.intermediate_values) <= set(range(1, 100))
    return full
