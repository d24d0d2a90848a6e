"""What a GRU costs against an LSTM on this machine's CPU, in the regime a sweep's trials run.

    python benchmarks/cell_speed.py              # ~1 min: one thread, batch 32, the cpu space's sizes
    python benchmarks/cell_speed.py --threads 2

Two measures, each cell beside the other in the same run, alternating:
  * one training step of the bare recurrent layer (forward, then backward from the last
    step's output), milliseconds, median of rounds;
  * a whole fit of the product's trainer (``trainables.training.trainer.fit``) on a fold of
    the built-in bars, the cpu space's fixed settings (one layer, batch 32, 4 epochs, no
    early stop), seconds.
torch trains an LSTM on the CPU with oneDNN's fused kernel and a GRU as a chain of small ops
per time step, so on a CPU the GRU (3 gates to the LSTM's 4) is the slower one. The ratio
decides what the ``cpu`` search space samples (search_spaces/cpu.yaml).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.folds import make_fold  # noqa: E402
from trainables.bars.synthetic import make_bars  # noqa: E402
from trainables.parameters.train_config import TrainConfig  # noqa: E402
from trainables.training.trainer import fit  # noqa: E402


def step_ms(cell: str, window: int, hidden: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(2, hidden, batch_first=True)
    x = torch.randn(batch, window, 2)

    def one() -> None:
        out, _ = rnn(x)
        out[:, -1].sum().backward()

    for _ in range(10):
        one()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - start) / steps * 1e3


def fit_seconds(cell: str, window: int, hidden: int, bars) -> float:
    cfg = TrainConfig(
        cell=cell,
        hidden_size=hidden,
        num_layers=1,
        sequence_length=window,
        batch_size=32,
        epochs=4,
        patience=0,
        learning_rate=3e-3,
    )
    fold = make_fold(cfg, bars).fold
    start = time.perf_counter()
    fit(cfg, fold, log=None)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=100, help="steps per round of the step timing")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with open("/proc/loadavg") as f:
        print(f"load {' '.join(f.read().split()[:3])}; {args.threads} thread(s), batch 32")
    bars = make_bars(4000)
    print(
        f"{'window':>6} {'hidden':>6} {'step lstm':>10} {'step gru':>9} {'gru/lstm':>8}"
        f" {'fit lstm':>9} {'fit gru':>8} {'gru/lstm':>8}"
    )
    fit_ratios = []
    for window in (10, 20, 40):
        for hidden in (32, 64):
            steps = {"lstm": [], "gru": []}
            fits = {"lstm": [], "gru": []}
            for _ in range(args.rounds):
                for cell in ("lstm", "gru"):
                    steps[cell].append(step_ms(cell, window, hidden, 32, args.steps))
            for cell in ("lstm", "gru"):
                fits[cell].append(fit_seconds(cell, window, hidden, bars))
            s = {c: statistics.median(v) for c, v in steps.items()}
            f = {c: statistics.median(v) for c, v in fits.items()}
            fit_ratios.append(f["gru"] / f["lstm"])
            print(
                f"{window:>6} {hidden:>6} {s['lstm']:>8.2f}ms {s['gru']:>7.2f}ms"
                f" {s['gru'] / s['lstm']:>7.2f}x {f['lstm']:>8.2f}s {f['gru']:>7.2f}s"
                f" {f['gru'] / f['lstm']:>7.2f}x"
            )
    print(f"a GRU fit takes {min(fit_ratios):.2f}x-{max(fit_ratios):.2f}x an LSTM fit's time")
    with open("/proc/loadavg") as f:
        print(f"load {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
