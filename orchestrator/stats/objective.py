"""What a sweep ranks trials on, in one place (no Ray: the leaderboard and reports read it).

Regression: ``mse_ratio``, each target's MSE over its naive forecast's MSE in original units
(``trainables.prep.naive``: persistence for levels such as close, the training mean for
return-like targets), pooled over folds: the sum over folds of a target's MSE over the sum
of its naive MSE, then the mean over targets. Minimised; below 1 beats the naive forecast,
and ``skill = 1 - mse_ratio``. It depends neither on the scaler nor on the training loss a
trial samples. It is a ratio of sums, not the mean of the folds' ratios: with one target it
ranks trials exactly as the mean of their fold MSEs (weighted by fold size) would, since the
naive denominator is the same for every trial, so a volatile fold weighs more, not less.
What pooling buys is a ratio that stays defined and steady when one fold's naive MSE is
tiny. Classification: macro-F1, the mean over folds; maximised.
"""

from __future__ import annotations

import math

import numpy as np

from trainables.training.metrics import pooled_ratio

__all__ = ["objective_of", "running_objective"]


def objective_of(task: str) -> tuple[str, str]:
    """(metric name, mode) optimised by the sweep for a task."""
    return ("macro_f1", "max") if task == "classification" else ("mse_ratio", "min")


def running_objective(folds: list[dict], task: str, partial=None) -> float:
    """The objective over ``folds`` (fold records with ``mse_by_target`` and
    ``naive_mse_by_target``, or ``macro_f1``), and a current fold's partial estimate if given:
    ``(mse_by_target, naive_mse_by_target)`` of its early-stopping block, or a macro-F1."""
    name, _ = objective_of(task)
    if task == "classification":
        values = [f[name] for f in folds] + ([partial] if partial is not None else [])
        return float(np.mean(values)) if values else math.nan
    model = [f["mse_by_target"] for f in folds]
    naive = [f["naive_mse_by_target"] for f in folds]
    if partial is not None:
        model, naive = [*model, partial[0]], [*naive, partial[1]]
    return pooled_ratio(model, naive) if model else math.nan
