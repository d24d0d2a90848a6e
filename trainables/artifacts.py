"""Save and load a trained run: weights, settings, scaler, curves and predictions.

A run directory holds

* ``model.pt``: the state dict only (load with ``torch.load(..., weights_only=True)``)
* ``config.json``: every training setting, the data's feature/target names and shapes
* ``scaler.json``: the scaler fit on training rows only
* ``training_metrics.json``: loss/LR curves, best epoch, final losses, metrics
* ``predictions.parquet``: per evaluated sample its timestamp, actual and predicted values

``predict(load_run(d), features)`` reproduces ``predictions.parquet`` bit for bit on the
same kind of device: both go through ``trainer.predict_scaled`` and
``metrics.outputs_to_predictions``.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainables.errors import DataError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.prep.scaling import scaler_from_dict
from trainables.training.metrics import CLASS_NAMES, outputs_to_predictions
from trainables.training.network import SequenceModel
from trainables.training.trainer import FitResult, evaluate, predict_scaled

__all__ = ["FILES", "LoadedRun", "load_run", "predict", "save_run"]

FILES = ("model.pt", "config.json", "scaler.json", "training_metrics.json", "predictions.parquet")


@dataclass
class LoadedRun:
    path: Path
    config: TrainConfig
    model: SequenceModel = field(repr=False)
    scaler: Any = field(repr=False)
    feature_names: list[str]
    target_names: list[str]
    task: str
    sequence_length: int
    horizon: int
    amp: str  # as trained: 'bf16' | 'fp16' | 'off'
    device: str  # as trained
    info: dict = field(default_factory=dict, repr=False)  # the whole config.json


def save_run(
    out_dir: str | Path,
    *,
    result: FitResult,
    cfg: TrainConfig,
    fold: FoldData,
    index: pd.DatetimeIndex | None = None,
    test_idx: np.ndarray | None = None,
    meta: dict | None = None,
) -> Path:
    """Write the five run files into ``out_dir`` (created if missing); returns it.

    Predictions cover ``fold.stop_idx`` (split 'val', the early-stopping part) and, when given, ``test_idx`` (split
    'test', whose metrics go to ``test_metrics``). ``index``: the feature rows' timestamps.
    ``meta``: where the run came from (preset, data source, how its timestamps were read),
    kept as ``origin`` in config.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = result.model
    dev, amp = _replay_device(result.device, result.amp)
    frames, test_metrics = [], None
    for split, anchors in (("val", fold.stop_idx), ("test", test_idx)):
        if anchors is None or len(anchors) == 0:
            continue
        anchors = np.asarray(anchors, dtype=np.int64)
        pred, metrics = evaluate(model, fold, anchors, amp=amp, device=dev)
        if split == "test":
            test_metrics = metrics
        frames.append(_prediction_frame(split, anchors, pred, fold, index))
    model.to("cpu")

    torch.save(model.state_dict(), out / "model.pt")
    info = {
        "train_config": cfg.to_dict(),
        "model": {
            "class": "SequenceModel",
            "n_features": fold.n_features,
            "n_outputs": fold.n_outputs,
            "residual_index": model.residual_index.tolist() or None,
            "n_parameters": sum(p.numel() for p in model.parameters()),
        },
        "data": {
            "task": fold.task,
            "feature_names": list(fold.feature_names),
            "target_names": list(fold.target_names),
            "sequence_length": fold.sequence_length,
            "horizon": fold.horizon,
            "n_rows": len(fold.x),
            "n_train": len(fold.train_idx),
            "n_val": len(fold.stop_idx),
            "n_test": 0 if test_idx is None else len(test_idx),
            **_time_range("train", fold.train_idx, index),
            **_time_range("val", fold.stop_idx, index),
            **({} if test_idx is None else _time_range("test", np.asarray(test_idx), index)),
        },
        "run": {
            "batch_size": result.batch_size,
            "amp": result.amp,
            "device": result.device,
            "seconds": result.seconds,
            "torch_version": torch.__version__,
        },
        **({"origin": meta} if meta else {}),
    }
    _write_json(out / "config.json", info)
    _write_json(out / "scaler.json", fold.scaler.to_dict())
    _write_json(out / "training_metrics.json", _training_metrics(result, test_metrics))
    pd.concat(frames, ignore_index=True).to_parquet(out / "predictions.parquet", index=False)
    return out


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read a directory written by ``save_run``; the model comes back on the CPU, in eval mode."""
    path = Path(run_dir)
    missing = [f for f in ("model.pt", "config.json", "scaler.json") if not (path / f).is_file()]
    if missing:
        raise DataError(f"{path}: not a saved run, missing {missing}")
    try:
        info = json.loads((path / "config.json").read_text())
        scaler = scaler_from_dict(json.loads((path / "scaler.json").read_text()))
        cfg = TrainConfig.from_dict(info["train_config"])
        spec, data = info["model"], info["data"]
        model = SequenceModel(
            cfg, spec["n_features"], spec["n_outputs"], residual_index=spec.get("residual_index")
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: unreadable run files ({type(err).__name__}: {err})") from err
    _load_weights(path / "model.pt", model)
    return LoadedRun(
        path=path,
        config=cfg,
        model=model.eval(),
        scaler=scaler,
        feature_names=list(data["feature_names"]),
        target_names=list(data["target_names"]),
        task=data["task"],
        # runs saved before the rename keep "seq_len"
        sequence_length=int(data.get("sequence_length", data.get("seq_len"))),
        horizon=int(data["horizon"]),
        amp=info["run"]["amp"],
        device=info["run"]["device"],
        info=info,
    )


def predict(run: LoadedRun, features: pd.DataFrame, *, device: str | None = None) -> pd.DataFrame:
    """Predictions for every row of ``features`` that ends a full window.

    ``features`` is a ``build_features`` frame holding the run's feature columns. Row ``i``
    (indexed by its timestamp) forecasts row ``i + horizon``. Regression: ``predicted_<name>``
    in original units; classification: ``p_down, p_flat, p_up`` and ``predicted`` (class).
    ``device``: default the training device when present here, else the CPU.
    """
    missing = [c for c in run.feature_names if c not in features.columns]
    if missing:
        raise DataError(
            f"features lack the run's input column(s) {missing}; it was trained on {run.feature_names}"
        )
    n, L = len(features), run.sequence_length
    if n < L:
        raise DataError(f"{n} feature rows are fewer than one window of sequence_length={L}")
    dev, amp = _replay_device(device or run.device, run.amp)
    raw = features[run.feature_names].to_numpy(dtype=np.float64)
    x = torch.from_numpy(run.scaler.transform(raw, run.feature_names)).to(dev)  # as prepare_fold
    anchors = np.arange(L - 1, n, dtype=np.int64)
    out = predict_scaled(run.model.to(dev), x, torch.from_numpy(anchors).to(dev), L, amp=amp)
    run.model.to("cpu")
    pred = outputs_to_predictions(
        out.cpu().numpy(), task=run.task, scaler=run.scaler, target_names=run.target_names
    )
    frame = pd.DataFrame(
        _pred_columns(run.task, run.target_names, pred), index=features.index[anchors]
    )
    frame.index.name = "timestamp"
    return frame


# ---------------------------------------------------------------------- helpers


def _weights_problem(err: Exception) -> str:
    if isinstance(err, pickle.UnpicklingError):
        return (
            "it holds pickled objects other than tensors, and loading those could run code"
            " (only files written by this project's save_run load)"
        )
    if isinstance(err, EOFError):
        return "the file is empty or cut short"
    if isinstance(err, OSError):
        return f"cannot read it ({err.strerror or err}): is it cut short or damaged?"
    text = str(err).strip()
    first = text.splitlines()[0][:160] if text else ""
    if "zip archive" in first:
        return "not a complete PyTorch weights file (cut short or damaged)"
    return f"not a PyTorch weights file ({type(err).__name__}{': ' + first if first else ''})"


def _load_weights(file: Path, model: SequenceModel) -> None:
    """Load the state dict in ``file`` into ``model`` without running any pickled code.

    ``weights_only=True`` refuses a pickle that would import or call anything; that refusal,
    an empty or truncated file and weights of another model are each one DataError line.
    """
    try:
        with warnings.catch_warnings():
            # A pickle not written by torch.save (as a planted one is) makes torch warn
            # about its protocol before refusing it; the refusal below says it all.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file: all are bad input
        raise DataError(f"{file}: refused, {_weights_problem(err)}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{file}: holds a {type(state).__name__}, not a model's weights")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise DataError(f"{file} does not match its config.json: {first}") from err


def _replay_device(device: str, amp: str) -> tuple[torch.device, str]:
    """The training device if it exists here, else the CPU (fp16 autocast is CUDA-only)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        dev = torch.device("cpu")
    if dev.type == "cpu" and amp == "fp16":
        amp = "off"
    return dev, amp


def _pred_columns(task: str, target_names: list[str], pred: np.ndarray) -> dict[str, np.ndarray]:
    if task == "classification":
        cols = {f"p_{name}": pred[:, k] for k, name in enumerate(CLASS_NAMES)}
        cols["predicted"] = pred.argmax(axis=1).astype(np.int64)
        return cols
    return {f"predicted_{name}": pred[:, k] for k, name in enumerate(target_names)}


def _prediction_frame(
    split: str,
    anchors: np.ndarray,
    pred: np.ndarray,
    fold: FoldData,
    index: pd.DatetimeIndex | None,
) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    if index is not None:
        cols["timestamp"] = index[anchors]
        target_rows = np.minimum(anchors + fold.horizon, len(index) - 1)
        cols["target_timestamp"] = index[target_rows]
    cols["anchor"] = anchors
    cols["split"] = split
    if fold.task == "classification":
        cols["actual"] = fold.y[anchors].astype(np.int64)
    else:
        actual = fold.y_raw[anchors]  # original units, exact
        for k, name in enumerate(fold.target_names):
            cols[f"actual_{name}"] = actual[:, k]
    cols.update(_pred_columns(fold.task, fold.target_names, pred))
    return pd.DataFrame(cols)


def _time_range(name: str, anchors: np.ndarray, index: pd.DatetimeIndex | None) -> dict:
    if index is None or len(anchors) == 0:
        return {}
    return {
        f"{name}_first": str(index[int(anchors.min())]),
        f"{name}_last": str(index[int(anchors.max())]),
    }


def _training_metrics(result: FitResult, test_metrics: dict | None) -> dict:
    """The users' keys first (docs/parameters.md, "The single-ticker trainer's files and loop"),
    then the rest."""
    h = result.history
    out = {
        "train_losses": [r.train_loss for r in h],
        "val_losses": [r.val_loss for r in h],
        "learning_rates": [r.lr for r in h],
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "final_train_loss": result.final_train_loss,
        "final_val_loss": result.final_val_loss,
        "grad_norms": [r.grad_norm for r in h],
        "stopped_reason": result.stopped_reason,
        "epochs_run": len(h),
        "seconds": result.seconds,
        "metrics": result.metrics,
        "history": [r.to_dict() for r in h],
    }
    if any(r.val_f1 is not None for r in h):
        out["val_f1"] = [r.val_f1 for r in h]
    if test_metrics is not None:
        out["test_metrics"] = test_metrics
    return out


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_jsonable(obj), indent=2))


def _jsonable(obj: Any) -> Any:
    """numpy scalars -> Python; non-finite floats -> None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
