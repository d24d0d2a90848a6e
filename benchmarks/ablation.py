"""Why the tuned LSTM lost to ridge, one change at a time, on the sweep's own CV folds.

Every row trains one configuration on the built-in data's walk-forward folds exactly as a
sweep trial does (``prepare_sweep_data`` folds cut at the longest window, the fold's scaler
fit on its training rows, early stopping on the inner block, the restored best epoch
scored once on the fold's evaluation anchors) and scores it with the sweep's objective
(``mse_ratio`` pooled over folds; ``skill = 1 - mse_ratio`` against the naive forecast).
Beside it: ridge on the same folds, the same anchors and the same target, reading the same
inputs in the same windows (its alpha picked on each fold's inner block, never on the
rows it is scored on). Nothing here reads the test part.

Rows come in two blocks:

* ``today``: today's default (the ``cpu`` space's middle: close target, OHLCV + log return,
  min-max scaling, MSE, 32 units, 20-bar windows, batch 128) and one change from it per row;
* ``new``: the default this ablation chose and one change back (or further) per row, so each
  kept choice shows what it is worth on its own.

Every figure is the mean over data seeds x model seeds with its standard error across data
seeds (the seeds' means), and ``gap`` is skill minus ridge's skill on the same folds (> 0:
the LSTM beats ridge). Usage::

    python benchmarks/ablation.py                  # both blocks, data seeds 0-2, 2 model seeds
    python benchmarks/ablation.py --block new --rows new,huber->mse
    python benchmarks/ablation.py --data-seeds 0 --model-seeds 0 --n-bars 4000   # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.stats.objective import running_objective  # noqa: E402
from orchestrator.sweep.prepare import SweepData, prepare_sweep_data  # noqa: E402
from orchestrator.sweep.trial import fold_score  # noqa: E402
from trainables.bars.synthetic import make_bars  # noqa: E402
from trainables.parameters.train_config import TrainConfig  # noqa: E402
from trainables.prep.dataset import FoldData, prepare_fold_for  # noqa: E402
from trainables.prep.naive import naive_forecast, residual_applies  # noqa: E402
from trainables.prep.windows import sliding_windows  # noqa: E402
from trainables.training.trainer import fit  # noqa: E402

OHLCV_R = ("open", "high", "low", "close", "volume", "log_return")
ALL_COLS = (*OHLCV_R, "volume_ratio", "log_volume", "hl_range", "volatility", "sma_gap")
SEQ_MAX = 40
RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)

# Today's default: the cpu space's fixed settings and the middle of each sampled range.
TODAY = dict(
    target_col="close",
    f_cols=OHLCV_R,
    scaler="minmax",
    residual=True,
    loss="auto",
    cell="lstm",
    hidden_size=32,
    num_layers=1,
    dropout=0.1,
    sequence_length=20,
    learning_rate=3e-3,
    weight_decay=1e-4,
    optimizer="adamw",
    scheduler="cosine",
    warmup_epochs=2,
    epochs=20,
    patience=5,
    min_delta=0.0,
    batch_size=128,
)
LR_INPUTS = ("log_return", "volume_ratio")
# The default this ablation chose (docs/parameters.md, "Where the defaults come from").
NEW = {
    **TODAY,
    "target_col": "log_return",
    "f_cols": LR_INPUTS,
    "scaler": "standard",
    "loss": "huber",
    "hidden_size": 64,
    "batch_size": 32,
}

ROWS = {
    "today": [
        ("today", {}),
        ("scaler standard", {"scaler": "standard"}),
        ("no residual (predict the level)", {"residual": False}),
        ("target log_return", {"target_col": "log_return"}),
        ("target log_return, standard", {"target_col": "log_return", "scaler": "standard"}),
        ("loss huber", {"loss": "huber"}),
        ("batch 32", {"batch_size": 32}),
        ("hidden 64", {"hidden_size": 64}),
        ("window 40", {"sequence_length": 40}),
        ("epochs 40, patience 8", {"epochs": 40, "patience": 8}),
        ("lr 1e-3", {"learning_rate": 1e-3}),
        ("scheduler none", {"scheduler": "none"}),
    ],
    "new": [
        ("new", {}),
        ("inputs OHLCV + log_return", {"f_cols": OHLCV_R}),
        ("inputs log_return only", {"f_cols": ("log_return",)}),
        ("inputs + log_volume, hl_range", {"f_cols": (*LR_INPUTS, "log_volume", "hl_range")}),
        ("scaler minmax", {"scaler": "minmax"}),
        ("loss mse", {"loss": "mse"}),
        ("batch 128", {"batch_size": 128}),
        ("hidden 32", {"hidden_size": 32}),
        ("window 40", {"sequence_length": 40}),
        ("2 layers, dropout 0.2", {"num_layers": 2, "dropout": 0.2}),
        ("gru", {"cell": "gru"}),
        ("lr 1e-3", {"learning_rate": 1e-3}),
        ("lr 1e-2", {"learning_rate": 1e-2}),
        ("epochs 40, patience 8", {"epochs": 40, "patience": 8}),
    ],
}
# Further single changes from the candidate, looked at before freezing the defaults.
ROWS["more"] = [
    ("new", {}),
    ("inputs + volatility", {"f_cols": (*LR_INPUTS, "volatility")}),
    ("inputs + sma_gap", {"f_cols": (*LR_INPUTS, "sma_gap")}),
    ("inputs + volatility, sma_gap", {"f_cols": (*LR_INPUTS, "volatility", "sma_gap")}),
    ("inputs + log_volume", {"f_cols": (*LR_INPUTS, "log_volume")}),
    ("window 10", {"sequence_length": 10}),
    ("dropout 0", {"dropout": 0.0}),
    ("batch 64", {"batch_size": 64}),
    ("weight decay 0", {"weight_decay": 0.0}),
    ("epochs 30, patience 8", {"epochs": 30, "patience": 8}),
]
BASES = {"today": TODAY, "new": NEW, "more": NEW}


def sweep_data(target: str, data_seed: int, n_bars: int, folds: int) -> SweepData:
    """The sweep's folds over the built-in data, for one target (every input column built)."""
    base = TrainConfig.from_dict({"f_cols": list(ALL_COLS), "target_col": target})
    bars = make_bars(n_bars, seed=data_seed)
    return prepare_sweep_data(
        base,
        data=None,
        ticker=None,
        cv="walk-forward",
        n_splits=folds,
        sequence_length_max=SEQ_MAX,
        bars=bars,
        source=f"built-in data (seed {data_seed})",
    )


def fold_of(cfg: TrainConfig, data: SweepData, k: int) -> FoldData:
    fit_idx, stop_idx, eval_idx = data.folds[k]
    return prepare_fold_for(cfg, data.frame(), data.targets, fit_idx, stop_idx, eval_idx)


def lstm_objective(cfg: TrainConfig, data: SweepData) -> float:
    folds = []
    for k in range(len(data.folds)):
        result = fit(cfg, fold_of(cfg, data, k), log=None)
        folds.append(fold_score(cfg.task, result.metrics))
    return running_objective(folds, cfg.task)


def ridge_objective(cfg: TrainConfig, data: SweepData) -> tuple[float, list[float]]:
    """Ridge on the row's inputs and windows, pooled like the sweep's objective; and the
    alpha each fold picked on its inner block."""
    folds, alphas = [], []
    for k in range(len(data.folds)):
        fold = fold_of(cfg, data, k)
        residual = residual_applies(fold.feature_names, fold.target_names)
        L = cfg.sequence_length
        win = sliding_windows(fold.x, L)

        def xs(idx, win=win, L=L):
            w = win[np.asarray(idx) - (L - 1)]
            return w.reshape(len(w), -1)

        def ys(idx, fold=fold, residual=residual):
            return fold.y[idx] - fold.y_now[idx] if residual else fold.y[idx]

        best, best_mse = None, math.inf
        for alpha in RIDGE_ALPHAS:
            m = Ridge(alpha=alpha).fit(xs(fold.train_idx), ys(fold.train_idx))
            mse = float(
                np.mean(
                    (m.predict(xs(fold.stop_idx)).reshape(-1, 1) - ys(fold.stop_idx).reshape(-1, 1))
                    ** 2
                )
            )
            if mse < best_mse:
                best, best_mse = alpha, mse
        alphas.append(best)
        m = Ridge(alpha=best).fit(xs(fold.train_idx), ys(fold.train_idx))
        ev = fold.eval_idx
        pred = m.predict(xs(ev)).reshape(len(ev), -1)
        if residual:
            pred = pred + fold.y_now[ev]
        pred = fold.scaler.inverse_transform(pred, fold.target_names)
        truth = fold.y_raw[ev]
        naive = naive_forecast(fold.target_names, fold.now_raw[ev], fold.train_mean())
        folds.append(
            {
                "mse_by_target": list(np.mean((pred - truth) ** 2, axis=0)),
                "naive_mse_by_target": list(np.mean((naive - truth) ** 2, axis=0)),
            }
        )
    return running_objective(folds, cfg.task), alphas


def load() -> str:
    """The machine's 1/5/15-minute load (it is shared: read the figures beside it)."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def config_of(block: str, change: dict, model_seed: int) -> TrainConfig:
    values = {**BASES[block], **change, "seed": model_seed}
    values["f_cols"] = list(values["f_cols"])
    return TrainConfig.from_dict(values)


def mean_se(by_seed: list[list[float]]) -> tuple[float, float]:
    """Mean over everything, and the standard error of the data seeds' means."""
    flat = [v for s in by_seed for v in s]
    seed_means = [float(np.mean(s)) for s in by_seed]
    se = (
        float(np.std(seed_means, ddof=1) / math.sqrt(len(seed_means)))
        if len(seed_means) > 1
        else math.nan
    )
    return float(np.mean(flat)), se


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--block", choices=["today", "new", "more", "both"], default="both")
    p.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    p.add_argument("--data-seeds", default="0,1,2")
    p.add_argument("--model-seeds", default="0,1")
    p.add_argument("--n-bars", type=int, default=4000)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jsonl", default=None, help="append each row's figures to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Ridge on the wider windows is ill-conditioned at the smallest alphas; it picks a larger one.
    warnings.filterwarnings("ignore", message="Ill-conditioned matrix")
    data_seeds = [int(s) for s in args.data_seeds.split(",")]
    model_seeds = [int(s) for s in args.model_seeds.split(",")]
    wanted = None if args.rows is None else {r.strip() for r in args.rows.split(",")}
    blocks = ["today", "new"] if args.block == "both" else [args.block]
    print(
        f"load {load()}; n_bars {args.n_bars}, "
        f"{args.folds} walk-forward folds, data seeds {data_seeds}, model seeds {model_seeds}"
    )
    data = {}
    start = time.perf_counter()
    for block in blocks:
        print(f"\n{block}: {'row':<36} {'skill':>15} {'ridge':>15} {'gap':>15}")
        for name, change in ROWS[block]:
            if wanted is not None and name not in wanted:
                continue
            skills, ridges, gaps = [], [], []
            for ds in data_seeds:
                s_seed, r_seed, g_seed = [], [], []
                for ms in model_seeds:
                    cfg = config_of(block, change, ms)
                    key = (cfg.target_col, ds)
                    if key not in data:
                        data[key] = sweep_data(cfg.target_col, ds, args.n_bars, args.folds)
                    with threadpool_limits(limits=1):
                        ridge, _ = ridge_objective(cfg, data[key])
                    skill = 1 - lstm_objective(cfg, data[key])
                    s_seed.append(skill)
                    r_seed.append(1 - ridge)
                    g_seed.append(skill - (1 - ridge))
                skills.append(s_seed)
                ridges.append(r_seed)
                gaps.append(g_seed)
            (s, s_se), (r, r_se), (g, g_se) = mean_se(skills), mean_se(ridges), mean_se(gaps)
            print(
                f"{'':6}{name:<36} {s:+.3f} ± {s_se:.3f} {r:+.3f} ± {r_se:.3f} "
                f"{g:+.3f} ± {g_se:.3f}",
                flush=True,
            )
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(
                        json.dumps(
                            {
                                "block": block,
                                "row": name,
                                "n_bars": args.n_bars,
                                "skill": skills,
                                "ridge": ridges,
                            }
                        )
                        + "\n"
                    )
    print(f"\n{time.perf_counter() - start:.0f} s; load {load()}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
