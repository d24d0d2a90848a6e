"""How optimistic is the sweep's best CV score?

The sweep picked its best config out of many on the same folds, so the best CV score is
biased upward. Two views of that bias:

* ``cv_vs_test``: rank 1's CV score next to its score on the untouched test part, in the
  same units (regression: skill against the naive forecast; classification: macro-F1).
* ``pbo``: the probability of backtest overfitting (Bailey, Borwein, Lopez de Prado and
  Zhu 2017, combinatorially symmetric cross-validation) from the trials' out-of-fold
  predictions (``results/<name>/oof.parquet``). The evaluation samples, in time order, are
  cut into ``S`` (even) sub-blocks; for every choice of S/2 of them as the "in-sample" half,
  the config best there is ranked among all configs on the other half. PBO is the share of
  choices where it lands in the bottom half (logit of its relative rank <= 0).
  It is computed on the first k CV folds and the trials that finished all k of them
  (pruned ones included: a trial checkpoints every fold it finished), k chosen to keep the
  most trials (the most folds among equal counts); on an ASHA sweep that is usually fold 1
  alone, and the trials pruned inside it have no out-of-fold predictions. The block names
  the folds, the trials and how many of them were pruned. It describes selection among
  these trials on these samples: neither a lower nor an upper bound on the whole sweep's
  selection (leaving trials out can move it either way; in issue #20's simulations, keeping
  only the survivors of pruning moved it up in 20 of 20 cases). With fewer than ``MIN_TRIALS``
  trials it is not computed, and the block says why.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logit
from scipy.stats import rankdata

__all__ = [
    "MIN_TRIALS",
    "N_BLOCKS",
    "OOF_FILE",
    "block_statistics",
    "cscv",
    "cv_vs_test",
    "fold_set",
    "pbo",
    "pbo_of_sweep",
]

MIN_TRIALS = 8
N_BLOCKS = 16  # the paper's choice: C(16, 8) = 12,870 splits
MIN_BLOCK_SAMPLES = 10  # fewer samples than this per block: use fewer blocks
OOF_FILE = "oof.parquet"
_WHAT = (
    "it describes how the best of these trials on half of these samples ranks on the other "
    "half; not a bound on the whole sweep's selection (trials pruned inside their first "
    "fold are left out, which can move it either way)"
)


def _perf_regression(sse: np.ndarray, nse: np.ndarray) -> np.ndarray:
    """Skill against the naive forecast, one ratio per target, averaged: ``[..., N, T]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - np.mean(sse / nse, axis=-1)


def _perf_classification(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 of confusion counts ``[..., N, 3, 3]`` (rows true, columns predicted)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    denom = cm.sum(axis=-1) + cm.sum(axis=-2)
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    present = denom > 0
    return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def block_statistics(
    oof: pd.DataFrame, task: str, n_blocks: int
) -> tuple[list[str], tuple[np.ndarray, ...]]:
    """(trial ids, per-block sufficient statistics) of trials sharing every evaluation sample.

    Regression: (sum of squared errors, sum of naive squared errors), each ``[S, N, T]``.
    Classification: (confusion counts ``[S, N, 3, 3]``,). Samples are ``(fold, anchor)``
    rows in time order, cut into ``n_blocks`` contiguous blocks of near-equal size.
    """
    keys = ["anchor", "fold"]
    ids = sorted(oof["trial_id"].astype(str).unique())
    frame = oof.assign(trial_id=oof["trial_id"].astype(str)).sort_values(["trial_id", *keys])
    samples = frame[frame["trial_id"] == ids[0]][keys].to_numpy()
    n = len(samples)
    block = np.repeat(np.arange(n_blocks), np.diff(np.linspace(0, n, n_blocks + 1).astype(int)))
    stats = []
    if task == "classification":
        cm = np.zeros((n_blocks, len(ids), 3, 3))
        for j, tid in enumerate(ids):
            rows = frame[frame["trial_id"] == tid]
            pred = rows[["p_down", "p_flat", "p_up"]].to_numpy().argmax(axis=1)
            np.add.at(cm[:, j], (block, rows["true"].to_numpy(np.int64), pred), 1.0)
        return ids, (cm,)
    targets = [c.removeprefix("pred_") for c in frame.columns if c.startswith("pred_")]
    sse = np.zeros((n_blocks, len(ids), len(targets)))
    nse = np.zeros_like(sse)
    for j, tid in enumerate(ids):
        rows = frame[frame["trial_id"] == tid]
        for t, name in enumerate(targets):
            true = rows[f"true_{name}"].to_numpy(np.float64)
            err = (rows[f"pred_{name}"].to_numpy(np.float64) - true) ** 2
            naive = (rows[f"naive_{name}"].to_numpy(np.float64) - true) ** 2
            sse[:, j, t] = np.bincount(block, weights=err, minlength=n_blocks)
            nse[:, j, t] = np.bincount(block, weights=naive, minlength=n_blocks)
    stats = [sse, nse]
    return ids, tuple(stats)


def cscv(stats: tuple[np.ndarray, ...], task: str) -> np.ndarray:
    """The logit of the in-sample winner's out-of-sample relative rank, for every split of
    the S blocks into two halves (``[C(S, S/2)]``)."""
    n_blocks, n_trials = stats[0].shape[:2]
    perf = _perf_classification if task == "classification" else _perf_regression
    halves = np.array(list(combinations(range(n_blocks), n_blocks // 2)))
    logits = []
    for chunk in np.array_split(halves, max(1, len(halves) // 2000)):
        member = np.zeros((len(chunk), n_blocks))
        member[np.arange(len(chunk))[:, None], chunk] = 1.0
        totals = [s.sum(axis=0) for s in stats]
        ins = [np.tensordot(member, s, axes=(1, 0)) for s in stats]  # [c, N, ...]
        perf_in = perf(*ins)
        perf_out = perf(*[t[None] - i for t, i in zip(totals, ins, strict=True)])
        best = np.argmax(perf_in, axis=1)  # the in-sample winner (first on ties)
        ranks = np.apply_along_axis(rankdata, 1, perf_out)  # 1 = worst, N = best
        omega = ranks[np.arange(len(chunk)), best] / (n_trials + 1)
        logits.append(logit(omega))
    return np.concatenate(logits)


def fold_set(oof: pd.DataFrame) -> tuple[list[int], list[str]]:
    """(the first k CV folds, the trials that finished all of them), k chosen to keep the
    most trials, the most folds among equal counts. Trials run their folds in order, so a
    trial that finished fold k finished every fold before it."""
    if oof.empty:
        return [], []
    folds = sorted(int(f) for f in oof["fold"].unique())
    done = oof.groupby(oof["trial_id"].astype(str))["fold"].agg(lambda f: set(map(int, f)))
    best: tuple[list[int], list[str]] = ([], [])
    for k in range(1, len(folds) + 1):
        first = set(folds[:k])
        ids = sorted(t for t, f in done.items() if first <= f)
        if len(ids) >= len(best[1]):
            best = (folds[:k], ids)
    return best


def pbo(
    oof: pd.DataFrame, task: str, *, n_blocks: int = N_BLOCKS, sweep_trials: int | None = None
) -> dict:
    """The ``pbo`` block of promoted.json: the figure with what it was computed on, or why
    not (``sweep_trials``: how many trials the sweep ran, to say how many have no
    out-of-fold predictions)."""
    folds, ids = fold_set(oof)
    total = int(oof["trial_id"].astype(str).nunique()) if not oof.empty else 0
    if len(ids) < MIN_TRIALS:
        return {
            "computed": False,
            "n_trials": len(ids),
            "note": f"not computed: {total} trial(s) have out-of-fold predictions and at most "
            f"{len(ids)} of them share a set of CV folds; PBO needs at least {MIN_TRIALS} "
            "(trials pruned inside their first fold have none: run the sweep with more trials)",
        }
    oof = oof[oof["trial_id"].astype(str).isin(ids) & oof["fold"].isin(folds)]
    status = oof.groupby(oof["trial_id"].astype(str))["status"].first() if "status" in oof else None
    pruned = int((status == "pruned").sum()) if status is not None else 0
    n = int(len(oof) // len(ids))
    blocks = n_blocks
    while blocks > 2 and n < blocks * MIN_BLOCK_SAMPLES:
        blocks -= 2
    ids, stats = block_statistics(oof, task, blocks)
    logits = cscv(stats, task)
    measure = "macro F1" if task == "classification" else "skill vs the naive forecast"
    names = ", ".join(str(f + 1) for f in folds)
    rest = [f"{total - len(ids)} other trial(s) finished fewer folds"] if total > len(ids) else []
    if sweep_trials is not None and sweep_trials > total:
        rest.append(
            f"{sweep_trials - total} of the sweep's {sweep_trials} have no out-of-fold "
            "predictions (pruned inside fold 1, or failed)"
        )
    return {
        "computed": True,
        "pbo": float(np.mean(logits <= 0)),
        "n_trials": len(ids),
        "n_pruned": pruned,
        "n_trials_with_predictions": total,
        "folds": [int(f) for f in folds],
        "n_samples": n,
        "n_blocks": blocks,
        "n_splits": len(logits),
        "median_logit": float(np.median(logits)),
        "measure": measure,
        "computed_on": f"{len(ids)} trials ({pruned} pruned later) that finished CV fold(s) "
        f"{names}, on those folds' {n:,} evaluation samples" + "".join(f"; {r}" for r in rest),
        "note": _WHAT,
    }


def pbo_of_sweep(out_dir: Path, task: str) -> dict:
    """PBO from ``out_dir/oof.parquet``, or a note saying why it is not computed."""
    path = Path(out_dir) / OOF_FILE
    if not path.is_file():
        return {
            "computed": False,
            "note": f"not computed: no out-of-fold predictions ({OOF_FILE} is missing: the "
            "sweep did not keep them)",
        }
    board = Path(out_dir) / "leaderboard.parquet"
    trials = None
    if board.is_file():
        status = pd.read_parquet(board, columns=["status"])["status"]
        trials = int((status != "baseline").sum())  # the reference rows are no trials
    return pbo(pd.read_parquet(path), task, sweep_trials=trials)


def cv_vs_test(board: pd.DataFrame, chosen: dict, task: str) -> dict:
    """Rank 1's CV score next to the chosen model's test score, in the same units."""
    row = board[board["trial_id"].astype(str) == str(chosen["trial_id"])].iloc[0]
    if task == "classification":
        measure, cv, key = "macro F1", float(row["objective"]), "macro_f1"
    else:
        measure, cv, key = "skill vs the naive forecast", float(row.get("skill", np.nan)), "skill"
    folds = [c for c in board.columns if c.startswith("fold") and c.endswith(f"_{key}")]
    cv_folds = [float(row[c]) for c in folds if pd.notna(row[c])]
    test_seeds = chosen.get("test_mean", {})
    return {
        "measure": measure,
        "rank": int(chosen["rank"]),
        "trial_id": str(chosen["trial_id"]),
        "cv": cv,
        "cv_folds": cv_folds,
        "test_seed_ensemble": float(chosen["ensemble_test"].get(key, np.nan)),
        "test_seed_mean": float(test_seeds.get(key, np.nan)),
        "test_seed_std": float(chosen.get("test_std", {}).get(key, np.nan)),
        "cv_fold_mean": float(np.mean(cv_folds)) if cv_folds else float("nan"),
        "note": "CV: pooled over the folds (one model per fold; regression: 1 - the sum of "
        "its squared errors over the naive forecast's, per target; classification: the mean "
        "of the folds' macro F1), of the best of the sweep's trials on those folds (biased "
        "upward); cv_folds: each fold's own score, cv_fold_mean their mean; test: the "
        "untouched test part",
    }
