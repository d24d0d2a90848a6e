"""What a universe costs per ticker and per trial, for docs/scaling.md's 500-ticker estimate.

    python benchmarks/universe_scale.py --tickers 20 --trials 3
    python benchmarks/universe_scale.py --tickers 50 --trials 2 --bars 2000

Runs one universe in this process (``run_universe``, a local Ray of ``--num-cpus``) on
``make_universe`` bars and prints what grows with the tickers and the trials:

* the driver's memory: its peak resident size (sampled every 0.2 s) minus the size before
  the universe started, per ticker;
* the object store: each ticker's ``SweepData`` as stored (``ray.put`` once per ticker);
* Tune's experiment state: its JSON file (every trial's state) and the searcher's pickle
  (the open tickers' studies only), which Tune writes after every fold checkpoint, and how
  long one snapshot of each takes to write;
* MLflow: the store's size and the driver's time logging one trial's run;
* the universe's wall time, the time before the first trial, and the trials per minute.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import threading
import time
from pathlib import Path

import psutil
import ray

from orchestrator.sweep.spec import SweepSpec
from orchestrator.universe.run import run_universe
from trainables.bars.synthetic import make_universe


class PeakRSS:
    """The process's peak resident set size while the ``with`` block runs."""

    def __enter__(self) -> PeakRSS:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _size(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tickers", type=int, default=20)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--bars", type=int, default=2000)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--space", default="smoke")
    p.add_argument("--num-cpus", type=int, default=2)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="universe-scale-"))
    data = root / "u.parquet"
    make_universe(args.tickers, args.bars).to_parquet(data, index=False)
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    spec = SweepSpec(
        data=str(data),
        tickers="all",
        space=args.space,
        trials=args.trials,
        folds=args.folds,
        epochs=2,
        num_cpus=args.num_cpus,
        dashboard=False,
        results_dir=str(root / "results"),
        name="scale",
    )
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    with PeakRSS() as rss:
        out = run_universe(spec, log=lambda text: lines.append((time.perf_counter() - start, text)))
    wall = time.perf_counter() - start
    first = next((t for t, text in lines if " fold 1/" in text), float("nan"))
    ray.shutdown()
    report(args, out.out_dir, root, wall, first, rss)


def report(args, u: Path, root: Path, wall: float, first: float, rss: PeakRSS) -> None:
    from orchestrator.tracking.sweep_runs import SweepTracker

    n, trials = args.tickers, args.tickers * args.trials
    tune = u / "tune"
    state = sorted(tune.glob("experiment_state-*.json"))
    searcher = sorted(tune.glob("searcher-state-*.pkl"))
    print(
        f"{n} tickers x {args.trials} trials ({trials} trials), {args.bars:,} bars, {args.folds} folds, {os.cpu_count()} cores, load {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    print(
        f"wall {wall:.0f} s; first fold finished at {first:.0f} s; {trials / (wall / 60):.1f} trials/min"
    )
    print(
        f"driver peak RSS {rss.peak / 2**20:.0f} MiB, {(rss.peak - rss.start) / 2**20 / n:.2f} MiB per ticker above the start ({rss.start / 2**20:.0f} MiB)"
    )
    data = pickle.dumps(_one_ticker_data(args))
    print(
        f"object store: {len(data) / 2**20:.2f} MiB per ticker ({args.bars:,} bars; x {n} = {len(data) * n / 2**20:.1f} MiB)"
    )
    print(
        f"experiment state: {_size(state) / 2**10:.0f} KiB ({_size(state) / trials / 2**10:.2f} KiB per trial), searcher state {_size(searcher) / 2**10:.1f} KiB"
    )
    t0 = time.perf_counter()
    for _ in range(20):
        (root / "copy.json").write_bytes(state[0].read_bytes())
    print(f"one experiment-state write: {(time.perf_counter() - t0) / 20 * 1000:.1f} ms")
    db = root / "results" / "mlflow.db"
    print(
        f"optuna.db {_size([u / 'optuna.db']) / 2**10:.0f} KiB; mlflow.db {_size([db]) / 2**10:.0f} KiB ({_size([db]) / trials / 2**10:.1f} KiB per trial)"
    )
    uri = f"sqlite:///{db}"
    with SweepTracker(uri, experiment="bench", run_name="timing", params={}, log=print) as tracker:
        t0 = time.perf_counter()
        for k in range(20):
            tracker.log_trial(
                f"t{k}",
                params={"a": 1},
                fold_metrics=[{"mse": 1.0}] * args.folds,
                summary={"mse_ratio": 1.0},
                status="completed",
            )
        print(f"MLflow: {(time.perf_counter() - t0) / 20 * 1000:.0f} ms per trial's run (sqlite)")


def _one_ticker_data(args):
    from orchestrator.sweep.prepare import prepare_sweep_data
    from orchestrator.sweep.spaces import load_space
    from orchestrator.sweep.spec import base_config, longest_sequence
    from trainables.bars.synthetic import make_bars

    spec = SweepSpec(space=args.space, folds=args.folds)
    space = load_space(args.space)
    base = base_config(spec, space)
    return prepare_sweep_data(
        base, data=None, ticker=None, cv="walk-forward", n_splits=args.folds,
        sequence_length_max=longest_sequence(space, base), bars=make_bars(args.bars),
    )  # fmt: skip


if __name__ == "__main__":
    main()
