"""The baselines a promoted model must beat, fit on the models' own training rows.

Every number is computed on the same test anchors (``HoldoutRows``), in original units:

* regression: the **naive forecast** of ``trainables.prep.naive`` per target (persistence, "the
  value ``horizon`` bars ahead is the value now", for a level such as close; the training
  mean for a return-like target such as log_return), and a **ridge** regression on the
  flattened scaled windows the models read;
* classification: the **majority class** of the training labels and a **logistic
  regression** on the same windows.

The linear baselines pick their one regularisation setting on the early-stopping tail
(trained on the train part), then are refit with it on train+validation, the rows the final
models train on; the training mean and the majority class come from those rows too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from orchestrator.promotion.holdout import HoldoutRows, TrainingTable
from orchestrator.promotion.ridge import RidgeGram
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData, prepare_fold_for, scaled_columns
from trainables.prep.naive import naive_forecast, naive_kinds, residual_applies
from trainables.prep.windows import sliding_windows
from trainables.training.metrics import (
    CLASS_NAMES,
    classification_metrics,
    persistence_metrics,
    regression_metrics,
)

__all__ = [
    "BaselineModels",
    "LinearBaseline",
    "baseline_forecasts",
    "baseline_scores",
    "fit_baselines",
    "naive_name",
    "score",
]

_RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
_LOGISTIC_CS = (0.01, 0.1, 1.0, 10.0)


def naive_name(targets: list[str]) -> str:
    """What the naive baseline is called: ``persistence``, ``training mean``, or for a mix
    of targets ``naive (persistence for close, training mean for log_return)``."""
    kinds = naive_kinds(targets)
    if len(set(kinds)) == 1:
        return kinds[0]
    parts = ", ".join(f"{k} for {t}" for t, k in zip(targets, kinds, strict=True))
    return f"naive ({parts})"


def score(pred: np.ndarray, test: HoldoutRows, naive: np.ndarray | None = None) -> dict:
    """Task metrics of ``pred`` on the test anchors.

    Regression ``pred`` is ``[n, T]`` in original units; with ``naive`` (``[n, T]``, the
    naive forecast) the metrics add ``naive_*`` and ``skill = 1 - mean over targets of
    MSE / naive MSE`` (> 0 beats the naive forecast; one ratio per target, so no target's
    units swamp the others'). Classification ``pred`` is ``[n, 3]`` probabilities.
    """
    names = list(test.targets.names)
    truth = test.truth()
    if test.targets.task == "classification":
        return classification_metrics(truth, pred)
    out = regression_metrics(truth, pred, test.now(), names=names)
    if naive is not None:
        base = persistence_metrics(truth, naive, names=names)  # the same errors, any forecast
        out.update({f"naive_{k}": v for k, v in base.items()})
        mse = np.mean((pred - truth) ** 2, axis=0)
        ref = np.mean((naive - truth) ** 2, axis=0)
        out["skill"] = float(1.0 - np.mean(mse / ref)) if np.all(ref > 0) else float("nan")
    return out


class LinearBaseline:
    """Ridge (regression) or logistic regression (classification) on flattened windows.

    ``fit`` reads the training table only; ``predict`` the test part. Regression predicts
    the change from the last input value for a level target that is an input (as the
    models' ``residual`` option does, ``trainables.prep.naive.residual_applies``), so it starts
    from persistence, not from zero; a return-like target is predicted directly.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.task = cfg.task
        self.name = "logistic regression" if self.task == "classification" else "ridge"
        self.setting: dict[str, float] = {}
        self.stop_score = math.nan  # the chosen setting's score on the early-stopping tail
        self._fold: FoldData | None = None
        self._model = None
        self._residual = False

    def fit(self, table: TrainingTable) -> LinearBaseline:
        """Pick the setting on the early-stopping tail, then refit on train+validation."""
        # One BLAS thread: these fits are small, and on a busy machine a multi-threaded
        # BLAS spins against the other processes (measured: 60 s instead of 0.8 s for one
        # logistic fit at load 26 on 2 cores).
        with threadpool_limits(limits=1):
            return self._fit(table)

    def _fit(self, table: TrainingTable) -> LinearBaseline:
        fold = self._fold_of(table, table.fit_idx)
        if self.task == "classification":
            return self._fit_logistic(table, fold)
        # Ridge: one Gram matrix per set of training anchors, every alpha a small solve.
        gram = self._gram(fold)
        y_stop = self._y(fold, fold.stop_idx)
        best, best_value = None, -math.inf
        for alpha in _RIDGE_ALPHAS:
            pred = gram.solve(alpha).predict(fold.x, fold.stop_idx).reshape(y_stop.shape)
            value = -float(np.mean((pred - y_stop) ** 2))
            if value > best_value:
                best, best_value = alpha, value
        self.setting, self.stop_score = {"alpha": best}, best_value  # -MSE in scaled units
        if not np.array_equal(table.refit_idx, table.fit_idx):  # else the same rows again
            fold, gram = self._refit_fold(table), None
        self._fold = fold
        self._model = (gram or self._gram(fold)).solve(best)
        return self

    def _fit_logistic(self, table: TrainingTable, fold: FoldData) -> LinearBaseline:
        # scikit-learn loads only for a classification baseline (a second of start-up).
        from sklearn.linear_model import LogisticRegression

        best, best_value = None, -math.inf
        x_fit, x_stop = self._windows(fold.x, fold.train_idx), self._windows(fold.x, fold.stop_idx)
        y_fit, y_stop = self._y(fold, fold.train_idx), self._y(fold, fold.stop_idx)
        for c in _LOGISTIC_CS:
            model = LogisticRegression(C=c, max_iter=2000).fit(x_fit, y_fit)
            value = classification_metrics(y_stop, model.predict(x_stop))["macro_f1"]
            if value > best_value:
                best, best_value = c, value
        self.setting, self.stop_score = {"C": best}, best_value
        self._fold = fold = self._refit_fold(table)
        self._model = LogisticRegression(C=best, max_iter=2000).fit(
            self._windows(fold.x, fold.train_idx), self._y(fold, fold.train_idx)
        )
        return self

    def predict(self, test: HoldoutRows) -> np.ndarray:
        fold, model = self._fold, self._model
        if fold is None or model is None:
            raise RuntimeError("LinearBaseline.predict before fit")
        x = scaled_columns(fold.scaler, test.features, fold.feature_names)
        local = test.anchors - test.first_row
        if self.task == "classification":
            windows = self._windows(x, local)
            proba = np.zeros((len(windows), len(CLASS_NAMES)))
            proba[:, model.classes_] = model.predict_proba(windows)
            return proba
        out = model.predict(x, local)  # [n, T] scaled
        if self._residual:
            names = fold.target_names
            raw_now = test.features[names].to_numpy(dtype=np.float64)
            out = out + fold.scaler.transform(raw_now, names)[test.anchors - test.first_row]
        return fold.scaler.inverse_transform(out, fold.target_names)

    # -- internals ---------------------------------------------------------------------

    def _fold_of(self, table: TrainingTable, train_idx: np.ndarray) -> FoldData:
        fold = prepare_fold_for(
            self.cfg, table.frame(), table.targets, train_idx, table.stop_idx, only_rows_read=True
        )
        self._residual = self.task == "regression" and residual_applies(
            fold.feature_names, fold.target_names
        )
        return fold

    def _windows(self, x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        L = self.cfg.sequence_length
        win = sliding_windows(x, L)[np.asarray(anchors) - (L - 1)]  # [n, L, F]
        return win.reshape(len(win), -1)  # [n, L * F]

    def _y(self, fold: FoldData, anchors: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return fold.y[anchors]
        return fold.y[anchors] - fold.y_now[anchors] if self._residual else fold.y[anchors]

    def _gram(self, fold: FoldData) -> RidgeGram:
        return RidgeGram(
            fold.x,
            fold.train_idx,
            self._y(fold, fold.train_idx),
            sequence_length=self.cfg.sequence_length,
        )

    def _refit_fold(self, table: TrainingTable) -> FoldData:
        return self._fold_of(table, table.refit_idx)


@dataclass
class BaselineModels:
    """The fitted baselines: the linear model, and the majority class's one-hot row
    (classification) or each target's training mean (regression)."""

    linear: LinearBaseline
    majority: np.ndarray | None  # [3], classification
    train_mean: np.ndarray | None  # [T], regression: over the final models' training anchors
    names: list[str]


def fit_baselines(table: TrainingTable, cfg: TrainConfig) -> BaselineModels:
    """Fit every baseline on the training table (the test part is not in it)."""
    linear = LinearBaseline(cfg).fit(table)
    names = list(table.targets.names)
    values = table.targets.values[table.refit_idx]
    if cfg.task != "classification":
        return BaselineModels(linear, None, np.asarray(values, np.float64).mean(axis=0), names)
    counts = np.bincount(values.astype(np.int64), minlength=len(CLASS_NAMES))
    majority = np.zeros(len(CLASS_NAMES))
    majority[int(counts.argmax())] = 1.0
    return BaselineModels(linear, majority, None, names)


def baseline_forecasts(models: BaselineModels, test: HoldoutRows) -> dict[str, np.ndarray]:
    """Each baseline's outputs on the test anchors, the naive one (or the majority class)
    first: ``[n, T]`` original units or ``[n, 3]`` probabilities."""
    n = len(test.anchors)
    if models.majority is not None:
        first = {"majority class": np.tile(models.majority, (n, 1))}
    else:
        naive = naive_forecast(models.names, test.now(), models.train_mean, n)
        first = {naive_name(models.names): naive}
    return {**first, models.linear.name: models.linear.predict(test)}


def baseline_scores(
    forecasts: dict[str, np.ndarray], models: BaselineModels, test: HoldoutRows
) -> dict[str, dict]:
    """Test metrics of every baseline (regression: with skill against the naive forecast)."""
    naive = None if models.majority is not None else next(iter(forecasts.values()))
    out = {}
    for k, (name, pred) in enumerate(forecasts.items()):
        metrics = score(pred, test, naive)
        if k == 0 and naive is not None:
            # It forecasts no move, or a constant: its share of moves called right means nothing.
            metrics.pop("directional_accuracy", None)
        out[name] = metrics
    out[models.linear.name].update(models.linear.setting)
    return out
