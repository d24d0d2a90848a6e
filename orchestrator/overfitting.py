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
  choices where it lands in the bottom half (logit of its relative rank <= 0). Only trials
  that completed every fold count, and those already survived pruning on these folds, so
  the figure is a lower bound. With fewer than ``MIN_TRIALS`` such trials it is not
  computed, and the block says why.
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
    "pbo",
    "pbo_of_sweep",
]

MIN_TRIALS = 8
N_BLOCKS = 16  # the paper's choice: C(16, 8) = 12,870 splits
MIN_BLOCK_SAMPLES = 10  # fewer samples than this per block: use fewer blocks
OOF_FILE = "oof.parquet"
_LOWER_BOUND = (
    "a lower bound: the trials that completed every fold had already survived pruning on "
    "these same folds, so the selection it measures is only part of the selection that happened"
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


def pbo(oof: pd.DataFrame, task: str, *, n_blocks: int = N_BLOCKS) -> dict:
    """The ``pbo`` block of promoted.json: the figure with how it was computed, or why not."""
    counts = oof.groupby(oof["trial_id"].astype(str)).size()
    full = counts[counts == counts.max()].index
    n = int(counts.max()) if len(counts) else 0
    if len(full) < MIN_TRIALS:
        return {
            "computed": False,
            "n_trials": int(len(full)),
            "note": f"not computed: {len(full)} trial(s) completed every fold; PBO needs at "
            f"least {MIN_TRIALS} (pruned trials have no out-of-fold predictions: run the "
            "sweep with more trials or --scheduler none)",
        }
    blocks = n_blocks
    while blocks > 2 and n < blocks * MIN_BLOCK_SAMPLES:
        blocks -= 2
    oof = oof[oof["trial_id"].astype(str).isin(full)]
    ids, stats = block_statistics(oof, task, blocks)
    logits = cscv(stats, task)
    measure = "macro F1" if task == "classification" else "skill vs the naive forecast"
    return {
        "computed": True,
        "pbo": float(np.mean(logits <= 0)),
        "n_trials": len(ids),
        "n_samples": n,
        "n_blocks": blocks,
        "n_splits": len(logits),
        "median_logit": float(np.median(logits)),
        "measure": measure,
        "note": f"PBO is {_LOWER_BOUND}",
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
    return pbo(pd.read_parquet(path), task)


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
        "note": "CV: the mean over folds of one model per fold, the best of the sweep's "
        "trials on those folds (biased upward); test: the untouched test part",
    }
