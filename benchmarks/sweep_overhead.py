"""Per-trial overhead of a sweep: what Ray Tune + the fold loop add on top of training.

    python benchmarks/sweep_overhead.py            # 50 trials, 2 folds, 1 epoch each
    python benchmarks/sweep_overhead.py --trials 20

overhead per trial = (sweep wall time - summed in-trial training time / concurrency) / trials

The baseline, in the same run, trains the very same configs one after another in this
process with no Ray at all (the same folds, the same trainer): the ratio of the sweep's wall
time to the baseline's shows what the orchestration costs or saves. Target: <= 0.5 s/trial.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
import ray
import torch

from orchestrator.sweep.prepare import prepare_sweep_data
from orchestrator.sweep.run import SweepSpec, base_config, longest_sequence, run_sweep
from orchestrator.sweep.spaces import load_space
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import prepare_fold_for
from trainables.training.trainer import fit


def sequential_baseline(spec: SweepSpec, board: pd.DataFrame) -> float:
    """Train the sweep's completed configs in this process, one by one: seconds taken."""
    space = load_space(spec.space)
    base = base_config(spec, space)
    data = prepare_sweep_data(
        base,
        data=None,
        ticker=None,
        cv=spec.cv,
        n_splits=spec.folds,
        sequence_length_max=longest_sequence(space, base),
        n_bars=spec.n_bars,
        data_seed=spec.seed,
    )
    params = [c for c in board.columns if c.startswith("param_")]
    torch.set_num_threads(1)
    start = time.perf_counter()
    for _, row in board.iterrows():
        cfg = TrainConfig.from_dict(
            {**base.to_dict(), **{c.removeprefix("param_"): row[c] for c in params}}
        )
        for fit_idx, stop_idx, eval_idx in data.folds:
            fold = prepare_fold_for(cfg, data.frame(), data.targets, fit_idx, stop_idx, eval_idx)
            fit(cfg, fold, log=None)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = SweepSpec(
            space="smoke",
            trials=args.trials,
            folds=2,
            epochs=1,
            n_bars=1000,
            scheduler="none",
            max_concurrent=args.concurrency,
            num_cpus=args.concurrency,
            dashboard=False,
            results_dir=tmp,
            name="overhead",
        )
        t0 = time.perf_counter()
        ray.init(num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            out = run_sweep(spec, log=lambda *_: None)
        finally:
            ray.shutdown()
        import json

        wall = json.loads((out.out_dir / "sweep.json").read_text())["wall_seconds"]
        board = out.leaderboard
        trained = float(board.train_seconds.sum())
        n = len(board)
        overhead = (wall - trained / args.concurrency) / n
        baseline = sequential_baseline(spec, board)
    print(
        f"trials: {n} ({(board.status == 'completed').sum()} completed), 2 folds x 1 epoch, "
        f"concurrency {args.concurrency}"
    )
    print(f"Ray start-up (once):                 {ray_start:8.2f} s")
    print(f"sweep wall time (Tune, all trials):  {wall:8.2f} s")
    print(f"summed in-trial training time:       {trained:8.2f} s")
    print(f"per-trial overhead:                  {overhead:8.3f} s   (target <= 0.5 s)")
    print(f"baseline, same configs in-process:   {baseline:8.2f} s (sequential, no Ray)")
    print(f"ratio sweep wall / baseline:         {wall / baseline:8.2f}x")


if __name__ == "__main__":
    main()
