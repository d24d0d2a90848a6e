"""What a universe run says at the end: one row per ticker, the refused and failed ones, files.

No Ray here: a finished universe's ``--resume`` prints the same from its files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from orchestrator.records.universe_record import BOARD_FILES, UNIVERSE_FILE, universe_board
from orchestrator.tracking.sweep_runs import default_tracking_uri, ui_hint

__all__ = ["UniverseOutcome", "already_finished", "print_universe"]

_SHOWN = 40  # rows of the ticker table printed (all are in universe_leaderboard.csv)


@dataclass
class UniverseOutcome:
    name: str
    out_dir: Path
    board: pd.DataFrame  # one row per ticker (orchestrator/records/universe_record.py)
    objective: str
    tracking_uri: str
    refused: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # ticker -> its first failure
    outcomes: dict = field(default_factory=dict, repr=False)  # ticker -> its SweepOutcome
    interrupted: bool = False
    stopped_by_budget: bool = False
    resume_hint: str = ""
    dashboard_url: str | None = None
    already_finished: bool = False
    experiment: str = ""

    @classmethod
    def of(cls, record, board, outcomes, refused, uri, heartbeat) -> UniverseOutcome:
        data = record.data
        interrupted = data["status"] != "finished"
        failed = {t: o.first_failure for t, o in outcomes.items() if o.first_failure}
        return cls(
            name=data["name"],
            out_dir=record.path.parent,
            board=board,
            objective=data.get("objective", ""),
            tracking_uri=uri,
            refused=dict(refused),
            failed=failed,
            outcomes=outcomes,
            interrupted=interrupted,
            stopped_by_budget=interrupted and heartbeat.budget_spent,
            resume_hint=data.get("resume_command", ""),
            experiment=data.get("experiment_path", ""),
        )


def _table(board: pd.DataFrame) -> str:
    cols = [
        c
        for c in (
            "ticker",
            "status",
            "completed",
            "pruned",
            "failed",
            "interrupted",
            "best_trial",
            "objective",
            "skill",
            "naive_skill",
            "ridge_objective",
            "ridge_skill",
            "beats_ridge_on_cv",
            "logistic_objective",
            "beats_logistic_on_cv",
        )
        if c in board.columns
    ]
    shown = board[cols].head(_SHOWN)
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.5g}", na_rep="")
    if len(board) > _SHOWN:
        text += f"\n... {len(board) - _SHOWN} more in {BOARD_FILES[1]}"
    return text


def print_universe(outcome: UniverseOutcome, log) -> None:
    board = outcome.board
    counts = board["status"].value_counts().to_dict() if not board.empty else {}
    log(
        f"Universe {outcome.name!r}: {len(board)} tickers: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    )
    if outcome.stopped_by_budget:
        log(
            f"Time budget spent: tickers not started are resumable. Continue with: {outcome.resume_hint}"
        )
    elif outcome.interrupted and not outcome.already_finished:
        log(f"Interrupted. Finish it with: {outcome.resume_hint}")
    if not board.empty:
        log(
            f"Per ticker: the best trial by {outcome.objective} over its own purged CV folds, "
            "beside its baselines on the same folds:"
        )
        log(_table(board))
    for ticker, reason in outcome.refused.items():
        log(f"refused: {ticker}: {reason}")
    for ticker, reason in outcome.failed.items():
        log(f"failed: {ticker}: every trial failed; the first: {reason}")
    files = ", ".join([UNIVERSE_FILE, *BOARD_FILES, "optuna.db", "tickers/<ticker>/"])
    log(f"Results: {outcome.out_dir}/ ({files})")
    if outcome.experiment:
        log(f"Tune experiment: {outcome.experiment}")
    log(f"MLflow: {ui_hint(outcome.tracking_uri)}")
    beats = [c for c in board.columns if c.startswith("beats_") and c.endswith("_on_cv")]
    if beats:
        linear = beats[0].removeprefix("beats_").removesuffix("_on_cv")
        ran = board[board["status"].isin(("finished", "interrupted"))]
        k = int(ran[beats[0]].fillna(False).astype(bool).sum())
        log(
            f"{k} of {len(ran)} tickers' best trials beat {linear} on CV (one CV estimate "
            "each; promotion tests them on their test parts, with the false discovery rate "
            "across tickers controlled)"
        )


def already_finished(spec, out_dir: Path, record: dict, log) -> UniverseOutcome:
    """--resume of a universe that finished: nothing to run; show its answer again."""
    log(
        f"Universe {record.get('name')!r} already finished ({out_dir}/{UNIVERSE_FILE}); its results:"
    )
    board = universe_board(out_dir, record)
    members = record["members"]
    outcome = UniverseOutcome(
        name=record["name"],
        out_dir=out_dir,
        board=board,
        objective=record.get("objective", ""),
        tracking_uri=spec.mlflow_uri
        or record.get("mlflow_uri")
        or default_tracking_uri(Path(spec.results_dir)),
        refused={t: m.get("reason", "") for t, m in members.items() if m["status"] == "refused"},
        already_finished=True,
        experiment=record.get("experiment_path", ""),
    )
    print_universe(outcome, log)
    return outcome
