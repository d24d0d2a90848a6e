"""Golden output of a fixed-seed smoke sweep, one trial at a time, kept as JSON.

    python -m tests.sweep_golden        # rewrite tests/golden/sweep_smoke.json from this code

Regenerate only in a commit that explains why a sweep's answer changed (a refactor keeps it
identical). tests/sweep/test_sweep.py runs the same sweep and compares its leaderboard: the sampled
configs, statuses, where each pruned trial stopped, the objective and every per-fold score.
Left out: trial ids (random) and timings. Kept beside it: every decision the scheduler made
(a rung cutoff, the fold race, the incumbent), with the two numbers it compared, so the test
can check that float noise on another machine cannot flip one (a flipped prune is not a
small numeric difference: no tolerance absorbs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import ray

import orchestrator.sweep.tuner
from orchestrator.sweep.run import SweepSpec, run_sweep
from tests.fit_golden import GOLDEN_RTOL, platform

GOLDEN = Path(__file__).parent / "golden" / "sweep_smoke.json"
VOLATILE = ("trial_id", "seconds", "train_seconds")


def spec(results_dir: Path) -> SweepSpec:
    # The smoke space on the built-in data, ASHA and the fold race on, 4 trials one at a time
    # (docs/sweeps.md: then a seeded sweep repeats exactly).
    return SweepSpec(
        space="smoke",
        trials=4,
        folds=2,
        epochs=2,
        n_bars=1000,
        num_cpus=2,
        dashboard=False,
        results_dir=str(results_dir),
        name="golden",
        scheduler="asha",
        max_concurrent=1,
        seed=0,
    )


def leaderboard(results_dir: Path) -> dict:
    """The sweep's leaderboard as JSON-ready columns and rows (floats keep every bit; a
    missing value is None), and the scheduler's decisions in the order it made them."""
    made = []
    factory = orchestrator.sweep.tuner.scheduler

    def keep(*args, **kwargs):  # the sweep's own scheduler, kept to read its decisions
        made.append(factory(*args, **kwargs))
        return made[-1]

    orchestrator.sweep.tuner.scheduler = keep
    try:
        board = run_sweep(spec(results_dir), log=lambda *_: None).leaderboard
    finally:
        orchestrator.sweep.tuner.scheduler = factory
    board = board.drop(columns=list(VOLATILE)).astype(object)
    rows = [[None if pd.isna(v) else v for v in row] for row in board.itertuples(index=False)]
    decisions = [_decision(d) for d in made[0].decisions]
    return {
        "columns": list(board.columns),
        "rows": json.loads(json.dumps(rows, default=_plain)),
        "decisions": decisions,
    }


def _decision(d: dict) -> dict:
    return {k: d[k] for k in ("kind", "progress", "value", "threshold", "action")}


def tie_margin(decision: dict) -> float:
    """How far a decision was from a tie, relative to the threshold it compared with."""
    if decision["threshold"] is None:
        return float("inf")  # nothing to compare with yet: no decision that noise can flip
    value, threshold = decision["value"], decision["threshold"]
    return abs(value - threshold) / max(abs(threshold), 1e-300)


def _plain(value):
    return value.item()  # numpy scalars


def main() -> None:
    import tempfile

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            board = leaderboard(Path(tmp) / "results")
    finally:
        ray.shutdown()
    closest = min((tie_margin(d) for d in board["decisions"]), default=float("inf"))
    if closest <= 10 * GOLDEN_RTOL:
        sys.exit(
            f"a decision sits {closest:.2g} from a tie: float noise could flip it; change the seed"
        )
    GOLDEN.write_text(json.dumps({"platform": platform(), **board}) + "\n")
    print(
        f"wrote {GOLDEN} ({len(board['rows'])} trials, closest decision {closest:.2g} from a tie)"
    )


if __name__ == "__main__":
    sys.exit(main())
