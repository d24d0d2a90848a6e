"""Scores on the test part: the promoted runs, their ensembles and the baselines they must beat.

Every number here is computed on the same test anchors (``HoldoutRows``), in original units:

* regression: persistence ("the value ``horizon`` bars ahead is the value now") and a ridge
  regression on the flattened scaled windows the models read;
* classification: the majority class of the training labels and a logistic regression on
  the same windows.

The linear baselines are fit on the models' own training anchors with a scaler fit on their
rows only; their one regularisation setting is picked on the early-stopping tail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge

from orchestrator.holdout import HoldoutRows, Pick, TrainingTable, write_json
from trainables.artifacts import load_run, predict
from trainables.config import TrainConfig
from trainables.dataset import FoldData, prepare_fold
from trainables.metrics import (
    CLASS_NAMES,
    classification_metrics,
    persistence_metrics,
    regression_metrics,
)
from trainables.windows import sliding_windows

__all__ = [
    "LinearBaseline",
    "add_test_results",
    "baseline_outputs",
    "baseline_scores",
    "evaluate_runs",
    "mean_outputs",
    "output_columns",
    "outputs_on_test",
    "prediction_frame",
    "score",
    "seed_stats",
    "verdict",
]

_RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
_LOGISTIC_CS = (0.01, 0.1, 1.0, 10.0)


def score(pred: np.ndarray, test: HoldoutRows) -> dict:
    """Task metrics of ``pred`` on the test anchors.

    Regression ``pred`` is ``[n, T]`` in original units; the metrics add ``persistence_*``
    and ``skill = 1 - mse / persistence_mse`` (> 0 beats persistence). Classification ``pred``
    is ``[n, 3]`` probabilities.
    """
    names = list(test.targets.names)
    truth = test.truth()
    if test.targets.task == "classification":
        return classification_metrics(truth, pred)
    now = test.now()
    out = regression_metrics(truth, pred, now, names=names)
    base = persistence_metrics(truth, now, names=names)
    out.update({f"persistence_{k}": v for k, v in base.items()})
    out["skill"] = 1.0 - out["mse"] / base["mse"] if base["mse"] > 0 else 0.0
    return out


def mean_outputs(outputs: list[np.ndarray]) -> np.ndarray:
    """Average of model outputs: regression predictions, or class probabilities (soft vote)."""
    return np.mean(np.stack(outputs), axis=0)


def seed_stats(per_seed: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """(mean, std) over seeds of every scalar metric; std is the sample std (0 for one seed)."""
    keys = [k for k, v in per_seed[0].items() if isinstance(v, (int, float))]
    mean, std = {}, {}
    for k in keys:
        values = np.array([m[k] for m in per_seed], dtype=np.float64)
        mean[k] = float(values.mean())
        std[k] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def verdict(label: str, metrics: dict, baselines: dict[str, dict], task: str) -> str:
    """One plain sentence: does ``label`` beat the naive baseline on the test part?"""
    if task == "classification":
        ref = baselines["majority class"]["macro_f1"]
        value = metrics["macro_f1"]
        word = "beats" if value > ref else "does NOT beat"
        return (
            f"{label} {word} the majority class on the test part: macro F1 {value:.4f} vs {ref:.4f}"
        )
    ref, value = metrics["persistence_mse"], metrics["mse"]
    word = "beats" if value < ref else "does NOT beat"
    return (
        f"{label} {word} persistence on the test part: mse {value:.6g} vs {ref:.6g} "
        f"(skill {metrics['skill']:+.4f})"
    )


class LinearBaseline:
    """Ridge (regression) or logistic regression (classification) on flattened windows.

    ``fit`` reads the training table only; ``predict`` the test part. Regression predicts
    the change from the last input value when the target is an input (as the models'
    ``residual`` option does), so it starts from persistence, not from zero.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.task = cfg.task
        self.name = "logistic regression" if self.task == "classification" else "ridge"
        self.setting: dict[str, float] = {}
        self._fold: FoldData | None = None
        self._model = None
        self._residual = False

    def fit(self, table: TrainingTable) -> LinearBaseline:
        cfg = self.cfg
        fold = prepare_fold(
            table.frame(),
            table.targets,
            table.fit_idx,
            table.stop_idx,
            f_cols=list(cfg.f_cols),
            seq_len=cfg.sequence_length,
            scaler=cfg.scaler,
        )
        self._fold = fold
        self._residual = self.task == "regression" and all(
            t in fold.feature_names for t in fold.target_names
        )
        x_fit, x_stop = self._windows(fold.x, fold.train_idx), self._windows(fold.x, fold.stop_idx)
        y_fit, y_stop = self._y(fold, fold.train_idx), self._y(fold, fold.stop_idx)
        best, best_value = None, -math.inf
        for setting in _RIDGE_ALPHAS if self.task == "regression" else _LOGISTIC_CS:
            model = self._make(setting).fit(x_fit, y_fit)
            value = self._tail_score(model, x_stop, y_stop)
            if value > best_value:
                best, best_value = setting, value
        key = "alpha" if self.task == "regression" else "C"
        self.setting = {key: best}
        self._model = self._make(best).fit(x_fit, y_fit)
        return self

    def predict(self, test: HoldoutRows) -> np.ndarray:
        fold, model = self._fold, self._model
        if fold is None or model is None:
            raise RuntimeError("LinearBaseline.predict before fit")
        x = fold.scaler.transform(
            test.features[fold.feature_names].to_numpy(dtype=np.float64), fold.feature_names
        )
        windows = self._windows(x, test.anchors - test.first_row)
        if self.task == "classification":
            proba = np.zeros((len(windows), len(CLASS_NAMES)))
            proba[:, model.classes_] = model.predict_proba(windows)
            return proba
        out = model.predict(windows).reshape(len(windows), -1)  # [n, T] scaled
        if self._residual:
            names = fold.target_names
            raw_now = test.features[names].to_numpy(dtype=np.float64)
            out = out + fold.scaler.transform(raw_now, names)[test.anchors - test.first_row]
        return fold.scaler.inverse_transform(out, fold.target_names)

    # -- internals ---------------------------------------------------------------------

    def _windows(self, x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        L = self.cfg.sequence_length
        win = sliding_windows(x, L)[np.asarray(anchors) - (L - 1)]  # [n, L, F]
        return win.reshape(len(win), -1)  # [n, L * F]

    def _y(self, fold: FoldData, anchors: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return fold.y[anchors]
        return fold.y[anchors] - fold.y_now[anchors] if self._residual else fold.y[anchors]

    def _make(self, setting: float):
        if self.task == "classification":
            return LogisticRegression(C=setting, max_iter=2000)
        return Ridge(alpha=setting)

    def _tail_score(self, model, x: np.ndarray, y: np.ndarray) -> float:
        if self.task == "classification":
            return classification_metrics(y, model.predict(x))["macro_f1"]
        return -float(np.mean((model.predict(x).reshape(y.shape) - y) ** 2))


def baseline_outputs(
    table: TrainingTable, cfg: TrainConfig
) -> tuple[LinearBaseline, np.ndarray | None]:
    """Fit the linear baseline on the training table; also the majority class (classification).

    Returns the fitted linear baseline and, for classification, the majority class's one-hot
    probability row (``[3]``); regression's persistence needs no fitting.
    """
    linear = LinearBaseline(cfg).fit(table)
    if cfg.task != "classification":
        return linear, None
    labels = table.targets.values[table.fit_idx].astype(np.int64)
    majority = np.zeros(len(CLASS_NAMES))
    majority[int(np.bincount(labels, minlength=len(CLASS_NAMES)).argmax())] = 1.0
    return linear, majority


def baseline_scores(
    linear: LinearBaseline, majority: np.ndarray | None, test: HoldoutRows
) -> dict[str, dict]:
    """Test metrics of the baselines: persistence or majority class, then the linear model."""
    out = {}
    if majority is not None:
        out["majority class"] = score(np.tile(majority, (len(test.anchors), 1)), test)
    else:
        persistence = score(test.now(), test)
        # It predicts no move at all, so the share of moves it calls right is meaningless.
        persistence.pop("directional_accuracy", None)
        out["persistence"] = persistence
    out[linear.name] = {**score(linear.predict(test), test), **linear.setting}
    return out


# ---------------------------------------------------------------------- promoted runs


def outputs_on_test(run_dir: Path, test: HoldoutRows) -> np.ndarray:
    """A saved run's outputs on the test anchors, through ``artifacts.predict`` (the same path
    ``python -m orchestrator.predict`` takes): ``[n, T]`` original units or ``[n, 3]``."""
    run = load_run(run_dir)
    frame = predict(run, test.features)
    frame = frame.loc[test.timestamps]
    return frame[output_columns(run.task, run.target_names)].to_numpy(dtype=np.float64)


def output_columns(task: str, target_names: list[str]) -> list[str]:
    if task == "classification":
        return [f"p_{name}" for name in CLASS_NAMES]
    return [f"predicted_{name}" for name in target_names]


def prediction_frame(test: HoldoutRows, pred: np.ndarray) -> pd.DataFrame:
    """Test rows in the layout of ``predictions.parquet`` (split 'test')."""
    task, names = test.targets.task, list(test.targets.names)
    cols: dict = {
        "timestamp": test.timestamps,
        "target_timestamp": test.target_timestamps,
        "anchor": test.anchors,
        "split": "test",
    }
    truth = test.truth()
    if task == "classification":
        cols["actual"] = truth
    else:
        cols.update({f"actual_{name}": truth[:, k] for k, name in enumerate(names)})
    cols.update(dict(zip(output_columns(task, names), pred.T, strict=True)))
    if task == "classification":
        cols["predicted"] = pred.argmax(axis=1).astype(np.int64)
    return pd.DataFrame(cols)


def add_test_results(run_dir: Path, test: HoldoutRows, pred: np.ndarray, metrics: dict) -> None:
    """Append the test rows to a run's ``predictions.parquet`` and its test metrics to
    ``training_metrics.json`` (the training step wrote neither: it never had the rows)."""
    path = Path(run_dir) / "predictions.parquet"
    saved = pd.read_parquet(path)
    saved = saved[saved["split"] != "test"]
    frame = prediction_frame(test, pred)
    pd.concat([saved, frame], ignore_index=True).to_parquet(path, index=False)
    metrics_path = Path(run_dir) / "training_metrics.json"
    info = json.loads(metrics_path.read_text())
    info["test_metrics"] = metrics
    write_json(metrics_path, info)


def evaluate_runs(
    picks: list[Pick], jobs: list[dict], models_dir: Path, test: HoldoutRows, baselines: dict
) -> dict:
    """Score every saved run, each rank's seed ensemble and the top-k ensemble on the test part.

    ``jobs``: the training summaries (``rank``, ``k``, ``status``, ...). Each run directory
    gets its test rows and metrics; ``models_dir/<rank>/predictions.parquet`` the seed
    ensemble's. Returns ``{"models": [...], "ensemble": {...}}`` for promoted.json.
    """
    task = test.targets.task
    rank_outputs, models = [], []
    for p in picks:
        rank = p.rank
        model = {
            "rank": rank,
            "trial_id": p.trial_id,
            "cv_objective": p.objective,
            "params": p.params,
            "epochs": p.cfg.epochs,
            "path": f"models/{rank}",
        }
        models.append(model)
        mine = sorted((j for j in jobs if j["rank"] == rank), key=lambda j: j["k"])
        seeds, outputs = [], []
        for job in mine:
            entry = {k: v for k, v in job.items() if k not in ("dir", "rank")}
            if job["status"] == "ok":
                run_dir = models_dir / str(rank) / f"seed{job['k']}"
                pred = outputs_on_test(run_dir, test)
                entry["test"] = score(pred, test)
                entry["path"] = f"models/{rank}/seed{job['k']}"
                add_test_results(run_dir, test, pred, entry["test"])
                outputs.append(pred)
            seeds.append(entry)
        model["seeds"] = seeds
        if not outputs:
            continue
        model["test_mean"], model["test_std"] = seed_stats(
            [s["test"] for s in seeds if "test" in s]
        )
        ensemble = mean_outputs(outputs)
        model["ensemble_test"] = score(ensemble, test)
        label = f"rank {rank} (trial {model['trial_id']}, {len(outputs)}-seed ensemble)"
        model["verdict"] = verdict(label, model["ensemble_test"], baselines, task)
        prediction_frame(test, ensemble).to_parquet(models_dir / str(rank) / "predictions.parquet")
        rank_outputs.append((rank, ensemble))
    out: dict = {"models": models}
    if len(rank_outputs) > 1:
        ranks = [r for r, _ in rank_outputs]
        metrics = score(mean_outputs([o for _, o in rank_outputs]), test)
        out["ensemble"] = {
            "ranks": ranks,
            "test": metrics,
            "verdict": verdict(f"the top-{len(ranks)} ensemble", metrics, baselines, task),
        }
    return out
