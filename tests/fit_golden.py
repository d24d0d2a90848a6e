"""Golden outputs of ``fit``: fixed-seed runs on the built-in bars, kept as .npz files.

    python -m tests.fit_golden            # rewrite tests/golden/fit_*.npz from this code
    python -m tests.fit_golden gru        # only the named case(s)

Regenerate only in a commit that explains why the trainer's numbers changed;
tests/training/test_fit_golden.py compares every run with its file. Each case trains a 2-layer net
with dropout on the CPU (one thread: oneDNN's results depend on the thread count) for a few
epochs, on a train / early-stopping / evaluation split of ``make_bars``. Kept: the final
weights, the predictions of the evaluation anchors, each epoch's losses, learning rate and
gradient norm, and the fold's inputs (so a change of the data pipeline is told apart from a
change of the trainer).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tests.folds import make_fold
from trainables.bars.synthetic import make_bars
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.training.trainer import FitResult, fit

GOLDEN_DIR = Path(__file__).parent / "golden"
F_COLS = ("open", "high", "low", "close", "volume", "log_return")
SEQ_LEN = 12

_COMMON = dict(
    f_cols=F_COLS,
    # The data settings the goldens were recorded with, written out so that a change of
    # TrainConfig's defaults (issue #19) does not move what these fits guard: the trainer.
    target_col="close",
    scaler="minmax",
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
    "lstm": ("regression", 1, 0.001, dict(cell="lstm", dropout=0.2, warmup_epochs=1, loss="mse")),
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


# How far a golden number may move without a behaviour change, relative to the largest
# magnitude in its array (a weight matrix, the predictions, a loss curve). Chosen from
# measurements (docs/architecture.md, "Golden outputs"): two machines of the same kind
# (same torch build, same AVX512 capability) differed by at most 3e-7 of an array's scale;
# the smallest deliberate change tried, the learning rate times 1.0001, moves some array by
# 1.1e-4 (gru) and 1.8e-4 (lstm) of its scale. 1e-5 sits 30x above the noise and 10x below it.
GOLDEN_RTOL = 1e-5


def assert_near_golden(got, want, what: str) -> None:
    """``got`` equals ``want`` within GOLDEN_RTOL of ``want``'s largest magnitude."""
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, golden {want.shape}"
    scale = float(np.nanmax(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(
        got, want, rtol=0, atol=GOLDEN_RTOL * scale + 1e-300, equal_nan=True, err_msg=what
    )


def platform() -> str:
    """Where bit-for-bit equality is expected: everything known to pick a kernel or change an
    order of summation (torch and NumPy builds, the CPU's model, stepping, flags and cache
    size, the thread count these runs use). Two machines that differ in any of these may
    round differently; two that agree are expected, not proven, to give the same bits."""
    info = _cpuinfo()
    flags = hashlib.sha1(info.get("flags", "").encode()).hexdigest()[:12]
    cpu = ", ".join(
        f"{key} {info.get(key, '?')}" for key in ("model name", "cpu family", "model", "stepping")
    )
    return (
        f"torch {torch.__version__}, numpy {np.__version__}, "
        f"cpu {torch.backends.cpu.get_cpu_capability()}, {cpu}, "
        f"cache {info.get('cache size', '?')}, flags {flags}, threads 1, "
        f"OMP_NUM_THREADS {os.environ.get('OMP_NUM_THREADS', '-')}"
    )


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def main(names: list[str]) -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name in names or CASES:
        saved = arrays(*run_case(name))
        np.savez(golden_path(name), platform=np.array(platform()), **saved)
        print(f"wrote {golden_path(name)} ({len(saved)} arrays, {platform()})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
