"""After ``tuner.fit()``: trial records from Tune's public results, out-of-fold
predictions, the Optuna study made consistent, and the summary printed for the user."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from orchestrator.records.leaderboard import TrialRecord, objective_value, table_text
from orchestrator.sweep.prepare import SweepData
from orchestrator.sweep.progress import error_line, trial_record
from orchestrator.sweep.trial import oof_file
from trainables.prep.naive import naive_forecast

__all__ = [
    "SweepOutcome",
    "collect_records",
    "oof_frame",
    "print_summary",
    "reconcile_study",
]


@dataclass
class SweepOutcome:
    name: str
    out_dir: Path
    leaderboard: object  # pandas DataFrame
    best_config: dict | None
    files: dict[str, Path]
    dashboard_url: str | None
    tracking_uri: str
    n_folds: int = 0
    interrupted: bool = False
    stopped_by_budget: bool = False
    resume_hint: str = ""
    first_failure: str | None = None  # set when every trial failed
    already_finished: bool = False
    ray_closed: bool = False  # the sweep's own Ray (and its dashboard) ended with it
    experiment_id: str | None = None  # the MLflow experiment the runs are in
    checkpoints: dict = field(default_factory=dict, repr=False)
    # The baselines' reference rows on the same folds (leaderboard columns, status baseline).
    baselines: object = None  # pandas DataFrame


def _trial_id(result) -> str:
    metrics = result.metrics or {}
    if metrics.get("trial_id"):
        return str(metrics["trial_id"])
    # Tune names a trial's folder <trainable>_<trial id>_<counter>_<params>
    match = re.match(r".*?_([0-9a-f]{5,})_\d+_", Path(str(result.path)).name)
    return match.group(1) if match else Path(str(result.path)).name


def collect_records(results, statuses: dict[str, str]) -> list[TrialRecord]:
    """One TrialRecord per trial of a ResultGrid. Status: failed when Tune holds its error;
    else the one decided when it finished (``statuses``, kept in sweep.json); else
    completed when its last result has every fold (it finished, but its status could not be
    saved: a full disk, a kill at that instant); else interrupted (it was running or
    pending when the run stopped)."""
    records = []
    for result in results:
        metrics = result.metrics or {}
        tid = _trial_id(result)
        every_fold = metrics.get("folds_done", 0) >= metrics.get("n_folds", math.inf)
        unsaved = "completed" if every_fold else "interrupted"
        status = "failed" if result.error is not None else statuses.get(tid, unsaved)
        records.append(
            trial_record(
                tid,
                result.config or {},
                metrics,
                status=status,
                error=error_line(result.error) if result.error is not None else None,
            )
        )
    return records


def checkpoints_of(results) -> dict[str, object]:
    """trial id -> its latest checkpoint (the folds it finished and their predictions)."""
    return {_trial_id(r): r.checkpoint for r in results if r.checkpoint is not None}


OOF_STATUSES = ("completed", "pruned")


def oof_frame(records: list[TrialRecord], checkpoints: dict, data: SweepData) -> pd.DataFrame:
    """Out-of-fold predictions of every completed trial and of every pruned trial's finished
    folds (a pruned trial checkpoints each fold it finished; one pruned inside its first fold
    has none), long format: one row per trial, fold and evaluation anchor, with the trial's
    ``status`` (docs/sweeps.md, "Files"). Promotion's PBO reads them."""
    frames = []
    index = pd.DatetimeIndex(data.index)
    truth = np.asarray(data.targets.values)
    regression = data.targets.task == "regression"
    names = list(data.targets.names)
    if regression:
        now = data.frame()[names].to_numpy(dtype=np.float64)
    for rec in records:
        checkpoint = checkpoints.get(rec.trial_id)
        if rec.status not in OOF_STATUSES or checkpoint is None:
            continue
        with checkpoint.as_directory() as d:
            preds = {
                k: np.load(Path(d) / oof_file(k), allow_pickle=False)
                for k in range(len(data.folds))
                if (Path(d) / oof_file(k)).is_file()
            }
        for k, pred in preds.items():
            fit, _, ev = data.folds[k]
            cols: dict = {
                "trial_id": rec.trial_id,
                "status": rec.status,
                "fold": k,
                "anchor": ev,
                "timestamp": index[ev],
            }
            if regression:
                y = truth.reshape(len(truth), -1)
                naive = naive_forecast(names, now[ev], np.nanmean(y[fit], axis=0))
                for t, name in enumerate(names):
                    cols[f"pred_{name}"] = pred[:, t]
                    cols[f"true_{name}"] = y[ev, t]
                    cols[f"naive_{name}"] = naive[:, t]
            else:
                for c, name in enumerate(("down", "flat", "up")):
                    cols[f"p_{name}"] = pred[:, c]
                cols["true"] = truth[ev].astype(np.int64)
            frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def reconcile_study(
    storage: str, study_name: str, records: list[TrialRecord], objective: str
) -> int:
    """Close the Optuna trials a killed driver left RUNNING (the resumed run finished them
    under Tune, but its restored searcher never knew them). Matched to Tune trials by their
    params; returns how many were closed."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0

    def key(params):
        return json.dumps(params, sort_keys=True, default=str)

    by_params = {key(r.params): r for r in records}
    # A record already told to the study by its own trial must not be told again through an
    # orphan with the same params (a seeded sampler asks the same params again after a kill):
    # that was the duplicate COMPLETE trial of #21 defect 6. Such an orphan is FAIL.
    told = {key(t.params) for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    closed = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        rec = by_params.get(key(trial.params))
        if key(trial.params) in told:
            rec = None
        told.add(key(trial.params))
        value = objective_value(rec.folds, objective)[0] if rec is not None else math.nan
        if rec is not None and rec.status == "completed" and math.isfinite(value):
            study.tell(trial.number, value)
        elif rec is not None and rec.status == "pruned":
            study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        closed += 1
    return closed


def print_summary(outcome: SweepOutcome, objective: str, mode: str, log) -> None:
    board = outcome.leaderboard
    if outcome.stopped_by_budget:
        log(f"Time budget spent: no new trials started. Continue with: {outcome.resume_hint}")
    elif outcome.interrupted:
        log(f"Interrupted. Finish it with: {outcome.resume_hint}")
    if board is not None and not board.empty:
        counts = board["status"].value_counts().to_dict()
        log("Trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        ranked = board[board["rank"].notna()].head(5)
        refs = outcome.baselines if outcome.baselines is not None else pd.DataFrame()
        if not ranked.empty:
            params = [c for c in board.columns if c.startswith("param_")]
            skill = ["skill"] if "skill" in board.columns else []
            cols = ["rank", "trial_id", "objective", "objective_std", *skill, "seconds", *params]
            what = (
                " (objective = MSE / naive MSE pooled over folds; skill = 1 - objective: "
                "> 0 beats the naive forecast):"
                if skill
                else ":"
            )
            log(f"Top trials by {objective} ({mode}) over {outcome.n_folds} purged CV folds{what}")
            shown = ranked[cols]
            if not refs.empty:  # the baselines on the same folds, below the trials, unranked
                shown = pd.concat([shown, refs.reindex(columns=cols)], ignore_index=True)
            log(table_text(shown.rename(columns=lambda c: c.removeprefix("param_"))))
    names = {k for k in outcome.files if k != "tune"}
    if (Path(outcome.out_dir) / "optuna.db").is_file():
        names.add("optuna.db")  # the Optuna study: optuna-dashboard, optuna.load_study
    log(f"Results: {outcome.out_dir}/ ({', '.join(sorted(names))})")
    if outcome.files.get("tune"):
        log(f"Tune experiment: {outcome.files.get('tune')}")
    log(f"MLflow: {outcome.tracking_uri and _ui_hint(outcome.tracking_uri)}{_runs_view(outcome)}")
    if outcome.ray_closed:
        log(
            "Ray dashboard: closed with this sweep's own Ray; for one that outlives sweeps: "
            "python -m orchestrator.cluster start, then sweeps with --address auto"
        )
    elif outcome.dashboard_url:
        log(f"Ray dashboard: {outcome.dashboard_url}")
    verdict = versus_baseline(board, outcome.baselines, objective, mode)
    if verdict:
        log(verdict)


def versus_baseline(board, baselines, objective: str, mode: str) -> str | None:
    """The sweep's last line: does the best trial beat the linear baseline on the same folds?"""
    if baselines is None or baselines.empty or board is None or board.empty:
        return None
    linear = baselines.iloc[-1]  # ridge or logistic regression: the one to beat
    name = str(linear["trial_id"]).removeprefix("baseline:")
    ref = float(linear["objective"])
    ranked = board[board["rank"].notna()]
    if ranked.empty:
        return f"No trial ran every fold; {name} on these folds: {objective} {ref:.5g}"
    best = ranked.iloc[0]
    value = float(best["objective"])
    beats = value < ref if mode == "min" else value > ref
    text = (
        f"the best trial ({best['trial_id']}, {objective} {value:.5g}) "
        f"{'beats' if beats else 'does not beat'} {name} on CV ({objective} {ref:.5g}"
        f", {linear['baseline_setting']})"
    )
    if not beats:
        return "Warning: " + text + ": a linear model on the same windows does as well"
    return text[0].upper() + text[1:] + " (one CV estimate; promotion tests it on the test part)"


def _runs_view(outcome: SweepOutcome) -> str:
    """Where MLflow 3's UI lists the sweep's runs (it opens on a GenAI overview)."""
    if not outcome.experiment_id or not outcome.tracking_uri:
        return ""
    if outcome.tracking_uri.startswith(("http://", "https://")):
        return f" (runs: {outcome.tracking_uri.rstrip('/')}/#/experiments/{outcome.experiment_id}/runs)"
    return f", then http://127.0.0.1:5000/#/experiments/{outcome.experiment_id}/runs"


def _ui_hint(uri: str) -> str:
    from orchestrator.tracking.sweep_runs import ui_hint

    return ui_hint(uri)
