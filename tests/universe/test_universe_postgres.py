"""A universe straight from the users' PostgreSQL view (#22): every ticker of
``vw_ticker_timeseries`` swept in one run, stopped by its time budget, resumed (on the rows it
started on, though the view grew), promoted and predicted, on a real server (.ci/run's or
a throwaway one: tests/pgserver.py) and a real local Ray."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import ray

from orchestrator.models.predict import run as predict_run
from orchestrator.promotion.run import PromoteSpec
from orchestrator.promotion.universe import promote_universe
from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.records.tickers import ticker_dir
from orchestrator.sweep.run import SweepSpec
from orchestrator.universe.run import run_universe
from tests.bars_db import VIEW, PgSchema, one_ticker, users_bars
from trainables.bars.files import bars_fingerprint

TICKERS = {"AAA": 0, "BRK.B": 1}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_universe_from_the_users_view_sweeps_resumes_promotes_and_predicts(pg_url, tmp_path):
    pg = PgSchema(pg_url)
    try:
        frame = pd.concat([users_bars(TICKERS, 900), users_bars({"TINY": 7}, 120)])
        pg.users_view(frame.reset_index(drop=True))
        results = tmp_path / "results"
        spec = SweepSpec(
            data=pg.url,  # with its password: the worst case for leaks
            table=VIEW,
            tickers="all",
            space="smoke",
            trials=2,
            folds=2,
            epochs=200,  # 2 trials of 2 folds of 200 epochs: longer than the budget anywhere
            overrides={"patience": 1000},  # every epoch runs: the budget ends the first ticker
            scheduler="none",
            max_concurrent=1,
            num_cpus=2,
            dashboard=False,
            results_dir=str(results),
            name="pgu",
        )
        first = run_universe(SweepSpec(**{**spec.__dict__, "time_budget": 10}), log=lambda *_: None)
        assert first.interrupted and first.stopped_by_budget
        record = json.loads((results / "pgu" / "universe.json").read_text())
        assert record["members"]["TINY"]["status"] == "refused"
        assert record["members"]["BRK.B"]["status"] == "not started"
        assert (
            record["table"] == VIEW and "@" in record["data"] and pg.url not in json.dumps(record)
        )
        # New bars arrive in the view; the resumed universe reads the rows it started on.
        pg.append(users_bars(TICKERS, 940).groupby("ticker").tail(40))
        again = run_universe(SweepSpec(**{**spec.__dict__, "resume": True}), log=lambda *_: None)
        assert not again.interrupted
        for ticker in TICKERS:
            folder = ticker_dir(results / "pgu", ticker)
            sweep = json.loads((folder / "sweep.json").read_text())
            assert sweep["ticker"] == ticker and sweep["table"] == VIEW
            assert sweep["data_fingerprint"] == bars_fingerprint(one_ticker(frame, ticker))
            assert set(read_leaderboard(folder).status) <= {"completed"}
        verdict = promote_universe(
            PromoteSpec(
                name="pgu", results_dir=str(results), top_k=1, seeds=1, epochs=2, data=pg.url
            ),
            log=lambda *_: None,
        )
        assert verdict["fdr"]["family"] == 2
        assert {r["status"] for r in verdict["tickers"].values()} == {"promoted"}
        for ticker in TICKERS:
            promoted = json.loads(
                (ticker_dir(results / "pgu", ticker) / "promoted.json").read_text()
            )
            sweep = json.loads((ticker_dir(results / "pgu", ticker) / "sweep.json").read_text())
            assert promoted["holdout_guard"]["test_first_row"] == sweep["test_first_row"]
        # predict --name on the view (the URL from a variable): each ticker's forecasts are
        # what its own model gives on that ticker's rows, the new bars included.
        import os

        os.environ["LSTM_UNIVERSE_DB"] = pg.url
        try:
            preds = predict_run(
                [
                    "--name",
                    "pgu",
                    "--results-dir",
                    str(results),
                    "--data-env",
                    "LSTM_UNIVERSE_DB",
                    "--table",
                    VIEW,
                ],
                log=lambda *_: None,
            )
        finally:
            del os.environ["LSTM_UNIVERSE_DB"]
        assert sorted(set(preds.ticker)) == sorted(TICKERS)
        for ticker in TICKERS:
            mine = preds[preds.ticker == ticker].drop(columns="ticker")
            assert mine.index[-1] > one_ticker(frame, ticker).index[-1]  # the new bars too
            model = ticker_dir(results / "pgu", ticker) / "models" / "1"
            one = predict_run(
                ["--model", str(model), "--data", pg.url, "--table", VIEW, "--ticker", ticker],
                log=lambda *_: None,
            )
            pd.testing.assert_frame_equal(mine, one)
    finally:
        pg.close()
