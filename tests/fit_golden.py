"""Golden outputs of ``fit``: fixed-seed runs on the built-in bars, kept as .npz files.

    python -m tests.fit_golden            # rewrite tests/golden/fit_*.npz from this code
    python -m tests.fit_golden gru        # only the named case(s)

Regenerate only in a commit that explains why the trainer's numbers changed;
tests/test_fit_golden.py compares every run with its file. Each case trains a 2-layer net
with dropout on the CPU (one thread: oneDNN's results depend on the thread count) for a few
epochs, on a train / early-stopping / evaluation split of ``make_bars``. Kept: the final
weights, the predictions of the evaluation anchors, each epoch's losses, learning rate and
gradient norm, and the fold's inputs (so a change of the data pipeline is told apart from a
change of the trainer).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tests.folds import make_fold
from trainables.config import TrainConfig
from trainables.dataset import FoldData
from trainables.synthetic import make_bars
from trainables.trainer import FitResult, fit

GOLDEN_DIR = Path(__file__).parent / "golden"
F_COLS = ("open", "high", "low", "close", "volume", "log_return")
SEQ_LEN = 12

_COMMON = dict(
    f_cols=F_COLS,
    sequence_length=SEQ_LEN,
    hidden_size=16,
    num_layers=2,
    epochs=4,
    batch_size=64,
    patience=0,
    device="cpu",
    amp="off",
    seed=3,
)

# name -> (task, horizon, threshold, config settings)
CASES: dict[str, tuple[str, int, float, dict]] = {
    # Regression, LSTM, cosine with warmup, MSE, AdamW, residual head.
    "lstm": ("regression", 1, 0.001, dict(cell="lstm", dropout=0.2, warmup_epochs=1)),
    # Classification, GRU, per-batch one-cycle LR, focal loss, balanced class weights, SGD.
    "gru": (
        "classification",
        3,
        0.003,
        dict(
            cell="gru",
            dropout=0.3,
            task="classification",
            horizon=3,
            threshold=0.003,
            scheduler="onecycle",
            learning_rate=3e-3,
            loss="focal",
            class_weights="balanced",
            optimizer="sgd",
        ),
    ),
}


def case_fold(name: str) -> FoldData:
    """The case's fold: 1,200 built-in bars, train / early-stopping / evaluation anchors."""
    task, horizon, threshold, _ = CASES[name]
    cfg = replace(case_config(name), task=task, horizon=horizon, threshold=threshold)
    return make_fold(cfg, make_bars(1200, seed=0), test_as_eval=True).fold


def case_config(name: str) -> TrainConfig:
    return TrainConfig(**{**_COMMON, **CASES[name][3]})


def run_case(name: str) -> tuple[FoldData, FitResult]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fold = case_fold(name)
        return fold, fit(case_config(name), fold, log=None)
    finally:
        torch.set_num_threads(threads)


def arrays(fold: FoldData, result: FitResult) -> dict[str, np.ndarray]:
    """What a golden file holds: ``w/<param>`` weights, predictions, history, fold inputs."""
    out = {f"w/{k}": v.numpy() for k, v in result.model.state_dict().items()}
    out["predictions"] = result.predictions
    for key in ("train_loss", "val_loss", "lr", "grad_norm"):
        out[f"history/{key}"] = np.array([getattr(r, key) for r in result.history])
    out["best_epoch"] = np.array(result.best_epoch)
    out["fold/x"], out["fold/y"] = fold.x, fold.y
    out["fold/anchors"] = np.concatenate([fold.train_idx, fold.stop_idx, fold.eval_idx])
    return out


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"fit_{name}.npz"


def platform() -> str:
    """Where exact equality is expected: the same torch build and CPU instruction set."""
    return f"torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}"


def main(names: list[str]) -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name in names or CASES:
        saved = arrays(*run_case(name))
        np.savez(golden_path(name), platform=np.array(platform()), **saved)
        print(f"wrote {golden_path(name)} ({len(saved)} arrays, {platform()})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
