"""Training throughput: the project's trainer against the users' current loop, in one process.

    python benchmarks/trainer_throughput.py          # both scenarios, ~2-3 min on 2 idle cores
    python benchmarks/trainer_throughput.py --quick  # ~30 s
    python benchmarks/trainer_throughput.py --scenario large --device cuda
    python benchmarks/trainer_throughput.py --against /tmp/old   # + an older trainer's fit
    python benchmarks/trainer_throughput.py --plain  # + our fit without the fast paths

Both sides train on the same synthetic bars (``trainables.bars.synthetic.make_bars``), the same
features, targets and scaled fold (``prepare_fold``) and an LSTM of the same size, with
Adam, MSE and gradient clipping at 1.0, and each epoch ends with a pass over the same
evaluation set. They differ in the loop:

* ours: ``trainables.training.trainer.fit`` itself: the scaled series goes to the device once and
  each batch is gathered from it by anchor indices (``gather_windows``); no per-sample
  Python, no worker processes.
* baseline, as the users' single-ticker trainer does it (docs/parameters.md, "The
  single-ticker trainer's files and loop"): a ``Dataset`` whose ``__getitem__``
  slices one window out of a numpy array and converts it to tensors, a
  ``DataLoader(batch_size=64, shuffle=True, num_workers=2)``, ``nn.LSTM`` + ``nn.Linear``.

Epochs are interleaved in rounds: each round runs one epoch of ``fit`` (in a child
process that waits in its ``on_epoch`` callback between rounds) and one baseline epoch in
this process, so each round sees the same load on a shared machine. The first round is a
warm-up. ``--against DIR`` adds a side: the ``fit`` of an older ``DIR/trainables`` (e.g.
``git archive <commit> trainables | tar -x -C DIR``), imported as ``trainables_old``;
``--plain`` one more: our ``fit`` with ``trainables.training.fast_paths`` switched off. The fits'
order reverses every round. Reported: per side, the median training samples/s (training
samples per second of whole-epoch wall time, evaluation pass included); the median of the
per-round ratios ours/baseline (the verdicts use it) and ours/old; the achieved GFLOP/s of
the LSTM and its share of a float32 matmul peak measured in the same run. LSTM FLOPs per training
sample, per layer ``l`` and direction:

    forward  = sequence_length * 2 * 4 * H * (F_l + H)      (the 4 gates' input + recurrent GEMMs;
                                                      F_0 = n_features, F_l = H * dirs)
    training = 3 * forward                           (backward ~ 2x forward: grads of the
                                                      inputs and of the weights)
    epoch    = n_train * training + n_eval * forward

Element-wise gate maths, dropout, the head and the optimizer are left out, so the share is
a lower bound on how busy the device is. Both sides have the same model size, so at equal
peak their share ratio equals their samples/s ratio. Targets (the issue): ours >= 2x the
baseline's samples/s at ``small``; at ``large`` our share of the matmul peak within 10% of
the baseline's (ratio >= 0.9), or above it.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib
import math
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainables.bars.synthetic import make_bars
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData, prepare_fold
from trainables.prep.features import build_features
from trainables.prep.labels import make_targets
from trainables.training import fast_paths
from trainables.training.trainer import fit

F_COLS = ["open", "high", "low", "close", "volume", "log_return"]
# Evaluation anchors per epoch, the same for both sides. 1024 = the trainer's inference batch
# (it pads the last batch to that size), so neither side computes windows it does not need.
N_EVAL = 1024


@dataclass(frozen=True)
class Scenario:
    name: str
    sequence_length: int
    hidden: int
    layers: int
    batch_ours: int
    batch_baseline: int
    n_train: int  # training anchors per epoch
    pairs: int  # measured epoch pairs (after one warm-up pair), at most
    seconds: float  # no new pair after this many seconds of measured pairs


SCENARIOS = {
    # The single-ticker trainer's defaults: sequence_length 10, hidden 64, 2 layers, batch 64.
    "small": Scenario("small", 10, 64, 2, 64, 64, 16384, 6, 30.0),
    # The guide's default model (seq 60, hidden 256, 2 layers) at the guide's batch 512; the
    # baseline keeps its own docs' batch for hidden 256 (the "High-Capacity Model" example: 128).
    "large": Scenario("large", 60, 256, 2, 512, 128, 2048, 4, 60.0),
}
QUICK = {
    "small": Scenario("small", 10, 64, 2, 64, 64, 4096, 3, 6.0),
    "large": Scenario("large", 60, 256, 2, 512, 128, 1024, 2, 12.0),
}


# ---------------------------------------------------------------------- data and config


def make_fold(s: Scenario) -> FoldData:
    """Synthetic bars -> features -> next-bar close -> a scaled fold of n_train + N_EVAL."""
    n_bars = s.n_train + N_EVAL + s.sequence_length + 64
    bars = make_bars(n_bars, seed=0)
    features = build_features(bars, F_COLS)
    targets = make_targets(features, bars, task="regression", f_cols=F_COLS, target_col="close")
    first = s.sequence_length - 1
    # Throughput only: the evaluation block simply follows the training block (no purge).
    anchors = np.arange(first, first + s.n_train + N_EVAL, dtype=np.int64)
    return prepare_fold(
        features,
        targets,
        anchors[: s.n_train],
        anchors[s.n_train :],
        f_cols=F_COLS,
        sequence_length=s.sequence_length,
    )


def config_for(s: Scenario, batch_size: int) -> TrainConfig:
    """The users' parameters-doc loop (Adam, MSE, clip 1.0) at this scenario's size."""
    return TrainConfig(
        f_cols=tuple(F_COLS),
        target_col="close",
        sequence_length=s.sequence_length,
        hidden_size=s.hidden,
        num_layers=s.layers,
        dropout=0.2,
        residual=False,  # the baseline model has no residual head
        optimizer="adam",
        weight_decay=1e-5,  # the parameters doc's default
        scheduler="none",
        warmup_epochs=0,
        loss="mse",
        grad_clip=1.0,
        batch_size=batch_size,
        epochs=s.pairs + 1,
        patience=10_000,  # never stop early: every epoch is timed
        amp="off",  # float32 on both sides, so the FLOP shares compare like with like
    )


# ---------------------------------------------------------------------- FLOPs and peak


def lstm_train_flops(
    *, sequence_length: int, n_features: int, hidden: int, layers: int, dirs: int = 1
) -> float:
    """FLOPs of one training sample through the LSTM (formula in the module docstring)."""
    forward = 0.0
    for layer in range(layers):
        f_in = n_features if layer == 0 else hidden * dirs
        forward += dirs * sequence_length * 2 * 4 * hidden * (f_in + hidden)
    return 3 * forward


def matmul_peak_gflops(device: torch.device, *, n: int, reps: int) -> float:
    """Best-of-``reps`` float32 ``n x n`` matmul rate: the device's practical GEMM peak."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.matmul(a, b)  # warm-up: thread pool / cuBLAS handle
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- baseline


class WindowDataset(Dataset):
    """The users' dataset: each ``__getitem__`` slices one window and converts it."""

    def __init__(
        self, data: np.ndarray, targets: np.ndarray, anchors: np.ndarray, sequence_length: int
    ):
        self.data, self.targets, self.anchors, self.sequence_length = (
            data,
            targets,
            anchors,
            sequence_length,
        )

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.anchors[k])
        window = self.data[i - self.sequence_length + 1 : i + 1]  # [L, F]
        target = self.targets[i]  # [T]
        return torch.tensor(window, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)


class TimeSeriesLSTM(nn.Module):
    """The users' model: nn.LSTM, dropout, a linear layer on the last step."""

    def __init__(self, n_features: int, hidden: int, layers: int, n_outputs: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, layers, batch_first=True, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # [B, L, F] -> [B, L, H]
        return self.fc(self.dropout(out[:, -1]))  # [B, n_outputs]


class BaselineLoop:
    """The users' loop (docs/parameters.md, "The single-ticker trainer's files and loop");
    ``epoch()`` times one."""

    def __init__(self, fold: FoldData, cfg: TrainConfig, device: torch.device) -> None:
        pin = device.type == "cuda"
        b, L = int(cfg.batch_size), cfg.sequence_length
        self.train_loader = DataLoader(
            WindowDataset(fold.x, fold.y, fold.train_idx, L),
            batch_size=b,
            shuffle=True,
            num_workers=2,
            pin_memory=pin,
        )
        self.eval_loader = DataLoader(
            WindowDataset(fold.x, fold.y, fold.stop_idx, L),
            batch_size=b,
            num_workers=2,
            pin_memory=pin,
        )
        torch.manual_seed(0)
        self.model = TimeSeriesLSTM(
            fold.n_features, cfg.hidden_size, cfg.num_layers, fold.n_outputs, cfg.dropout
        ).to(device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.criterion, self.clip, self.device = nn.MSELoss(), cfg.grad_clip, device

    def epoch(self) -> float:
        t0 = time.perf_counter()
        model, dev = self.model, self.device
        model.train()
        for xb, yb in self.train_loader:
            xb, yb = xb.to(dev), yb.to(dev)
            self.optimizer.zero_grad()
            loss = self.criterion(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), self.clip)
            self.optimizer.step()
        model.eval()
        with torch.no_grad():
            for xb, yb in self.eval_loader:
                self.criterion(model(xb.to(dev)), yb.to(dev)).item()
        _sync(dev)
        return time.perf_counter() - t0


# ---------------------------------------------------------------------- one scenario


FitFn = Callable[..., object]


def _fit_worker(conn, side: str, s: Scenario, device: str, threads: int, against) -> None:
    """A child process: one side's ``fit`` on the scenario's fold, pausing after each epoch
    until the parent says 'go' (or 'stop'). Sends each epoch's ``EpochRecord.seconds``."""
    torch.set_num_threads(threads)
    fit_fn = {"ours": fit, "plain": _plain_fit}.get(side) or import_old_fit(against)

    def on_epoch(record) -> bool:
        conn.send(record.seconds)
        return conn.recv() == "stop"

    try:
        fit_fn(
            config_for(s, s.batch_ours),
            make_fold(s),
            on_epoch=on_epoch,
            device=torch.device(device),
            log=None,
        )
        conn.send("fit ended before the benchmark did")
    except BaseException as err:  # reported by the parent
        conn.send(f"{type(err).__name__}: {err}")
    finally:
        _remove_copies()  # a multiprocessing child exits without running atexit


class FitProcess:
    """One side's ``fit`` in its own process, handed out one epoch at a time: ``epoch()``
    lets it train one more epoch and returns that epoch's seconds. A child process, not a
    thread: torch ops issued from a second thread of one process ran ~4x slower here (on
    2 CPU threads), and a paused side must cost the running one nothing."""

    def __init__(self, side: str, s: Scenario, device: torch.device, against: Path | None):
        ctx = mp.get_context("spawn")
        self.side = side
        self.conn, child = ctx.Pipe()
        args = (child, side, s, str(device), torch.get_num_threads(), against)
        self.proc = ctx.Process(target=_fit_worker, args=args, daemon=True)

    def epoch(self) -> float:
        if self.proc.is_alive():
            self.conn.send("go")
        else:
            self.proc.start()  # its start-up is outside the epoch it times
        got = self.conn.recv()
        if isinstance(got, str):
            raise RuntimeError(f"side {self.side!r}: {got}")
        return got

    def close(self) -> None:
        if self.proc.is_alive():
            self.conn.send("stop")
            self.proc.join(timeout=120)


def run_rounds(
    s: Scenario, fold: FoldData, device: torch.device, sides: list[str], against: Path | None
) -> dict[str, list[float]]:
    """Epoch seconds per side and round: each round runs one epoch of every fit (their order
    reversing every round) and one baseline epoch. The first round is a warm-up."""
    runners = {side: FitProcess(side, s, device, against) for side in sides}
    baseline = BaselineLoop(fold, config_for(s, s.batch_baseline), device)
    seconds: dict[str, list[float]] = {side: [] for side in [*sides, "baseline"]}
    try:
        for k in range(s.pairs + 1):
            for side in sides if k % 2 == 0 else reversed(sides):
                seconds[side].append(runners[side].epoch())
            seconds["baseline"].append(baseline.epoch())
            spent = sum(sum(v[1:]) for v in seconds.values())
            if spent >= s.seconds * (len(seconds) / 2):  # the cap was set for two sides
                break
    finally:
        for runner in runners.values():
            runner.close()
    return {side: v[1:] for side, v in seconds.items()}


def _plain_fit(*args, **kwargs):
    """Our fit with the fast paths off."""
    with fast_paths.use_fast_paths(False):
        return fit(*args, **kwargs)


# ---------------------------------------------------------------------- an older trainer


_COPIES: list[str] = []  # temporary copies of an older trainables/, removed at exit


@atexit.register
def _remove_copies() -> None:
    for folder in _COPIES:
        shutil.rmtree(folder, ignore_errors=True)


def import_old_fit(folder: Path) -> FitFn:
    """``fit`` of an older copy of the ``trainables`` package (``folder/trainables``, e.g.
    from ``git archive <commit> trainables | tar -x -C folder``), imported as
    ``trainables_old`` next to the current one."""
    source = folder / "trainables"
    if not (source / "trainer.py").is_file():
        raise SystemExit(
            f"error: {source}/trainer.py not found (--against names the folder above it)"
        )
    folder_copy = tempfile.mkdtemp(prefix="trainables_old_")
    _COPIES.append(folder_copy)
    target = Path(folder_copy) / "trainables_old"
    shutil.copytree(source, target)
    for path in target.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\btrainables(?=[. ])", "trainables_old", text)
        path.write_text(text)
    sys.path.insert(0, str(target.parent))
    return importlib.import_module("trainables_old.trainer").fit


# ---------------------------------------------------------------------- main


def run(
    names: list[str],
    *,
    quick: bool,
    device: torch.device,
    against: Path | None = None,
    plain: bool = False,
    rounds: int | None = None,
) -> None:
    table = QUICK if quick else SCENARIOS
    sizes, reps = ((1024,), 3) if quick else ((1024, 2048), 5)
    sides = ["ours"] + (["plain"] if plain else []) + (["old"] if against else [])
    if against is not None:
        import_old_fit(against)  # fails here, before any work, if the folder is wrong
    where = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(
        f"device: {device} ({where}, {torch.get_num_threads()} torch threads); "
        f"torch {torch.__version__}; ours = trainables.training.trainer.fit"
        + (f", old = {against}/trainables (trainer.fit)" if against else "")
        + f"; fast paths {'on' if fast_paths.enabled() else 'off'}"
    )
    load_before = os.getloadavg()[0]  # other work on a shared machine skews everything
    peaks = [matmul_peak_gflops(device, n=n, reps=reps) for n in sizes]
    results = {}
    for name in names:
        s = table[name]
        if rounds is not None:  # a fixed number of rounds, no time cap
            s = dataclasses.replace(s, pairs=rounds, seconds=math.inf)
        fold = make_fold(s)
        results[name] = (s, fold, run_rounds(s, fold, device, sides, against))
        # Measured between and after scenarios too: other work only ever lowers it.
        peaks += [matmul_peak_gflops(device, n=n, reps=reps) for n in sizes]
    peak = max(peaks)
    shapes = ", ".join(f"{n}x{n}" for n in sizes)
    print(f"float32 matmul peak (best over the run, {shapes}): {peak:,.1f} GFLOP/s")
    print(f"1-min load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("\n".join(report_lines(results, peak)))


def report_lines(results: dict, peak: float) -> list[str]:
    header = (
        f"{'scenario':<8} {'side':<9} {'batch':>5} {'samples/s':>10} {'GFLOP/s':>8} "
        f"{'% peak':>7}  per round"
    )
    lines, verdicts = [header, "-" * len(header)], []
    for name, (s, fold, seconds) in results.items():
        n_train, n_eval = len(fold.train_idx), len(fold.stop_idx)
        train_flops = lstm_train_flops(
            sequence_length=s.sequence_length,
            n_features=fold.n_features,
            hidden=s.hidden,
            layers=s.layers,
        )
        # Per epoch: training samples (forward + backward) and the evaluation pass (forward).
        per_sample = (n_train * train_flops + n_eval * train_flops / 3) / n_train
        for side, secs in seconds.items():
            batch = s.batch_baseline if side == "baseline" else s.batch_ours
            rates = [n_train / t for t in secs]
            rate = statistics.median(rates)
            gflops = rate * per_sample / 1e9
            each = " ".join(f"{r:,.0f}" for r in rates)
            lines.append(
                f"{name:<8} {side:<9} {batch:>5} {rate:>10,.0f} {gflops:>8.1f} "
                f"{gflops / peak:>7.1%}  {each}"
            )
        verdicts += verdict_lines(name, seconds)
    return lines + verdicts


def _ratio(slow: list[float], fast: list[float]) -> tuple[float, str]:
    """Median of the per-round samples/s ratios fast/slow (= slow seconds / fast seconds)."""
    ratios = [a / b for a, b in zip(slow, fast, strict=True)]
    spread = f"median of {len(ratios)} rounds, range {min(ratios):.2f}-{max(ratios):.2f}x"
    return statistics.median(ratios), spread


def verdict_lines(name: str, seconds: dict[str, list[float]]) -> list[str]:
    out = []
    ratio, spread = _ratio(seconds["baseline"], seconds["ours"])
    if name == "small":
        ok = "met" if ratio >= 2 else "NOT met"
        out.append(f"small: ours/baseline samples/s {ratio:.2f}x ({spread}); >= 2x: {ok}")
    else:
        ok = "met" if ratio >= 0.9 else "NOT met"
        out.append(
            f"large: our share of peak / baseline's = samples/s ratio {ratio:.2f}x "
            f"({spread}); >= 0.9x: {ok}"
        )
    for other in ("plain", "old"):
        if other in seconds:
            ratio, spread = _ratio(seconds[other], seconds["ours"])
            out.append(f"{name}: ours/{other} samples/s {ratio:.2f}x ({spread})")
            ratio, spread = _ratio(seconds["baseline"], seconds[other])
            out.append(f"{name}: {other}/baseline samples/s {ratio:.2f}x ({spread})")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["small", "large", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="~30 s: fewer samples and pairs")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch intra-op threads (CPU), one run each: 1 is the regime a sweep's trials "
        "run in (--cpus-per-trial 1, the default), 2 the README's bar (default: 1 2)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="folder holding an older trainables/ (git archive): its fit runs as a third side",
    )
    parser.add_argument(
        "--plain", action="store_true", help="also our fit with the fast paths off, as a side"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="measured rounds per scenario, without the time cap (more rounds: a steadier "
        "median on a loaded machine)",
    )
    args = parser.parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    names = ["small", "large"] if args.scenario == "both" else [args.scenario]
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n== {regime(threads)}")
        run(
            names,
            quick=args.quick,
            device=device,
            against=args.against,
            plain=args.plain,
            rounds=args.rounds,
        )


def regime(threads: int) -> str:
    """What a thread count stands for on this project's machines."""
    if threads == 1:
        return (
            "1 torch thread: the regime a sweep's trials run in (--cpus-per-trial 1, the "
            "default: a trial's torch uses as many threads as CPUs it reserves)"
        )
    note = ": the bar quoted in benchmarks/README.md" if threads == 2 else ""
    return f"{threads} torch threads{note}"


if __name__ == "__main__":
    main()
