"""One universe command against one command per ticker: the wall time of the same sweeps.

    python benchmarks/universe.py                        # 8 tickers x --space smoke --trials 4
    python benchmarks/universe.py --tickers 8 --trials 4 --max-concurrent 2 --bars 4000

Both sides sweep the same tickers (``trainables.bars.synthetic.make_universe``, one Parquet file)
with the same space, trials, folds and ``--max-concurrent``, and each ticker with the same
seed (a universe derives each ticker's seed from its own ``--seed`` and the ticker; the
single-ticker commands are given that seed), so they sample the same configs:

* **universe**: ``python -m orchestrator.tune --data F --tickers all ...``, one command;
* **singles**: ``python -m orchestrator.tune --data F --ticker SYN<k> --seed <its seed> ...``,
  one command per ticker, one after another (what users do today in a shell loop).

It prints each command's wall time, the sum for the singles and the ratio universe /
singles (the issue's bar: <= 0.5 on a 2-core machine), with the load average before and
after each side: run it on a quiet machine, or say the load beside the figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.records.tickers import ticker_seed
from trainables.bars.synthetic import make_universe, ticker_names

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The 1, 5 and 15 minute load averages (this machine is shared: say them)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tickers", type=int, default=8)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--bars", type=int, default=4000)
    p.add_argument("--space", default="smoke")
    p.add_argument("--max-concurrent", type=int, default=2)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="universe-bench-"))
    data = root / "universe.parquet"
    make_universe(args.tickers, args.bars, seed=args.seed).to_parquet(data, index=False)
    common = [
        sys.executable, "-m", "orchestrator.tune", "--data", str(data), "--space", args.space,
        "--trials", str(args.trials), "--max-concurrent", str(args.max_concurrent),
        "--num-cpus", str(args.num_cpus), "--no-dashboard", "--results-dir", str(root / "results"),
    ]  # fmt: skip
    print(f"{args.tickers} tickers x {args.bars:,} bars, --space {args.space} --trials "
          f"{args.trials} --max-concurrent {args.max_concurrent}, {os.cpu_count()} cores")  # fmt: skip
    print(f"universe: load before {load()}")
    universe = run([*common, "--tickers", "all", "--seed", str(args.seed), "--name", "u"])
    print(f"universe: {universe:.1f} s (load after {load()})")
    singles = []
    for ticker in ticker_names(args.tickers):
        seed = ticker_seed(args.seed, ticker)
        singles.append(run([*common, "--ticker", ticker, "--seed", str(seed), "--name", ticker]))
        print(f"single {ticker}: {singles[-1]:.1f} s (load {load()})")
    total = sum(singles)
    print(f"singles: {total:.1f} s in all ({total / len(singles):.1f} s a command)")
    print(f"ratio universe / singles: {universe / total:.2f}")


if __name__ == "__main__":
    main()
