"""The baselines on the sweep's own CV folds: what a trial must beat to be worth having.

Scored on exactly the folds and evaluation anchors the trials use (cut at
``sequence_length_max``, so every window length reads a full window at every anchor), with
the sweep's objective (orchestrator/stats/objective.py), before the first trial:

* regression: the **naive forecast** (``trainables.prep.naive``: persistence for a level, the
  training mean for a return-like target; its ``mse_ratio`` is 1 by definition) and **ridge**
  (``orchestrator.promotion.baselines.LinearBaseline``, the one promotion uses) on the flattened scaled
  windows of the sweep's base config;
* classification: the **majority class** of each fold's training labels and **logistic
  regression**, scored by macro-F1.

The linear model picks its regularisation on each fold's inner early-stopping block (never
on the rows it is scored on) and is fit on the fold's training anchors, as a trial is. It
reads windows, so one is fit per window length the space samples (``window_lengths``), and
the row shown is the best of them by the early-stopping blocks' score (mean over folds).
Promotion's ridge uses the chosen trial's own config instead: the two can differ
(docs/sweeps.md, "Baselines").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from orchestrator.promotion.baselines import LinearBaseline, naive_name
from orchestrator.promotion.holdout import HoldoutRows, TrainingTable
from orchestrator.records.leaderboard import TrialRecord, objective_value
from orchestrator.stats.objective import objective_of
from orchestrator.sweep.prepare import SweepData
from orchestrator.sweep.spaces import SearchSpace
from trainables.parameters.train_config import TrainConfig
from trainables.prep.naive import naive_forecast
from trainables.training.metrics import (
    CLASS_NAMES,
    classification_metrics,
    naive_scores,
    regression_metrics,
)

__all__ = ["CVBaseline", "cv_baselines", "describe", "window_lengths"]


@dataclass
class CVBaseline:
    """One baseline's per-fold records (the trials' fold record keys) and its setting."""

    name: str  # naive, ridge, majority, logistic
    folds: list[dict]
    setting: str
    objective_name: str
    extra: dict = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        return f"baseline:{self.name}"

    @property
    def objective(self) -> float:
        return objective_value(self.folds, self.objective_name)[0]

    @property
    def skill(self) -> float:
        if self.objective_name == "mse_ratio":
            return 1.0 - self.objective
        return math.nan

    def record(self) -> TrialRecord:
        return TrialRecord(self.trial_id, {}, list(self.folds), status="baseline")

    def to_dict(self) -> dict:
        """What sweep.json keeps: name, objective, skill, per-fold values, setting."""
        name = self.objective_name
        return {
            "name": self.name,
            "objective": _plain(self.objective),
            "skill": _plain(self.skill),
            "folds": [_plain(f.get(name)) for f in self.folds],
            "fold_skill": [_plain(f.get("skill")) for f in self.folds],
            "setting": self.setting,
        }


def window_lengths(space: SearchSpace, base: TrainConfig) -> list[int]:
    """The window lengths the space samples: its choices, or (a range) up to 4 spread over it."""
    dist = space.params.get("sequence_length")
    if dist is None:
        return [int(base.sequence_length)]
    if dist["type"] == "categorical":
        return sorted({int(c) for c in dist["choices"]})
    low, high = int(dist["low"]), int(dist["high"])
    return sorted({int(round(v)) for v in np.linspace(low, high, 4)})


def cv_baselines(data: SweepData, base: TrainConfig, space: SearchSpace) -> list[CVBaseline]:
    """The naive (or majority) and the linear baseline on the sweep's folds (module doc)."""
    objective, _ = objective_of(base.task)
    lengths = [n for n in window_lengths(space, base) if n <= data.sequence_length_max]
    lengths = lengths or [data.sequence_length_max]
    first = _majority(data) if base.task == "classification" else _naive(data)
    linear = [_linear(data, replace(base, sequence_length=n)) for n in lengths]
    best = max(linear, key=lambda b: b.extra["stop_score"])  # nan-free: scores are finite
    for b in (first, best):
        b.objective_name = objective
    return [first, best]


def describe(baselines: list[CVBaseline]) -> str:
    """One line: 'ridge on these folds: mse_ratio 0.77, skill +0.23 (window 20, alpha 10);
    persistence: mse_ratio 1'."""
    parts = []
    for b in reversed(baselines):  # the linear one first: it is the one to beat
        value = f"{b.objective_name} {b.objective:.4g}"
        if math.isfinite(b.skill):
            value += f", skill {b.skill:+.2f}"
        parts.append(f"{b.name} on these folds: {value} ({b.setting})")
    return "Baselines: " + "; ".join(parts)


# -- internals -------------------------------------------------------------------------


def _truth(data: SweepData) -> np.ndarray:
    values = np.asarray(data.targets.values)
    if data.targets.task == "classification":
        return values.astype(np.int64)
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)  # no copy


def _naive(data: SweepData) -> CVBaseline:
    names = list(data.targets.names)
    now = data.frame()[names].to_numpy(dtype=np.float64)
    y = _truth(data)
    folds = []
    for fit, _stop, ev in data.folds:
        mean = np.nanmean(y[fit], axis=0)
        pred = naive_forecast(names, now[ev], mean)
        folds.append(_regression_record(y[ev], pred, now[ev], mean, names))
    return CVBaseline("naive", folds, naive_name(names), "mse_ratio")


def _majority(data: SweepData) -> CVBaseline:
    y = _truth(data)
    folds = []
    for fit, _stop, ev in data.folds:
        label = int(np.bincount(y[fit], minlength=len(CLASS_NAMES)).argmax())
        pred = np.full(len(ev), label, dtype=np.int64)
        folds.append(_classification_record(y[ev], pred))
    label = CLASS_NAMES[int(np.bincount(y[data.folds[0][0]], minlength=3).argmax())]
    return CVBaseline("majority", folds, f"majority class of each fold (fold 0: {label})", "")


def _linear(data: SweepData, cfg: TrainConfig) -> CVBaseline:
    regression = cfg.task == "regression"
    names = list(data.targets.names)
    frame = data.frame()
    y = _truth(data)
    now = frame[names].to_numpy(dtype=np.float64) if regression else None
    folds, settings, stop_scores = [], [], []
    for fit, stop, ev in data.folds:
        table = TrainingTable(
            values=data.values,
            columns=data.columns,
            index=data.index,
            targets=data.targets,
            fit_idx=fit,
            stop_idx=stop,
            refit_idx=fit,  # scored as a trial is: trained on the fold's fit anchors only
        )
        model = LinearBaseline(cfg).fit(table)
        # The rows the evaluation windows read only (a view): not the whole table per fold.
        first = max(0, int(np.min(ev)) - cfg.sequence_length + 1)
        rows = HoldoutRows(
            features=frame.iloc[first : int(np.max(ev)) + 1],
            anchors=np.asarray(ev),
            first_row=first,
            targets=data.targets,
        )
        pred = model.predict(rows)
        if regression:
            mean = np.nanmean(y[fit], axis=0)
            folds.append(_regression_record(y[ev], pred, now[ev], mean, names))
        else:
            folds.append(_classification_record(y[ev], pred))
        settings.append(next(iter(model.setting.values())))
        stop_scores.append(model.stop_score)
    key = "alpha" if regression else "C"
    setting = f"window {cfg.sequence_length}, {key} {settings[0]:g}"
    if len(set(settings)) > 1:
        chosen = ", ".join(f"{v:g}" for v in settings)
        setting = f"window {cfg.sequence_length}, {key} per fold {chosen}"
    name = "ridge" if regression else "logistic"
    score = float(np.mean(stop_scores))
    return CVBaseline(name, folds, setting, "", extra={"stop_score": score})


def _regression_record(true, pred, now, mean, names) -> dict:
    out = regression_metrics(true, pred, now, names=names)
    out.update(naive_scores(true, pred, now, mean, names=names))
    return {k: v for k, v in out.items() if k != "naive" and not isinstance(v, str)}


def _classification_record(true, pred) -> dict:
    out = classification_metrics(true, pred)
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float, np.floating))}


def _plain(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)
