"""Progress lines: a heartbeat while nothing else is printed, counts, best, ETA, wording."""

from __future__ import annotations

import time

from orchestrator.records.leaderboard import TrialRecord
from orchestrator.sweep.progress import Heartbeat, where_stopped


def test_heartbeat_prints_when_nothing_else_was_printed():
    # Tune's callbacks fire only on results; a timer keeps a line coming (every 25 s by
    # default, here every 0.2 s).
    lines: list[str] = []
    beat = Heartbeat(n_trials=5, n_folds=2, objective="mse_ratio", mode="min", log=lines.append)
    beat.every = 0.2
    with beat:
        beat.running.add("a")
        time.sleep(1.5)
    assert len(lines) >= 2
    assert "1 running | 0/5 done: 0 completed, 0 pruned, 0 failed" in lines[0]
    assert "no complete trial yet | ETA after the first trial finishes" in lines[0]


def test_tally_shows_best_with_skill_and_a_rough_eta():
    lines: list[str] = []
    beat = Heartbeat(n_trials=4, n_folds=2, objective="mse_ratio", mode="min", log=lines.append)
    beat.offer_best(0.8, "t1")
    beat.offer_best(0.9, "t2")  # worse: not the best
    beat.finish("t1", "completed", "")
    beat.finish("t2", "pruned", " in fold 1 of 2")
    beat.beat()
    assert "trial t2 pruned in fold 1 of 2 | 2/4 done: 1 completed, 1 pruned" in lines[1]
    assert "best mse_ratio 0.8 (t1), skill +0.2000" in lines[-1]
    assert "ETA ~" in lines[-1] and "rough: pruned trials are short" in lines[-1]


def test_pruned_trials_say_which_fold_counting_from_one():
    # 'pruned at fold 0/5' read as "stopped inside fold 1 of 5": say it that way.
    mid = TrialRecord("a", {}, folds=[], status="pruned", stopped_mid_fold=True)
    end = TrialRecord("b", {}, folds=[{}, {}], status="pruned", stopped_mid_fold=False)
    assert where_stopped(mid, 5) == "in fold 1 of 5"
    assert where_stopped(end, 5) == "after fold 2 of 5"


def test_after_a_resume_the_tally_never_says_no_complete_trial_beside_completed_ones():
    # Rule: trials completed before --resume count as completed; if their scores are not
    # known (a killed driver wrote no leaderboard) the line says so instead of "no complete
    # trial yet", and with a leaderboard the best so far is seeded from it.
    lines: list[str] = []
    done = {"a": "completed", "b": "pruned", "c": "pruned"}
    beat = Heartbeat(
        n_trials=8, n_folds=2, objective="mse_ratio", mode="min", log=lines.append, done=done
    )
    beat.beat()
    assert "3/8 done: 1 completed, 2 pruned, 0 failed | no score known yet" in lines[-1]
    assert "no complete trial yet" not in lines[-1]
    seeded = Heartbeat(
        n_trials=8, n_folds=2, objective="mse_ratio", mode="min", log=lines.append, done=done
    )
    for value, trial_id in previous_best_of([("a", "completed", 0.85), ("b", "pruned", 1.1)]):
        seeded.offer_best(value, trial_id)
    seeded.beat()
    assert "1 completed, 2 pruned, 0 failed | best mse_ratio 0.85 (a), skill +0.1500" in lines[-1]


def previous_best_of(rows):
    """previous_best on a leaderboard written with the sweep's own writer."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from orchestrator.records.leaderboard import previous_best, write_results

    board = pd.DataFrame(rows, columns=["trial_id", "status", "objective"])
    with tempfile.TemporaryDirectory() as d:
        write_results(Path(d), leaderboard=board, best_config=None, audit=pd.DataFrame())
        return previous_best(Path(d))
