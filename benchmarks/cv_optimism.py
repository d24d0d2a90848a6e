"""How optimistic is a CV score whose early stopping saw the scored rows? On a random walk.

On a pure random walk nothing beats the naive forecast (persistence of close): any positive
CV skill is selection bias. For a few seeds, the same configs (drawn at random from a search
space) are trained fold by fold on the same purged walk-forward folds in two ways and scored
with the sweep's objective (mse_ratio pooled over folds, skill = 1 - mse_ratio):

* before: early stopping on the fold's evaluation samples, then scored on them (the old
  behaviour: the best epoch is chosen on the rows the score is computed on);
* after: early stopping on the inner block cut from the fold's training part behind a purge
  gap (what sweeps do now); the evaluation samples are predicted once.

It prints, per seed, the best config's CV skill both ways, then the means and the ratio of
their optimism. Everything runs in this process (no Ray), with the product's own functions.

    python benchmarks/cv_optimism.py                 # 3 seeds x 6 configs x 4 folds
    python benchmarks/cv_optimism.py --seeds 5 --configs 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from orchestrator.stats.objective import running_objective
from orchestrator.sweep.prepare import prepare_sweep_data
from orchestrator.sweep.spaces import load_space, sample_configs
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import prepare_fold_for
from trainables.training.trainer import fit


def random_walk(n: int, seed: int) -> pd.DataFrame:
    """Hourly OHLCV bars whose log close is a Gaussian random walk (no signal at all)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.002, (2, n)))
    bars = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.lognormal(14, 0.3, n),
        },
        index=pd.date_range("2020-01-01", periods=n, freq="h", name="timestamp"),
    )
    return bars


def fold_records(cfg: TrainConfig, data, *, leaky: bool) -> list[dict]:
    records = []
    for fit_idx, stop, ev in data.folds:
        if leaky:  # the whole training part trains; early stopping on the scored rows
            purge = data.sequence_length_max + data.targets.horizon - 1
            train = np.arange(fit_idx.min(), ev.min() - purge)  # walk-forward's training part
            fold_args = (train, ev, ev)
        else:
            fold_args = (fit_idx, stop, ev)
        fold = prepare_fold_for(cfg, data.frame(), data.targets, *fold_args)
        result = fit(cfg, fold, log=None)
        records.append({k: result.metrics[k] for k in ("mse_by_target", "naive_mse_by_target")})
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--configs", type=int, default=6)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--bars", type=int, default=2000)
    p.add_argument("--space", default="quick")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    start = time.perf_counter()
    rows = []
    for seed in range(args.seeds):
        bars = random_walk(args.bars, seed)
        configs = sample_configs(space, args.configs, seed=seed)
        base = TrainConfig.from_dict(space.fixed)
        longest = max(int(c["sequence_length"]) for c in configs)
        data = prepare_sweep_data(
            base,
            data=None,
            ticker=None,
            cv="walk-forward",
            n_splits=args.folds,
            sequence_length_max=longest,
            bars=bars,
        )
        best = {}
        for leaky in (True, False):
            skills = []
            for params in configs:
                cfg = TrainConfig.from_dict({**space.fixed, **params})
                ratio = running_objective(fold_records(cfg, data, leaky=leaky), "regression")
                skills.append(1 - ratio)
            best["before" if leaky else "after"] = max(skills)
        rows.append({"seed": seed, **best})
        print(
            f"seed {seed}: best CV skill, early stopping on the scored rows {best['before']:+.4f}"
            f" | on the inner block {best['after']:+.4f}",
            flush=True,
        )
    frame = pd.DataFrame(rows)
    before, after = frame["before"].mean(), frame["after"].mean()
    print(
        f"random walk, {args.seeds} seeds x {args.configs} configs ({args.space} space) x "
        f"{args.folds} purged walk-forward folds, {args.bars} bars, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print(f"mean best CV skill before: {before:+.4f}  after: {after:+.4f}  (0 = no skill)")
    if after != 0:
        print(
            f"optimism before / after: {before / after:.1f}x"
            if after > 0
            else f"after: no positive skill on noise (before: {before:+.4f})"
        )


if __name__ == "__main__":
    main()
