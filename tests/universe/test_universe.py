"""Universes (#22): one command tunes many tickers in one Tune experiment on a real local Ray,
with real Tune trials, one real Optuna study per ticker, a real MLflow store and Parquet."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray

from orchestrator.models.predict import run as predict_run
from orchestrator.promotion.run import PromoteSpec
from orchestrator.promotion.universe import promote_universe
from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.records.tickers import parse_tickers, ticker_dir, ticker_seed
from orchestrator.stats.fdr import adjust, iu_p_of
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tracking.sweep_runs import default_tracking_uri, find_child_runs
from orchestrator.tune import main as tune_main
from orchestrator.universe.run import run_universe
from tests.bars_db import users_bars
from tests.study_check import assert_study_matches
from trainables.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TICKERS = {"AAA": 0, "BRK.B": 1}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # One real local Ray for every universe of this module; run_universe reuses it.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bars_file(tmp_path_factory) -> Path:
    """Two learnable tickers (one with a dot) and one too short to cut into folds."""
    frame = users_bars(TICKERS, 900)
    short = users_bars({"TINY": 5}, 120)
    path = tmp_path_factory.mktemp("u") / "universe.parquet"
    pd.concat([frame, short], ignore_index=True).to_parquet(path, index=False)
    return path


def tiny(tmp_path: Path, data: Path, **kw) -> SweepSpec:
    base = dict(
        data=str(data),
        tickers="all",
        space="smoke",
        trials=3,
        folds=2,
        epochs=2,
        num_cpus=2,
        dashboard=False,
        results_dir=str(tmp_path / "results"),
        name="u",
        max_concurrent=2,
    )
    return SweepSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def swept(tmp_path_factory, bars_file):
    """One universe of the three tickers, swept once for the tests that read it."""
    root = tmp_path_factory.mktemp("swept")
    lines: list[str] = []
    out = run_universe(tiny(root, bars_file), log=lines.append)
    return root, out, lines


def test_each_ticker_is_its_own_sweep_in_one_run(swept):
    tmp_path, out, lines = swept
    u = out.out_dir
    record = json.loads((u / "universe.json").read_text())
    assert record["status"] == "finished" and record["tickers"] == "all"
    members = record["members"]
    assert list(members) == ["AAA", "BRK.B", "TINY"]
    # The short ticker is refused with its one line; the others ran every trial.
    assert members["TINY"]["status"] == "refused"
    assert "too few" in members["TINY"]["reason"]
    assert any(line.startswith("TINY: refused:") for line in lines)
    for ticker in TICKERS:
        assert members[ticker]["status"] == "finished"
        folder = ticker_dir(u, ticker)
        assert folder.name == members[ticker]["folder"]  # BRK.B -> BRK_2eB, reversible
        sweep = json.loads((folder / "sweep.json").read_text())
        assert sweep["ticker"] == ticker and sweep["universe"] == "u"
        assert sweep["seed"] == members[ticker]["seed"] == ticker_seed(0, ticker)
        for name in ("leaderboard.parquet", "best_config.yaml", "fold_audit.csv", "oof.parquet"):
            assert (folder / name).is_file(), (ticker, name)
        board = read_leaderboard(folder)
        assert len(board) == 3 and "param_ticker" not in board.columns
        # its own study (named after the ticker) in the universe's one optuna.db, telling
        # the same story as its leaderboard, baselines on its own folds included
        assert_study_matches(folder, study=(u / "optuna.db", ticker))
    universe = pd.read_parquet(u / "universe_leaderboard.parquet").set_index("ticker")
    assert universe.loc["TINY", "status"] == "refused"
    assert (universe.loc[list(TICKERS), ["completed", "pruned", "failed"]].sum(axis=1) == 3).all()
    assert universe.loc[list(TICKERS), "ridge_objective"].notna().all()
    # Trial lines name their ticker; the heartbeat counts tickers.
    assert any(" AAA fold 1/2 " in line for line in lines)
    # Each ticker says when it is done; whichever finishes last (two trials run at once, so
    # either may) counts both.
    done = [line for line in lines if re.search(r"ticker (AAA|BRK\.B) done \| tickers: ", line)]
    assert sorted(line.split("ticker ")[1].split()[0] for line in done) == ["AAA", "BRK.B"]
    assert "| tickers: 1/2 done" in done[0] and "| tickers: 2/2 done" in done[1]
    # MLflow: the universe's run, a child run per ticker, the trials below each.
    uri = default_tracking_uri(tmp_path / "results")
    assert sorted(r.info.run_name for r in find_child_runs(uri, "lstm-sweeps", "u")) == [
        "u/AAA",
        "u/BRK.B",
    ]
    trials = find_child_runs(uri, "lstm-sweeps", "u/BRK.B")
    assert sorted(r.info.run_name for r in trials) == sorted(
        read_leaderboard(ticker_dir(u, "BRK.B")).trial_id
    )
    assert all("ticker" not in r.data.params for r in trials)


def test_a_universe_promotes_each_ticker_then_controls_the_fdr_and_predicts(swept, bars_file):
    # promote --name <universe>: every ticker on its own test part, then the universe's
    # verdict (Benjamini-Yekutieli over the tickers' intersection-union p-values) and its
    # report; predict --name: each ticker's model on its own bars, one long table.
    root, out, _ = swept
    lines: list[str] = []
    spec = PromoteSpec(name="u", results_dir=str(root / "results"), top_k=1, seeds=1, epochs=2)
    verdict = promote_universe(spec, log=lines.append)
    assert verdict["fdr"]["family"] == 2 and verdict["fdr"]["method"] == "Benjamini-Yekutieli"
    assert "TINY" in verdict["refused"] and "TINY" not in verdict["tickers"]
    iu = {}
    for ticker in TICKERS:
        promoted = json.loads((ticker_dir(out.out_dir, ticker) / "promoted.json").read_text())
        assert promoted["holdout_guard"]["test_read_after_training"]
        iu[ticker] = iu_p_of(promoted)
        assert verdict["tickers"][ticker]["iu_p"] == pytest.approx(iu[ticker])
    adjusted = adjust(iu)
    for ticker in TICKERS:
        assert verdict["tickers"][ticker]["adjusted_p"] == pytest.approx(
            adjusted[ticker]["adjusted_p"]
        )
    winners = [t for t in TICKERS if adjusted[t]["winner"]]
    assert verdict["fdr"]["winners"] == winners
    headline = f"{len(winners)} of 2 tickers beat the baselines at FDR 10%"
    assert any(line.startswith(headline) for line in lines)
    page = (out.out_dir / "universe_report.html").read_text()
    assert headline in page and "data:image/png;base64," in page and "BRK.B" in page
    assert (out.out_dir / "universe_report.md").read_text().count("\n| ") == 3  # header, a row each
    # Each ticker's model registered under its own name, its run below its ticker's sweep.
    uri = default_tracking_uri(root / "results")
    runs = find_child_runs(uri, "lstm-sweeps", "u/BRK.B")
    assert any(r.info.run_name.startswith("promoted-") for r in runs)
    # predict --name: the universe's models on the long file, per ticker what --model gives.
    preds = predict_run(
        ["--name", "u", "--results-dir", str(root / "results"), "--data", str(bars_file)],
        log=lambda *_: None,
    )
    assert sorted(set(preds.ticker)) == sorted(TICKERS)
    for ticker in TICKERS:
        model = ticker_dir(out.out_dir, ticker) / "models" / "1"
        one = predict_run(
            ["--model", str(model), "--data", str(bars_file), "--ticker", ticker],
            log=lambda *_: None,
        )
        pd.testing.assert_frame_equal(preds[preds.ticker == ticker].drop(columns="ticker"), one)
    # --ticker in another case is the ticker stored, as with the data flags (predict and
    # show refused 'brk.b'); report --name <universe> rewrites the universe's report (it
    # said "no sweep at results/u: sweep.json is missing"), --ticker one ticker's.
    lower = predict_run(
        ["--name", "u", "--results-dir", str(root / "results"), "--data", str(bars_file)]
        + ["--ticker", "brk.b"],
        log=lambda *_: None,
    )
    pd.testing.assert_frame_equal(lower, preds[preds.ticker == "BRK.B"].drop(columns="ticker"))
    from orchestrator.promotion.report import main as report_main
    from orchestrator.show import main as show_main

    flags = ["--name", "u", "--results-dir", str(root / "results")]
    assert show_main([*flags, "--ticker", "brk.b"]) == 0
    (out.out_dir / "universe_report.md").unlink()
    assert report_main(flags) == 0
    assert headline in (out.out_dir / "universe_report.md").read_text()
    (ticker_dir(out.out_dir, "BRK.B") / "report.md").unlink()
    assert report_main([*flags, "--ticker", "brk.b"]) == 0
    assert (ticker_dir(out.out_dir, "BRK.B") / "report.md").is_file()


def test_one_ticker_equals_its_single_ticker_sweep_with_its_seed(tmp_path, bars_file):
    # Rule (#22): with one trial at a time a ticker's sweep inside a universe is the sweep
    # of that ticker alone run with the ticker's seed: the same configs, pruning decisions
    # (ASHA and the fold race, per ticker) and scores.
    spec = tiny(tmp_path, bars_file, tickers="AAA,BRK.B", trials=4, max_concurrent=1)
    out = run_universe(spec, log=lambda *_: None)
    seed = ticker_seed(0, "BRK.B")
    single = run_sweep(
        SweepSpec(
            **{
                **{k: getattr(spec, k) for k in ("data", "space", "trials", "folds", "epochs")},
                "ticker": "BRK.B",
                "seed": seed,
                "max_concurrent": 1,
                "num_cpus": 2,
                "dashboard": False,
                "results_dir": str(tmp_path / "single"),
                "name": "brk",
            }
        ),
        log=lambda *_: None,
    )
    drop = ["trial_id", "seconds", "train_seconds"]
    got = read_leaderboard(ticker_dir(out.out_dir, "BRK.B")).drop(columns=drop)
    want = read_leaderboard(single.out_dir).drop(columns=drop)
    assert (got.status == "pruned").any() or (got.status == "completed").all()
    pd.testing.assert_frame_equal(got, want)


def test_every_ticker_refused_stops_before_any_work(tmp_path, bars_file, capsys):
    results = tmp_path / "results"
    code = tune_main(
        [
            *("--data", str(bars_file), "--tickers", "TINY,NOPE", "--space", "smoke"),
            *("--folds", "2", "--results-dir", str(results), "--name", "none", "--no-dashboard"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "every ticker was refused (2)" in err
    assert not (results / "none").exists()  # nothing half-written


def test_a_ticker_whose_every_trial_fails_is_exit_1_and_the_others_are_written(
    tmp_path, bars_file, capsys
):
    # Rule: a ticker that failed in training makes the command exit 1 naming it; the other
    # tickers' sweeps finish and are written as if it were not there.
    from orchestrator.tune import _universe

    spec = tiny(tmp_path, bars_file, tickers="AAA,BRK.B", fail_ticker="AAA", max_retries=0)
    code = _universe(spec, None)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "error: 1 of 2 tickers of universe 'u' failed in training (AAA)" in err
    members = json.loads((tmp_path / "results" / "u" / "universe.json").read_text())["members"]
    status = {t: m["status"] for t, m in members.items()}
    assert status["AAA"] == "failed" and status["BRK.B"] == "finished", status
    board = read_leaderboard(ticker_dir(tmp_path / "results" / "u", "AAA"))
    assert (board[board.status != "baseline"].status == "failed").all()
    ok = read_leaderboard(ticker_dir(tmp_path / "results" / "u", "BRK.B"))
    assert (ok.status.isin(["completed", "pruned", "baseline"])).all() and (
        ok.status == "completed"
    ).any()


@pytest.mark.slow
def test_time_budget_leaves_tickers_not_started_and_resume_finishes_them(tmp_path, bars_file):
    # A budget spent during the first ticker (long trials, one at a time): the other ticker is
    # listed as not started; --resume leaves finished trials alone and runs the rest.
    lines: list[str] = []
    spec = tiny(
        tmp_path,
        bars_file,
        tickers="AAA,BRK.B",
        trials=2,
        epochs=200,  # 2 trials of 2 folds of 200 epochs: longer than the budget anywhere
        max_concurrent=1,
        scheduler="none",
        overrides={"patience": 1000},  # every epoch runs: trials take seconds each
    )
    out = run_universe(SweepSpec(**{**spec.__dict__, "time_budget": 10}), log=lines.append)
    assert out.stopped_by_budget and out.interrupted
    record = json.loads((out.out_dir / "universe.json").read_text())
    assert record["status"] == "interrupted" and record["stopped_by"] == "time budget"
    assert record["members"]["AAA"]["status"] in ("interrupted", "not started")
    assert record["members"]["BRK.B"]["status"] == "not started"
    assert any("tickers not started are resumable" in line for line in lines)
    aaa = ticker_dir(out.out_dir, "AAA")
    before = read_leaderboard(aaa) if (aaa / "leaderboard.parquet").is_file() else None
    again = run_universe(SweepSpec(**{**spec.__dict__, "resume": True}), log=lines.append)
    assert not again.interrupted
    record = json.loads((out.out_dir / "universe.json").read_text())
    assert record["status"] == "finished"
    assert {record["members"][t]["status"] for t in ("AAA", "BRK.B")} == {"finished"}
    for ticker in ("AAA", "BRK.B"):
        board = read_leaderboard(ticker_dir(out.out_dir, ticker))
        assert len(board) == 2 and set(board.status) == {"completed"}
        assert_study_matches(
            ticker_dir(out.out_dir, ticker), study=(out.out_dir / "optuna.db", ticker)
        )
    if before is not None:  # trials that finished before the budget: kept, not run again
        after = read_leaderboard(aaa).set_index("trial_id")
        for row in before[before.status == "completed"].itertuples():
            assert after.loc[row.trial_id, "objective"] == row.objective
    runs = find_child_runs(default_tracking_uri(tmp_path / "results"), "lstm-sweeps", "u/AAA")
    assert len(runs) == 2  # one MLflow run per trial, none duplicated


@pytest.mark.parametrize(
    ("text", "want"),
    [("all", None), ("AAPL, BRK.B,^GSPC", ["AAPL", "BRK.B", "^GSPC"])],
)
def test_tickers_flag(text, want):
    assert parse_tickers(text) == want


def test_tickers_from_a_file_and_what_is_refused(tmp_path):
    listed = tmp_path / "t.txt"
    listed.write_text("# my universe\nAAPL\n\nBTC/USD  # a pair\n")
    assert parse_tickers(f"@{listed}") == ["AAPL", "BTC/USD"]
    with pytest.raises(ConfigError, match="listed twice"):
        parse_tickers("A,B,A")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_tickers(f"@{tmp_path / 'missing.txt'}")
    with pytest.raises(ConfigError, match="--ticker .* or --tickers .*, not both"):
        SweepSpec(data="x.parquet", ticker="A", tickers="all")
    with pytest.raises(ConfigError, match="give --data"):
        SweepSpec(tickers="all")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_a_universe_and_the_printed_command_finishes_it(
    tmp_path, bars_file, sig
):
    # The real CLI, stopped once the first ticker is done: exit 130/143 and the command that
    # continues it; that command (pasted) finishes the other ticker and leaves the first alone.
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.tune",
        *("--data", str(bars_file), "--tickers", "AAA,BRK.B", "--space", "smoke"),
        *("--trials", "2", "--folds", "2", "--epochs", "20", "--max-concurrent", "1"),
        *("--scheduler", "none", "--num-cpus", "2", "--no-dashboard"),
        *("--results-dir", str(results), "--name", "cc"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ray.shutdown()  # the CLI starts its own Ray, as a user's would
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
        )
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[") and "ticker AAA done" in line:
                proc.send_signal(sig)
                break
        rest = proc.communicate(timeout=300)[0]
        output = "".join(seen) + rest
        assert proc.returncode == 128 + sig, output[-3000:]
        hint = re.search(r"(?:Finish it with|continue with): (python -m .*)", output)
        assert hint, output[-3000:]
        resume = shlex.split(hint.group(1))
        record = json.loads((results / "cc" / "universe.json").read_text())
        assert record["status"] == "interrupted"
        assert record["members"]["AAA"]["status"] == "finished"
        aaa = read_leaderboard(ticker_dir(results / "cc", "AAA"))
        done = subprocess.run(
            [sys.executable, *resume[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
    finally:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " AAA fold" not in done.stdout  # the finished ticker was left alone
    record = json.loads((results / "cc" / "universe.json").read_text())
    assert record["status"] == "finished"
    pd.testing.assert_frame_equal(read_leaderboard(ticker_dir(results / "cc", "AAA")), aaa)
    assert len(read_leaderboard(ticker_dir(results / "cc", "BRK.B"))) == 2


def test_show_lists_a_universe_and_its_tickers(swept, capsys):
    # orchestrator.show reads a universe (universe.json, no sweep.json at its top): one row
    # in the list, one row per ticker with --name, a ticker's sweep with --ticker.
    from orchestrator.show import main as show_main

    root, out, _ = swept
    results = str(root / "results")
    assert show_main(["--results-dir", results]) == 0
    listed = capsys.readouterr().out
    assert "u (universe, 3 tickers)" in listed and "6/9" in listed
    assert show_main(["--results-dir", results, "--name", "u"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Universe 'u': 3 tickers x 3 trials")
    rows = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
    assert "finished" in rows["AAA"] and "finished" in rows["BRK.B"]
    assert rows["TINY:"].startswith("TINY: refused: ")
    assert show_main(["--results-dir", results, "--name", "u", "--ticker", "BRK.B"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("Sweep 'BRK_2eB'") and "Trials: 3 of 3 finished" in one
    assert show_main(["--results-dir", results, "--name", "u", "--ticker", "NOPE"]) == 2
    assert "--ticker 'NOPE' is not a ticker of 'u'" in capsys.readouterr().err


def test_a_bad_name_is_refused_before_any_work(tmp_path, bars_file):
    # The universe runs the single sweep's pre-work checks (orchestrator/sweep/preflight.py).
    spec = tiny(tmp_path, bars_file, name="../outside")
    with pytest.raises(ConfigError, match="--name"):
        run_universe(spec, log=lambda *_: None)
    assert not (tmp_path / "results").exists() and not (tmp_path / "outside").exists()


def test_resume_leaves_a_finished_ticker_alone(tmp_path, bars_file):
    # A universe stopped after AAA had finished and while BRK.B had not: --resume reads,
    # reruns and rewrites nothing of AAA. (The stop is injected by writing the record as a
    # stop would leave it.)
    spec = tiny(tmp_path, bars_file, tickers="AAA,BRK.B", trials=1, max_concurrent=1)
    out = run_universe(spec, log=lambda *_: None)
    path = out.out_dir / "universe.json"
    record = json.loads(path.read_text())
    record["status"] = "interrupted"
    record["members"]["BRK.B"]["status"] = "interrupted"
    path.write_text(json.dumps(record))
    aaa = ticker_dir(out.out_dir, "AAA")
    stamps = {p.name: p.stat().st_mtime_ns for p in aaa.iterdir() if p.is_file()}
    lines: list[str] = []
    again = run_universe(SweepSpec(**{**spec.__dict__, "resume": True}), log=lines.append)
    assert not again.interrupted
    assert any("1 tickers x 1 trials" in line and "(resumed)" in line for line in lines)
    assert not any(line.startswith("AAA") for line in lines)
    assert {p.name: p.stat().st_mtime_ns for p in aaa.iterdir() if p.is_file()} == stamps
    record = json.loads(path.read_text())
    assert record["status"] == "finished"
    assert {m["status"] for m in record["members"].values()} == {"finished"}
    uri = default_tracking_uri(tmp_path / "results")
    assert len(find_child_runs(uri, "lstm-sweeps", "u/AAA")) == 1  # its one trial, once
    # Every ticker done but the record left open: --resume closes it, runs nothing.
    record["status"] = "interrupted"
    path.write_text(json.dumps(record))
    last = run_universe(SweepSpec(**{**spec.__dict__, "resume": True}), log=lambda *_: None)
    assert last.already_finished
    assert json.loads(path.read_text())["status"] == "finished"
