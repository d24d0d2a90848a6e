"""Bars from a real PostgreSQL server: the users' view, end to end, and every way it fails.

The server is ``$LSTM_TEST_PG_URL`` (``.ci/run`` starts one) or a throwaway one started by
``tests/conftest.py``; without either these tests skip, saying why. Each test has a schema
of its own, holding ``vw_ticker_timeseries`` over a table with NUMERIC prices.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

import trainables.bars.database
from orchestrator.models.predict import main as predict_main
from orchestrator.promotion.holdout import load_holdout
from orchestrator.tune import main as tune_main
from tests.bars_db import VIEW, PgSchema, one_ticker, users_bars
from trainables.bars.files import bars_fingerprint
from trainables.bars.sources import BarSource, read_bars
from trainables.errors import ConfigError, DataError

TICKERS = {"AAA": 0, "BBB": 1, "CCC": 2}
N_BARS = 700


def _password(url: str) -> str:
    return urlsplit(url).password or ""


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f"{parts.username}:{parts.password}@", f"{parts.username}@")


@pytest.fixture
def view(pg: PgSchema) -> PgSchema:
    pg.users_view(users_bars(TICKERS, 300))
    return pg


def _cli(module: str, *args: str, env: dict | None = None, timeout: int = 600):
    """Run ``python -m module args`` as a user would; (exit code, stdout + stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.returncode, done.stdout + done.stderr


# --- end to end: sweep one ticker of the view, promote, predict, new bars ---------------------


@pytest.fixture(scope="module")
def swept(pg_url, tmp_path_factory):
    """A smoke sweep of BBB straight from the view, promoted in the same command (the URL with
    its password on the command line: the worst case for leaks)."""
    pg = PgSchema(pg_url)
    frame = users_bars(TICKERS, N_BARS)
    pg.users_view(frame)
    results = tmp_path_factory.mktemp("pg") / "results"
    url = pg.url
    code, output = _cli(
        "orchestrator.tune",
        *("--data", url, "--table", VIEW, "--ticker", "BBB", "--smoke-test", "--trials", "2"),
        *("--name", "db", "--results-dir", str(results), "--num-cpus", "2", "--no-dashboard"),
        *("--promote", "--top-k", "1", "--seeds", "1", "--promote-epochs", "2"),
    )
    try:
        yield pg, frame, results, url, code, output
    finally:
        pg.close()


def test_sweep_promote_and_predict_straight_from_the_users_view(swept, tmp_path):
    # One command sweeps and promotes BBB from the view; predict reads the same view.
    pg, frame, results, url, code, output = swept
    assert code == 0, output[-3000:]
    out = results / "db"
    sweep = json.loads((out / "sweep.json").read_text())
    bbb = one_ticker(frame, "BBB")
    assert sweep["table"] == VIEW and sweep["ticker"] == "BBB"
    assert pd.Timestamp(sweep["end"]) == bbb.index[-1]
    assert sweep["data_fingerprint"] == bars_fingerprint(bbb)  # exactly BBB's rows, as floats
    promoted = json.loads((out / "promoted.json").read_text())
    assert promoted["holdout_guard"]["test_first_row"] == sweep["test_first_row"]
    preds = tmp_path / "p.parquet"
    code, text = _cli(
        "orchestrator.predict",
        *("--model", str(out / "models" / "1"), "--data-env", "LSTM_BARS_DB"),
        *("--table", VIEW, "--ticker", "BBB", "--out", str(preds)),
        env={"LSTM_BARS_DB": url},
    )
    assert code == 0, text
    # The same forecasts as from a Parquet file of BBB's bars.
    bbb.to_parquet(tmp_path / "bbb.parquet")
    from_file = tmp_path / "f.parquet"
    args = ["--model", str(out / "models" / "1"), "--data", str(tmp_path / "bbb.parquet")]
    assert predict_main([*args, "--out", str(from_file)]) == 0
    got, want = pd.read_parquet(preds), pd.read_parquet(from_file)
    assert len(got) > 0 and got.index[-1] == bbb.index[-1]
    pd.testing.assert_frame_equal(got, want)


def test_promotion_after_new_bars_reads_the_sweeps_rows(swept, monkeypatch):
    # Bars appended to the table after the sweep are not read when promotion rebuilds the
    # sweep's table (load_holdout, what promote reads with), which gets the password from
    # PGPASSWORD (sweep.json keeps the URL without it). A rewritten history is refused.
    pg, frame, results, url, code, _ = swept
    assert code == 0
    out = results / "db"
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["data"] == _without_password(url)
    first = json.loads((out / "promoted.json").read_text())["data"]
    later = users_bars(TICKERS, N_BARS + 40).groupby("ticker").tail(40)
    pg.append(later)
    monkeypatch.setenv("PGPASSWORD", _password(url))
    again = load_holdout(out)
    assert len(again.features) == first["n_rows"]
    assert again.test_first_row == sweep["test_first_row"]
    assert again.features.index[-1] < later.timestamp.min()
    pg.execute("UPDATE ticker_bars SET close = close / 2 WHERE symbol = 'BBB'")  # a split
    with pytest.raises(ConfigError, match=r"are not the ones sweep 'db' read"):
        load_holdout(out)


def test_the_password_is_in_no_output_and_no_file(swept):
    # Not in what the commands printed, sweep.json, the leaderboard, MLflow's store, the Tune
    # experiment or the report: every file under results/ is searched, bytes and all.
    _, _, results, url, code, output = swept
    password = _password(url)
    assert code == 0 and len(password) >= 8
    assert password not in output
    files = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "report.html" for p in files)
    leaks = [str(p) for p in files if password.encode() in p.read_bytes()]
    assert leaks == []


# --- types, columns, credentials ------------------------------------------------------------


def test_numeric_prices_arrive_as_the_floats_a_file_holds(view, write_bars):
    # NUMERIC(14,4) prices and a bigint volume read as float64, equal to a Parquet file's.
    got = read_bars(BarSource(data=view.url, table=VIEW, ticker="CCC", columns=("vwap",)))
    frame = users_bars(TICKERS, 300)
    assert got.dtypes.eq("float64").all() and str(got.index.tz) == "UTC"
    want = one_ticker(frame, "CCC", ["vwap"])
    assert bars_fingerprint(got) == bars_fingerprint(want)


def test_ticker_and_time_range_are_read_in_the_database(view):
    # A broken bar of another ticker, or outside --start/--end, is never read: the WHERE
    # clause left it in the database. Without the range, the checks name it.
    view.execute(
        "UPDATE ticker_bars SET close = NULL WHERE symbol = 'AAA' AND bar_time = '2020-01-02 05:00+00'",
        "UPDATE ticker_bars SET close = -1 WHERE symbol = 'BBB' AND bar_time = '2020-01-02 05:00+00'",
    )
    source = dict(data=view.url, table=VIEW, ticker="AAA", columns=())
    bars = read_bars(BarSource(**source, start="2020-01-02 06:00"))
    assert bars.index[0] == pd.Timestamp("2020-01-02 06:00", tz="UTC")
    bars = read_bars(BarSource(**source, end="2020-01-02 04:00:00+00:00"))
    assert bars.index[-1] == pd.Timestamp("2020-01-02 04:00", tz="UTC") and len(bars) == 29
    with pytest.raises(
        DataError,
        match=r"column 'close' has 1 NaN/inf value\(s\), first at row 29 \(2020-01-02 05:00:00\+00:00\)",
    ):
        read_bars(BarSource(**source))


def test_only_needed_columns_are_selected(view):
    # A column the run does not use is not read, even when it is broken (here: NULLs).
    view.execute("UPDATE ticker_bars SET vwap = NULL WHERE symbol = 'AAA'")
    assert len(read_bars(BarSource(data=view.url, table=VIEW, ticker="AAA", columns=()))) == 300
    with pytest.raises(DataError, match="column 'vwap' has 300 NaN/inf"):
        read_bars(BarSource(data=view.url, table=VIEW, ticker="AAA", columns=("vwap",)))


def test_credentials_from_pgpassword_pgpass_and_data_env(view, tmp_path, monkeypatch):
    # A URL without a password connects with PGPASSWORD, or a pgpass file (libpq's ~/.pgpass,
    # here through PGPASSFILE), or comes whole from --data-env.
    bare = _without_password(view.url)
    source = dict(table=VIEW, ticker="AAA", columns=())
    with pytest.raises(DataError, match="cannot connect.*the URL has no password.*PGPASSWORD"):
        read_bars(BarSource(data=bare, **source))
    monkeypatch.setenv("PGPASSWORD", _password(view.url))
    assert len(read_bars(BarSource(data=bare, **source))) == 300
    monkeypatch.delenv("PGPASSWORD")
    parts = urlsplit(view.url)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{parts.hostname}:{parts.port}:*:{parts.username}:{parts.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert len(read_bars(BarSource(data=bare, **source))) == 300
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("LSTM_BARS_DB", view.url)
    assert len(read_bars(BarSource(data_env="LSTM_BARS_DB", **source))) == 300


# --- bad input: one line, exit 2, within seconds ---------------------------------------------


def _tune_fails(capsys, tmp_path, *args: str) -> str:
    start = time.perf_counter()
    code = tune_main([*args, "--name", "x", "--results-dir", str(tmp_path / "r"), "--no-dashboard"])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert not (tmp_path / "r" / "x").exists()
    assert seconds < 30  # a generous bound for a shared machine: no hang
    return err


def test_missing_table_and_missing_column(view, tmp_path, capsys):
    # The table and the column are named, with the URL (no password) and a did-you-mean.
    err = _tune_fails(
        capsys, tmp_path, "--data", view.url, "--table", "vw_ticker_timeserie", "--ticker", "AAA"
    )
    assert 'no such table or view: relation "vw_ticker_timeserie" does not exist' in err
    assert _password(view.url) not in err and ":***@" in err
    err = _tune_fails(
        capsys,
        tmp_path,
        "--data",
        view.url,
        "--table",
        VIEW,
        "--ticker",
        "AAA",
        "--set",
        "f_cols=close,vwop",
    )
    assert "vwop" in err and VIEW in err


def test_wrong_password_is_one_line(view, tmp_path, capsys):
    # A wrong password: the server's refusal, the URL without the password.
    wrong = view.url.replace(f":{_password(view.url)}@", ":not-the-password@")
    err = _tune_fails(capsys, tmp_path, "--data", wrong, "--table", VIEW, "--ticker", "AAA")
    assert "password authentication failed" in err and "not-the-password" not in err


def test_unreachable_host_fails_within_seconds(tmp_path, capsys):
    # Nothing listening, or a listener that never answers: a clear line after the connect
    # timeout, not a hang.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    err = _tune_fails(
        capsys, tmp_path, "--data", f"postgresql://u:pw@127.0.0.1:{port}/db", "--table", VIEW
    )
    assert "cannot connect" in err and "Connection refused" in err
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        start = time.perf_counter()
        err = _tune_fails(
            capsys, tmp_path, "--data", f"postgresql://u:pw@127.0.0.1:{port}/db", "--table", VIEW
        )
        waited = time.perf_counter() - start
    assert "cannot connect" in err and "timeout expired" in err
    assert (
        trainables.bars.database.CONNECT_TIMEOUT_S - 1
        <= waited
        < 3 * trainables.bars.database.CONNECT_TIMEOUT_S
    )


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM ticker_bars RETURNING *",
        "WITH d AS (DELETE FROM ticker_bars RETURNING *) SELECT * FROM d",
        "SELECT *, nextval('bar_ids') FROM vw_ticker_timeseries",
        "SELECT *, sneaky_insert() FROM vw_ticker_timeseries",
        "SELECT * FROM vw_ticker_timeseries; DROP TABLE ticker_bars",
        "SELECT *, set_config('transaction_read_only', 'off', true) FROM vw_ticker_timeseries",
    ],
)
def test_a_query_that_writes_is_refused_and_changes_nothing(view, tmp_path, capsys, query):
    # The query runs as a subquery in a READ ONLY transaction: any write is refused, and the
    # table, the sequence and the function's target are untouched.
    view.execute(
        "CREATE SEQUENCE bar_ids",
        "CREATE TABLE audit (n int)",
        "CREATE FUNCTION sneaky_insert() RETURNS int LANGUAGE sql AS "
        "'INSERT INTO audit VALUES (1) RETURNING n'",
    )
    before = view.table_digest()
    err = _tune_fails(capsys, tmp_path, "--data", view.url, "--query", query, "--ticker", "AAA")
    assert "query" in err
    assert view.table_digest() == before
    assert view.rows("SELECT last_value, is_called FROM bar_ids")[0] == (1, False)
    assert view.rows("SELECT count(*) FROM audit")[0][0] == 0


def test_statement_timeout_stops_a_runaway_query(view, monkeypatch):
    # A query running past the statement timeout is cancelled by the server, in one line.
    monkeypatch.setattr(trainables.bars.database, "STATEMENT_TIMEOUT_S", 1)
    slow = "SELECT *, pg_sleep(0.01) AS nap FROM vw_ticker_timeseries"
    with pytest.raises(DataError, match="ran longer than the 1 s statement timeout"):
        read_bars(BarSource(data=view.url, query=slow, ticker="AAA", columns=()))


def test_a_long_query_says_it_is_waiting_and_how_long_it_may_run(view, monkeypatch, capsys):
    # A query still running after WAIT_NOTICE_S says so on stderr, with the statement timeout
    # (it printed nothing for minutes); a fast one says nothing.
    monkeypatch.setattr(trainables.bars.database, "WAIT_NOTICE_S", 1)
    slow = "SELECT *, pg_sleep(0.01) AS nap FROM vw_ticker_timeseries"
    bars = read_bars(BarSource(data=view.url, query=slow, ticker="AAA", columns=()))
    assert len(bars) == 300
    err = capsys.readouterr().err
    assert "waiting for the database: the query has run 1 s; the server stops it at the " in err
    assert f"{trainables.bars.database.STATEMENT_TIMEOUT_S} s statement timeout" in err
    assert _password(view.url) not in err
    read_bars(BarSource(data=view.url, table=VIEW, ticker="AAA", columns=()))
    assert "waiting" not in capsys.readouterr().err
