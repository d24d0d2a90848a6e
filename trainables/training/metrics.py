"""Task metrics in plain numpy: regression (with the persistence baseline) and 3-class.

Regression arrays are ``[n]`` or ``[n, T]`` in the same units (the trainer passes original
units). With several targets the headline numbers average over targets and per-target
values are added as ``mse_<name>`` etc.
"""

from __future__ import annotations

import numpy as np

from trainables.prep.dataset import FoldData
from trainables.prep.naive import naive_forecast, naive_kinds

__all__ = [
    "CLASS_NAMES",
    "classification_metrics",
    "fold_outputs",
    "naive_scores",
    "pooled_ratio",
    "outputs_to_predictions",
    "persistence_metrics",
    "regression_metrics",
]

CLASS_NAMES = ("down", "flat", "up")


def _2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _errors(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-target mse, rmse, mae and r2: each an array of length T."""
    err = y_pred - y_true
    mse = np.mean(err**2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    # A constant target has no variance to explain: r2 is 0 for a perfect fit, else -inf-like.
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - np.sum(err**2, axis=0) / ss_tot, 0.0)
    return {"mse": mse, "rmse": np.sqrt(mse), "mae": np.mean(np.abs(err), axis=0), "r2": r2}


def _flatten(per_target: dict[str, np.ndarray], names: list[str] | None) -> dict[str, float]:
    out = {k: float(np.mean(v)) for k, v in per_target.items()}
    if names is not None and len(names) > 1:
        for k, v in per_target.items():
            out.update({f"{k}_{name}": float(x) for name, x in zip(names, v, strict=True)})
    return out


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_now: np.ndarray | None = None,
    *,
    names: list[str] | None = None,
) -> dict[str, float]:
    """mse, rmse, mae, r2 and (with ``y_now``) directional_accuracy.

    directional_accuracy: share of samples where the predicted move ``pred - now`` has the
    sign of the true move ``true - now``; samples whose true move is exactly 0 are left out.
    """
    y_true, y_pred = _2d(y_true), _2d(y_pred)
    per_target = _errors(y_true, y_pred)
    if y_now is not None:
        now = _2d(y_now)
        true_move, pred_move = np.sign(y_true - now), np.sign(y_pred - now)
        moved = true_move != 0
        hits = np.sum((true_move == pred_move) & moved, axis=0)
        per_target["directional_accuracy"] = hits / np.maximum(np.sum(moved, axis=0), 1)
    return _flatten(per_target, names)


def persistence_metrics(
    y_true: np.ndarray, y_now: np.ndarray, *, names: list[str] | None = None
) -> dict[str, float]:
    """The naive forecast "the value ``horizon`` bars ahead equals the value now"."""
    return _flatten(_errors(_2d(y_true), _2d(y_now)), names)


def classification_metrics(y_true: np.ndarray, proba_or_labels: np.ndarray) -> dict:
    """accuracy, macro_f1, f1 per class, confusion_matrix (rows true, columns predicted).

    ``proba_or_labels``: ``[n, 3]`` probabilities (argmax taken) or ``[n]`` class labels.
    macro_f1 averages the classes that occur in the truth or the predictions, as sklearn does.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(proba_or_labels)
    pred = pred.argmax(axis=1) if pred.ndim == 2 else pred.astype(np.int64)
    k = len(CLASS_NAMES)
    cm = np.bincount(y_true * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    present = denom > 0
    out: dict = {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
    }
    out.update({f"f1_{name}": float(v) for name, v in zip(CLASS_NAMES, f1, strict=True)})
    out["confusion_matrix"] = cm.tolist()
    return out


def outputs_to_predictions(
    out: np.ndarray, *, task: str, scaler, target_names: list[str]
) -> np.ndarray:
    """Raw model outputs ``[n, k]`` -> class probabilities (softmax) or original units.

    The one conversion used for the trainer's predictions and for ``artifacts.predict``.
    """
    if task == "classification":
        z = np.exp(out - out.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return scaler.inverse_transform(out, list(target_names))  # float64, original units


def naive_scores(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_now: np.ndarray,
    train_mean: np.ndarray,
    *,
    names: list[str],
) -> dict:
    """The score a sweep ranks on: each target's MSE against its naive forecast's.

    ``naive_mse`` is the MSE of ``trainables.prep.naive.naive_forecast`` (persistence for level
    targets, the training mean for return-like ones) on the same rows, in original units;
    ``mse_ratio`` is the mean over targets of ``mse / naive_mse`` (so volume cannot swamp
    prices) and ``skill = 1 - mse_ratio``: > 0 beats the naive forecast. ``mse_by_target``
    and ``naive_mse_by_target`` are kept for pooling over folds. A target whose naive
    forecast is exact (``naive_mse`` 0) has no ratio: NaN.
    """
    y_true, y_pred, y_now = _2d(y_true), _2d(y_pred), _2d(y_now)
    naive = naive_forecast(names, y_now, train_mean)
    mse_t = np.mean((y_pred - y_true) ** 2, axis=0)
    naive_t = np.mean((naive - y_true) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.mean(np.where(naive_t > 0, mse_t / naive_t, np.nan)))
    return {
        "mse_ratio": ratio,
        "skill": 1.0 - ratio,
        "naive_mse": float(np.mean(naive_t)),
        "mse_by_target": [float(v) for v in mse_t],
        "naive_mse_by_target": [float(v) for v in naive_t],
        "naive": naive_kinds(names),
    }


def pooled_ratio(mse_by_target: list[list[float]], naive_by_target: list[list[float]]) -> float:
    """Folds pooled: mean over targets of (sum over folds of MSE) / (sum of naive MSE)."""
    model = np.sum(np.asarray(mse_by_target, dtype=np.float64), axis=0)
    naive = np.sum(np.asarray(naive_by_target, dtype=np.float64), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.where(naive > 0, model / naive, np.nan)))


def fold_outputs(out: np.ndarray, fold: FoldData, anchors: np.ndarray) -> tuple[np.ndarray, dict]:
    """Raw model outputs for ``anchors`` of ``fold`` -> (predictions, task metrics).

    Regression: predictions and metrics in original units (truth and the naive forecasts
    from the fold's float64 raw values, never round-tripped through the scaler): mse, rmse,
    mae, r2, directional_accuracy, ``persistence_mse``, and :func:`naive_scores`
    (``mse_ratio``, ``skill``, ...). Classification: softmax probabilities ``[n, 3]``.
    """
    names = list(fold.target_names)
    pred = outputs_to_predictions(out, task=fold.task, scaler=fold.scaler, target_names=names)
    if fold.task == "classification":
        return pred, classification_metrics(fold.y[anchors], pred)
    raw = fold.y_raw if fold.y_raw is not None else fold.scaler.inverse_transform(fold.y, names)
    true = raw[anchors]
    if fold.now_raw is None and fold.y_now is None:
        return pred, regression_metrics(true, pred, names=names)
    now_all = fold.now_raw
    if now_all is None:
        now_all = fold.scaler.inverse_transform(fold.y_now, names)
    now = now_all[anchors]
    metrics = regression_metrics(true, pred, now, names=names)
    metrics["persistence_mse"] = persistence_metrics(true, now, names=names)["mse"]
    train_mean = np.nanmean(raw[fold.train_idx], axis=0)
    metrics.update(naive_scores(true, pred, now, train_mean, names=names))
    return pred, metrics
