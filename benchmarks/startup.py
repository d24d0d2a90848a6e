"""A sweep's fixed cost against Ray's own floor, and the mission command before and after.

    python benchmarks/startup.py                       # --smoke-test beside the floor, 3 rounds
    python benchmarks/startup.py --against /tmp/perf-base          # and an older checkout
    python benchmarks/startup.py --mission /tmp/perf-base --rounds 2
        # `python -m orchestrator.tune --trials 50` in that checkout and in this one
    python benchmarks/startup.py --mission /tmp/perf-base --extra "--max-concurrent 1"

Every side runs as its own command line (a fresh interpreter, as a user runs it), one after
the other within a round, in an order that alternates between rounds, so each round sees
the same load; each output line is timed from the command's start.

* **floor**: what any Ray Tune program pays: ``import ray`` and ``ray.tune``, a bare
  ``ray.init(address="local")`` (all cores, the dashboard if installed, as the sweep's own
  Ray), a one-trial ``tune.Tuner`` of a function that reports once, ``ray.shutdown()``.
  Its "first trial line" is the driver's callback on that report.
* **ours**: ``python -m orchestrator.tune --smoke-test`` in a fresh results folder. Phases
  from its own lines: the first line (imports and flag parsing), the data summary, the
  baselines, ``Ray:`` (Ray up), the first ``[   s] trial`` line, ``Results:``, the exit.

Printed: each side's median over the rounds and every round, then ours/floor for the time
to the first trial line and for the whole command (goal: <= 1.5x both). ``--mission DIR``
instead times the bare 50-trial command in DIR and here (goal: after/before <= 0.6x).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLOOR = r"""
import logging, sys, tempfile, time
t0 = float(sys.argv[1])
def mark(what):
    print(f"@{time.time() - t0:.3f} {what}", flush=True)
import ray
from ray import tune
mark("imports")
ray.init(address="local", logging_level=logging.WARNING, log_to_driver=False)
mark("Ray up")
class First(tune.Callback):
    def on_trial_result(self, iteration, trials, trial, result, **info):
        mark("first trial line")
def noop(config):
    tune.report({"x": 1})
with tempfile.TemporaryDirectory() as d:
    tune.Tuner(noop, run_config=tune.RunConfig(storage_path=d, verbose=0, callbacks=[First()])).fit()
mark("results")
ray.shutdown()
"""

# Our phases: (name, pattern of the line that ends it), in the order a sweep prints them.
OURS = (
    ("first line", r"^Sweep "),
    ("data", r" bars -> .* feature rows"),
    ("baselines", r"^Baselines: "),
    ("Ray up", r"^Ray: "),
    ("first trial line", r"^\[\s*[\d.]+s\] trial "),
    ("results", r"^Results: "),
)


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[dict[str, float], list[str]]:
    """Run ``cmd``; (each phase's end in seconds from the start, the output lines)."""
    start = time.time()
    proc = subprocess.Popen(
        [*cmd[:1], "-u", *cmd[1:]] if cmd[0] == sys.executable else cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    marks: dict[str, float] = {}
    lines = []
    for line in proc.stdout:
        now = time.time() - start
        lines.append(line.rstrip())
        floor_mark = re.match(r"^@([\d.]+) (.*)$", line.strip())
        if floor_mark:
            marks.setdefault(floor_mark.group(2), float(floor_mark.group(1)))
            continue
        for name, pattern in OURS:
            if name not in marks and re.search(pattern, line):
                marks[name] = now
    proc.wait()
    marks["exit"] = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n" + "\n".join(lines[-30:]))
    return marks, lines


def _env(checkout: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout), "CUDA_VISIBLE_DEVICES": ""}


def sweep_cmd(args: list[str], results: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.tune", *args, "--results-dir", results]


def run_sides(sides: dict, rounds: int) -> dict[str, list[dict]]:
    """Every side once per round, the order reversed every other round."""
    seen: dict[str, list[dict]] = {name: [] for name in sides}
    order = list(sides)
    for r in range(rounds):
        for name in order if r % 2 == 0 else reversed(order):
            make_cmd, cwd = sides[name]
            with tempfile.TemporaryDirectory() as tmp:
                marks, lines = timed(make_cmd(tmp), cwd, _env(cwd))
            # what the trials did: the same work on both sides, or not (--mission)
            for line in lines:
                if line.startswith(("Trials:", "The best trial")):
                    print(f"  round {r + 1} {name}: {line}", flush=True)
            seen[name].append(marks)
            phases = ", ".join(f"{k} {v:.1f}" for k, v in marks.items())
            print(f"  round {r + 1} {name}: {phases}", flush=True)
    return seen


def median(runs: list[dict], key: str) -> float:
    values = [m[key] for m in runs if key in m]
    return statistics.median(values) if values else float("nan")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def startup(args) -> None:
    sides = {
        "floor": (lambda tmp: [sys.executable, "-c", FLOOR, str(time.time())], ROOT),
        "ours": (lambda tmp: sweep_cmd(["--smoke-test"], tmp), ROOT),
    }
    if args.against:
        sides["before"] = (lambda tmp: sweep_cmd(["--smoke-test"], tmp), Path(args.against))
    print(f"load {load()}; {args.rounds} rounds; {sys.executable}")
    seen = run_sides(sides, args.rounds)
    names = ["imports", "first line", "data", "baselines", "Ray up", "first trial line"]
    print(f"\n{'median seconds from start':28}" + "".join(f"{n:>12}" for n in sides))
    for key in [*names, "results", "exit"]:
        row = [median(seen[n], key) for n in sides]
        if all(v != v for v in row):
            continue
        print(f"{key:28}" + "".join(f"{v:12.1f}" for v in row))
    for key, label in (
        ("first trial line", "time to the first trial line"),
        ("exit", "whole command"),
    ):
        ratios = [o[key] / f[key] for o, f in zip(seen["ours"], seen["floor"], strict=True)]
        verdict = "met" if statistics.median(ratios) <= 1.5 else "NOT met"
        print(
            f"ours/floor, {label}: {statistics.median(ratios):.2f}x (rounds: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f"); goal <= 1.5x: {verdict}"
        )
        if "before" in seen:
            before = [o[key] / b[key] for o, b in zip(seen["ours"], seen["before"], strict=True)]
            print(f"ours/before, {label}: {statistics.median(before):.2f}x")
    print(f"load {load()}")


def mission(args) -> None:
    bare = ["--trials", str(args.trials), *args.extra.split()]
    sides = {
        "before": (lambda tmp: sweep_cmd(bare, tmp), Path(args.mission)),
        "after": (lambda tmp: sweep_cmd(bare, tmp), ROOT),
    }
    print(f"load {load()}; python -m orchestrator.tune {' '.join(bare)}; before = {args.mission}")
    seen = run_sides(sides, args.rounds)
    ratios = [a["exit"] / b["exit"] for a, b in zip(seen["after"], seen["before"], strict=True)]
    for name in sides:
        walls = ", ".join(f"{m['exit']:.1f}" for m in seen[name])
        print(f"{name}: median {median(seen[name], 'exit'):.1f} s (rounds: {walls})")
    verdict = "met" if statistics.median(ratios) <= 0.6 else "NOT met"
    print(
        f"after/before, whole command: {statistics.median(ratios):.2f}x (rounds: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"); goal <= 0.6x: {verdict}"
    )
    print(f"load {load()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--against", help="an older checkout: its --smoke-test as a third side")
    p.add_argument("--mission", help="an older checkout: the bare mission command there and here")
    p.add_argument("--trials", type=int, default=50, help="trials of --mission (default 50)")
    p.add_argument(
        "--extra",
        default="",
        help="more flags for both sides of --mission, e.g. '--max-concurrent 1' (the same "
        "trials on both sides when the search did not change: their time alone compared)",
    )
    args = p.parse_args()
    mission(args) if args.mission else startup(args)


if __name__ == "__main__":
    main()
