"""The universe's heartbeat (orchestrator/universe/progress.py): tickers done / running / not
started, trials across the universe, each trial line naming its ticker, and an ETA."""

from __future__ import annotations

from orchestrator.universe.progress import UniverseHeartbeat


def test_the_heartbeat_counts_tickers_and_trials_and_gives_an_eta():
    lines: list[str] = []
    beat = UniverseHeartbeat(
        quota={"AAA": 2, "BRK.B": 2, "CCC": 2},
        ticker_of_trial={},
        n_folds=3,
        objective="mse_ratio",
        mode="min",
        log=lines.append,
    )
    beat.beat()
    assert "tickers: 0/3 done, 0 running, 3 not started" in lines[-1]
    assert "ETA after the first trial finishes" in lines[-1]
    for trial, ticker in (("t1", "AAA"), ("t2", "AAA"), ("t3", "BRK.B")):
        beat.ticker_of[trial] = ticker
        beat.running.add(trial)
    beat.offer("AAA", 0.9, "t1")
    beat.finish("t1", "completed", "")
    assert (
        "trial t1 AAA completed | AAA: 1/2 done, best mse_ratio 0.9 (t1), skill +0.1000"
        in (lines[-1])
    )
    beat.finish("t2", "pruned", " after fold 1 of 3")
    assert lines[-1].endswith(
        "ticker AAA done | tickers: 1/3 done, 1 running, 1 not started | trials: 2/6 done "
        "(1 completed, 1 pruned, 0 failed)"
    )
    beat.beat()
    assert "1 running | tickers: 1/3 done" in lines[-1] and "ETA ~" in lines[-1]
