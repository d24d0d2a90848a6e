"""What early stopping of trials saves: ASHA vs. no scheduler, same seed, same trials.

    python benchmarks/pruning.py                 # quick space, 30 trials x 5 folds, 10 epochs
    python benchmarks/pruning.py --concurrency 1 # one trial at a time: the same figures every run
    python benchmarks/pruning.py --trials 50 --race 0   # plain ASHA, without the fold race

Prints trial-epochs (epochs trained, summed over every fold of every trial) and the best CV
objective of each run, and their ratios. Target: >= 3x fewer trial-epochs with ASHA at a best
objective within 2% of the unpruned sweep's.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray

from orchestrator.sweep.run import SweepSpec, run_sweep


def one(scheduler: str, args, tmp: str):
    spec = SweepSpec(
        space=args.space,
        trials=args.trials,
        folds=args.folds,
        epochs=args.epochs,
        n_bars=args.bars,
        scheduler=scheduler,
        asha_eta=args.eta,
        asha_grace=args.grace,
        race_margin=args.race,
        seed=args.seed,
        max_concurrent=args.concurrency,
        num_cpus=args.concurrency,
        dashboard=False,
        results_dir=tmp,
        name=f"prune-{scheduler}",
    )
    start = time.perf_counter()
    board = run_sweep(spec, log=lambda *_: None).leaderboard
    ranked = board[board["rank"].notna()]
    return {
        "trial_epochs": int(board.epochs_run.sum()),
        "folds": int(board.folds_done.sum()),
        "best": float(ranked.objective.min()),
        "pruned": int((board.status == "pruned").sum()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--bars", type=int, default=3000)
    p.add_argument("--space", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument(
        "--grace",
        type=float,
        default=SweepSpec.asha_grace,
        help="ASHA first rung in folds (default: the sweep's)",
    )
    p.add_argument(
        "--eta",
        type=float,
        default=SweepSpec.asha_eta,
        help="ASHA reduction factor (default: the sweep's)",
    )
    p.add_argument(
        "--race",
        type=float,
        default=SweepSpec.race_margin,
        help="fold race margin, relative; 0 = plain ASHA (default: the sweep's)",
    )
    args = p.parse_args()
    ray.init(num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            none = one("none", args, tmp)
            asha = one("asha", args, tmp)
    finally:
        ray.shutdown()
    print(
        f"{args.trials} trials x {args.folds} folds, space {args.space}, seed {args.seed}, "
        f"ASHA eta {args.eta:g}, grace {args.grace:g} fold(s), race margin {args.race:g}, "
        f"{args.concurrency} trial(s) at a time"
    )
    print(f"{'':22}{'none':>12}{'asha':>12}{'ratio':>10}")
    print(
        f"{'trial-epochs':22}{none['trial_epochs']:>12}{asha['trial_epochs']:>12}"
        f"{none['trial_epochs'] / asha['trial_epochs']:>9.2f}x  (target >= 3x)"
    )
    print(
        f"{'folds trained':22}{none['folds']:>12}{asha['folds']:>12}"
        f"{none['folds'] / asha['folds']:>9.2f}x"
    )
    print(f"{'trials pruned':22}{none['pruned']:>12}{asha['pruned']:>12}")
    print(
        f"{'best CV objective':22}{none['best']:>12.5g}{asha['best']:>12.5g}"
        f"{asha['best'] / none['best']:>9.3f}   (target <= 1.02)"
    )
    print(
        f"{'wall seconds':22}{none['seconds']:>12.1f}{asha['seconds']:>12.1f}"
        f"{none['seconds'] / asha['seconds']:>9.2f}x"
    )


if __name__ == "__main__":
    main()
