"""Long series: a sweep's driver memory, first progress line and per-fold preparation at
4k to 2M bars.

    python benchmarks/scale.py                          # 4k, 40k, 400k and 2M one-minute bars
    python benchmarks/scale.py --sizes 4000 400000

For each size: ``trainables.bars.synthetic.make_bars(n, freq="1min")`` written to Parquet once
(not timed), then

* **the command**: ``python -m orchestrator.tune --data bars.parquet --smoke-test --trials 1
  --no-dashboard`` as a user runs it. Its driver's resident memory is sampled every 20 ms
  (the driver process only: Ray's processes and the trial's are others); the time from the
  command's start to its first trial line and to its first progress line (``samples/s``,
  printed once a fold has run 5 s); then Ctrl-C, which stops the sweep cleanly.
  ``B/bar`` = (peak - the 4k run's peak) / (bars - 4,000): what each bar costs the driver,
  beside the 48 bytes of a bar's own numbers (five float64 columns and the time).
* **per-fold preparation**, in this process, on the same sweep arrays: a trial's fold
  (``prepare_fold_for(..., only_rows_read=True)``: the rows the fold reads) against the
  full-length arrays every fold built before (``only_rows_read=False``), for walk-forward
  fold 0 (a third of the rows) and the last fold; the median of 3, and the MB built.

Goals (issue #23): the driver's peak at most ~4 copies of the bars' numbers (~192 B/bar);
at 2M bars the first progress line within 60 s of the command's start, on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.sweep.prepare import prepare_sweep_data  # noqa: E402
from orchestrator.sweep.spaces import load_space  # noqa: E402
from orchestrator.sweep.spec import SweepSpec, base_config, longest_sequence  # noqa: E402
from trainables.bars.synthetic import make_bars  # noqa: E402
from trainables.prep.dataset import prepare_fold_for  # noqa: E402


def run_command(path: Path, results: Path) -> dict:
    """The sweep on ``path``: driver peak RSS, first trial / progress line; then Ctrl-C."""
    cmd = [sys.executable, "-u", "-m", "orchestrator.tune", "--data", str(path), "--smoke-test"]
    cmd += ["--trials", "1", "--no-dashboard", "--results-dir", str(results)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    start = time.time()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak, done = [0], threading.Event()

    def sample() -> None:
        driver = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak[0] = max(peak[0], driver.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    out = {"first trial line": None, "first progress line": None, "line": ""}
    for line in proc.stdout:
        now = time.time() - start
        if line.startswith("[") and " trial " in line and out["first trial line"] is None:
            out["first trial line"] = now
        if "samples/s" in line and out["first progress line"] is None:
            out["first progress line"], out["line"] = now, line.strip()
            proc.send_signal(signal.SIGINT)  # seen what we came for: stop the sweep cleanly
    proc.wait()
    done.set()
    out["peak_mb"] = peak[0] / 1e6
    out["seconds"] = time.time() - start
    return out


def fold_prep(path: Path) -> dict:
    """Median seconds and MB of building fold 0 and the last fold, both ways."""
    spec = SweepSpec(space="smoke", folds=2, epochs=2, data=str(path))
    space = load_space("smoke")
    base = base_config(spec, space)
    data = prepare_sweep_data(
        base,
        data=str(path),
        ticker=None,
        cv="walk-forward",
        n_splits=2,
        sequence_length_max=longest_sequence(space, base),
    )
    cfg = base.replace(sequence_length=longest_sequence(space, base))
    out = {}
    for k in (0, len(data.folds) - 1):
        for only in (True, False):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                fold = prepare_fold_for(
                    cfg, data.frame(), data.targets, *data.folds[k], only_rows_read=only
                )
                times.append(time.perf_counter() - t)
            arrays = (fold.x, fold.y, fold.y_now, fold.y_raw, fold.now_raw)
            built = sum(a.nbytes for a in arrays if a is not None) / 1e6
            out[(k, only)] = (statistics.median(times), built)
    return out


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4000, 40_000, 400_000, 2_000_000])
    args = p.parse_args()
    print(f"load {load()}; sizes {args.sizes}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            t = time.perf_counter()
            path = Path(tmp) / f"bars_{n}.parquet"
            make_bars(n, freq="1min").to_parquet(path)
            made = time.perf_counter() - t
            run = run_command(path, Path(tmp) / f"results_{n}")
            prep = fold_prep(path)
            rows.append((n, run, prep))
            print(
                f"  {n:>9,} bars (made in {made:.0f} s): driver peak {run['peak_mb']:.0f} MB, "
                f"first trial line {fmt(run['first trial line'])} s, first progress line "
                f"{fmt(run['first progress line'])} s",
                flush=True,
            )
            if run["line"]:
                print(f"            {run['line']}")
    small = rows[0]
    print(
        "\n     bars  peak MB   B/bar  copies of 48 B  first trial s  first progress s"
        "  fold 0 prep s (MB)  before s (MB)  last fold prep s (MB)  before s (MB)"
    )
    for n, run, prep in rows:
        per_bar = (
            (run["peak_mb"] - small[1]["peak_mb"]) * 1e6 / (n - small[0]) if n > small[0] else None
        )
        k_last = max(k for k, _ in prep)
        cells = [
            f"{n:>9,}",
            f"{run['peak_mb']:8.0f}",
            f"{'-' if per_bar is None else f'{per_bar:.0f}':>7}",
            f"{'-' if per_bar is None else f'{per_bar / 48:.1f}':>15}",
            f"{fmt(run['first trial line']):>14}",
            f"{fmt(run['first progress line']):>17}",
        ]
        for k in (0, k_last):
            for only in (True, False):
                secs, mb = prep[(k, only)]
                cells.append(f"{f'{secs:.3f} ({mb:.0f})':>14}")
        print(" ".join(cells))
    print(f"load {load()}")


if __name__ == "__main__":
    main()
