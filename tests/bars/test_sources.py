"""Bars from a database without a server: SQLite files, URLs, flags and their errors.

The PostgreSQL side, with a real server, is tests/bars/test_postgres.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.promotion.holdout import load_holdout
from orchestrator.sweep.data_source import data_record, load_sweep_bars, write_snapshot
from orchestrator.sweep.run import SweepSpec, base_config
from orchestrator.sweep.spaces import load_space
from orchestrator.tune import main as tune_main
from tests.bars_db import VIEW, one_ticker, sqlite_view, users_bars
from trainables.bars.files import bars_fingerprint, load_bars
from trainables.bars.sources import BarSource, public_url, read_bars
from trainables.errors import ConfigError, DataError

TICKERS = {"AAA": 0, "BBB": 1, "CCC": 2}


@pytest.fixture
def frame() -> pd.DataFrame:
    return users_bars(TICKERS, 300)


@pytest.fixture
def db(tmp_path, frame) -> str:
    """sqlite:///.../bars.db holding the users' view of three tickers."""
    return sqlite_view(tmp_path / "bars.db", frame)


def _digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


def test_sqlite_view_reads_as_the_same_bars_as_a_file(db, frame, write_bars):
    # A ticker's rows from the view are the bars a Parquet file of them gives, to the hash.
    got = read_bars(BarSource(data=db, table=VIEW, ticker="BBB", columns=()))
    want = load_bars(write_bars(one_ticker(frame, "BBB"), "b.parquet"))
    assert bars_fingerprint(got) == bars_fingerprint(want.tz_localize(None))
    assert list(got.columns) == ["open", "high", "low", "close", "volume"]


def test_only_the_columns_the_run_needs_are_read(db, frame):
    # vwap is read when the run names it, and left out (with every other extra) when not.
    assert "vwap" not in read_bars(BarSource(data=db, table=VIEW, ticker="AAA", columns=()))
    both = read_bars(BarSource(data=db, table=VIEW, ticker="AAA", columns=("vwap",)))
    assert list(both.columns) == ["open", "high", "low", "close", "volume", "vwap"]
    assert both["vwap"].to_numpy() == pytest.approx(one_ticker(frame, "AAA", ["vwap"])["vwap"])


def test_a_ticker_in_another_case_is_the_same_ticker(db):
    # "bbb" finds BBB's rows, as in a file (a unique case-insensitive match).
    got = read_bars(BarSource(data=db, table=VIEW, ticker="bbb", columns=()))
    assert bars_fingerprint(got) == bars_fingerprint(
        read_bars(BarSource(data=db, table=VIEW, ticker="BBB", columns=()))
    )


def test_start_and_end_are_inclusive(db):
    # --start/--end keep the bars from start to end, both included.
    bars = read_bars(
        BarSource(
            data=db, table=VIEW, ticker="CCC", columns=(), start="2020-01-03", end="2020-01-04"
        )
    )
    assert bars.index[0] == pd.Timestamp("2020-01-03") and bars.index[-1] == pd.Timestamp(
        "2020-01-04"
    )
    assert len(bars) == 25


def test_query_reads_its_result_and_needs_a_ticker_column_for_ticker(db):
    # A --query's result is read like a table; --ticker needs a ticker column in it.
    query = f"SELECT * FROM {VIEW} WHERE ticker = 'AAA' AND volume > 0;"
    assert len(read_bars(BarSource(data=db, query=query, columns=()))) == 300
    no_ticker = 'SELECT "timestamp", open, high, low, close, volume FROM vw_ticker_timeseries'
    with pytest.raises(DataError, match=r"--ticker 'AAA' needs a ticker column in the query's"):
        read_bars(BarSource(data=db, query=no_ticker, ticker="AAA"))


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM ticker_bars",
        "SELECT 1; DROP TABLE ticker_bars",
        "WITH d AS (DELETE FROM ticker_bars RETURNING *) SELECT * FROM d",
        "INSERT INTO ticker_bars SELECT * FROM ticker_bars",
        "SELECT * FROM vw_ticker_timeseries, pragma_table_info('ticker_bars')",
    ],
)
def test_a_query_that_writes_is_refused_and_changes_nothing(db, query):
    # Only reading gets through (a subquery, mode=ro, an authorizer); the file is unchanged.
    before = _digest(db)
    with pytest.raises(DataError) as err:
        read_bars(BarSource(data=db, query=query, ticker="AAA"))
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{db} query")
    assert _digest(db) == before


def test_bad_sources_name_the_database_table_and_column(db, tmp_path):
    # Each mistake is one DataError/ConfigError naming what to fix.
    cases = [
        (dict(data=db, table="vw_tickr_timeseries"), "no such table or view"),
        (
            dict(data=db, table=VIEW, ticker="AAA", columns=("vwapp",)),
            "no column 'vwapp' (did you mean 'vwap'?)",
        ),
        (dict(data=db, table=VIEW, ticker="ZZZ"), "ticker 'ZZZ' is not in column 'ticker'"),
        (
            dict(data=db, table=VIEW),
            "holds 3 tickers ['AAA', 'BBB', 'CCC']; pick one with --ticker",
        ),
        (dict(data=f"sqlite:///{tmp_path}/nope.db", table=VIEW), "no such file"),
        (dict(data=db, table=VIEW, ticker="AAA", start="2031-01-01"), "no rows"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(DataError, match="^" + db.split("/bars.db")[0][:10]) as err:
            read_bars(BarSource(**kwargs))
        assert needle in str(err.value), (kwargs, str(err.value))
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(data="bars.csv", table=VIEW), "--table reads from a database"),
        (dict(data="sqlite:///x.db"), "say what to read with --table NAME"),
        (dict(data="sqlite:///x.db", table="a", query="SELECT 1"), "--table or --query, not both"),
        (dict(data="x.db", data_env="DB"), "--data or --data-env, not both"),
        (dict(data="x.csv", start="yesterday-ish"), "--start 'yesterday-ish': not a time"),
        (dict(data="x.csv", start="2021-01-02", end="2021-01-01"), "is after --end"),
        (dict(start="2021-01-01"), "--start/--end cut your data"),
    ],
)
def test_flags_that_do_not_fit_together_are_refused_up_front(kwargs, needle):
    # Inconsistent flags fail when the source is described, before anything is read.
    with pytest.raises(ConfigError, match=None) as err:
        BarSource(**kwargs)
    assert needle in str(err.value)


def test_table_names_are_checked_not_pasted(db):
    # --table is an identifier (optionally schema.name), never SQL.
    for name in ("ticker_bars; DROP TABLE ticker_bars", "a b", "x.y.z", '"'):
        with pytest.raises(ConfigError, match="not a table name"):
            read_bars(BarSource(data=db, table=name, ticker="AAA"))
    assert (
        len(read_bars(BarSource(data=db, table=f'main."{VIEW}"', ticker="AAA", columns=()))) == 300
    )


def test_unsupported_database_is_named():
    # Only PostgreSQL and SQLite URLs are read; the message says which ones work.
    with pytest.raises(ConfigError, match=r"unsupported database 'mysql'.*postgresql://"):
        read_bars(BarSource(data="mysql://u:pw@h/db", table="t"))


def test_public_url_never_shows_a_password():
    # The password is masked for messages and left out of records, wherever the URL has it.
    url = "postgresql://bot:s3cr%40t@db.example:5432/market?password=other&sslmode=require"
    shown, kept = public_url(url), public_url(url, mask=False)
    for text in (shown, kept):
        assert "s3cr" not in text and "other" not in text
        assert "bot@db.example:5432/market" in text.replace(":***@", "@")
    assert ":***@" in shown and "sslmode=require" in kept
    assert kept == "postgresql://bot@db.example:5432/market?sslmode=require"
    assert public_url("bars.csv") == "bars.csv"


def test_data_env_reads_the_url_from_the_environment(db, monkeypatch):
    # --data-env names a variable; its value is the URL; an unset variable is one clear error.
    monkeypatch.setenv("BARS_DB", db)
    source = BarSource(data_env="BARS_DB", table=VIEW, ticker="AAA", columns=())
    assert len(read_bars(source)) == 300 and "(from $BARS_DB)" in source.describe()
    monkeypatch.delenv("BARS_DB")
    with pytest.raises(
        ConfigError, match=r"--data-env BARS_DB: the environment variable is not set"
    ):
        read_bars(source)


def test_data_env_holding_no_url_is_one_line_that_hides_the_value(monkeypatch, capsys, tmp_path):
    # A variable holding something else (here: what looks like a bare password) used to crash
    # with an AttributeError traceback; now one line that never shows the value, exit 2.
    from orchestrator.tune import main as tune_main

    monkeypatch.setenv("BARS_DB", "s3cret-pw")
    source = BarSource(data_env="BARS_DB", table=VIEW)
    assert source.describe() == f"$BARS_DB table {VIEW}"
    with pytest.raises(ConfigError, match=r"^--data-env BARS_DB: its value is not a database URL"):
        read_bars(source)
    results = tmp_path / "r"
    flags = ["--data-env", "BARS_DB", "--table", VIEW, "--results-dir", str(results)]
    for extra in ([], ["--tickers", "all"]):  # one ticker's bars, and a universe's
        assert tune_main([*flags, *extra, "--no-dashboard"]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("error: --data-env BARS_DB: its value is not a database URL")
        assert captured.err.count("\n") == 1 and "s3cret" not in captured.out + captured.err
    assert not results.exists()


def test_files_take_start_and_end_too(write_bars, bars):
    # The time range cuts a file's bars the same way.
    path = write_bars(bars, "bars.csv")
    cut = read_bars(BarSource(data=str(path), start=str(bars.index[10]), end=str(bars.index[19])))
    assert len(cut) == 10 and cut.index[0] == bars.index[10]


def test_bad_value_names_the_column_and_the_row_timestamp(tmp_path, frame):
    # A NULL close is a NaN in the checks of a file: column, row and timestamp in the message.
    frame.loc[(frame.ticker == "BBB") & (frame.index % 300 == 7), "close"] = None
    db = sqlite_view(tmp_path / "nan.db", frame)
    with pytest.raises(
        DataError,
        match=r"column 'close' has 1 NaN/inf value\(s\), first at row 7 \(2020-01-01 07:00:00\)",
    ):
        read_bars(BarSource(data=db, table=VIEW, ticker="BBB"))
    # Another ticker's bad row is never read.
    assert len(read_bars(BarSource(data=db, table=VIEW, ticker="AAA", columns=()))) == 300


def test_tune_cli_with_a_missing_table_is_one_line_exit_2(db, tmp_path, capsys):
    # A database mistake stops the sweep before Ray starts, with nothing written.
    code = tune_main(
        [
            "--data",
            db,
            "--table",
            "bars",
            "--ticker",
            "AAA",
            "--name",
            "x",
            "--results-dir",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no such table or view" in err
    assert not (tmp_path / "r" / "x").exists()


# --- a sweep reads the same rows later -------------------------------------------------------


def _recorded_sweep(tmp_path: Path, db: str, *, snapshot: bool = False) -> Path:
    """results/h/sweep.json as a sweep on the view writes it (no Ray needed to promote-load)."""
    spec = SweepSpec(space="smoke", data=db, table=VIEW, ticker="AAA", folds=2, name="h")
    space = load_space(spec.space)
    bars = load_sweep_bars(spec, space, base_config(spec, space))
    out = tmp_path / "results" / "h"
    out.mkdir(parents=True)
    if snapshot:
        write_snapshot(bars, out)
    record = {**asdict(spec), **data_record(spec, bars), "snapshot": snapshot}
    (out / "sweep.json").write_text(json.dumps(record))
    return out


def _append_and_adjust(db: str, frame: pd.DataFrame, *, adjust: bool) -> None:
    """New bars for every ticker, and (adjust) a 2:1 split rewriting AAA's history."""
    import sqlite3

    path = db.removeprefix("sqlite:///")
    later = users_bars(TICKERS, 350).groupby("ticker").tail(50)
    later["bar_time"] = later.pop("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(path) as con:
        later.rename(columns={"ticker": "symbol"}).to_sql(
            "ticker_bars", con, if_exists="append", index=False
        )
        if adjust:
            con.execute(
                "UPDATE ticker_bars SET open=open/2, high=high/2, low=low/2, close=close/2 WHERE symbol='AAA'"
            )
    con.close()


def test_promotion_reads_the_sweeps_rows_after_new_bars_arrive(tmp_path, db, frame):
    # New bars after the sweep's end are not read: the same rows, the same holdout.
    out = _recorded_sweep(tmp_path, db)
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["end"] == "2020-01-13T11:00:00" and sweep["data_fingerprint"].startswith("sha256:")
    before = load_holdout(out)
    _append_and_adjust(db, frame, adjust=False)
    after = load_holdout(out)
    assert len(after.features) == len(before.features)
    assert after.test_first_row == before.test_first_row


def test_promotion_refuses_rows_that_changed_unless_the_sweep_kept_a_snapshot(tmp_path, db, frame):
    # A split adjustment rewrites history: refused in one line; a snapshot still has the rows.
    out = _recorded_sweep(tmp_path / "a", db)
    kept = _recorded_sweep(tmp_path / "b", db, snapshot=True)
    _append_and_adjust(db, frame, adjust=True)
    with pytest.raises(ConfigError, match=r"are not the ones sweep 'h' read.*--snapshot") as err:
        load_holdout(out)
    assert "\n" not in str(err.value)
    data = load_holdout(kept)
    assert data.source.startswith(str(kept / "data.parquet")) and "snapshot of" in data.source


def test_promotion_of_a_built_in_sweep_from_another_generator_says_so(tmp_path):
    # The built-in bars of an older generator (docs/data.md) hash differently: the refusal
    # names the generator, not a split adjustment of the user's data.
    spec = SweepSpec(space="smoke", folds=2, name="old", n_bars=600)
    space = load_space(spec.space)
    bars = load_sweep_bars(spec, space, base_config(spec, space))
    out = tmp_path / "results" / "old"
    out.mkdir(parents=True)
    record = {**asdict(spec), **data_record(spec, bars)}
    (out / "sweep.json").write_text(json.dumps(record))
    assert load_holdout(out).features.shape[0] > 0  # this version's bars: accepted
    (out / "sweep.json").write_text(
        json.dumps({**record, "data_fingerprint": "sha256:" + "0" * 64})
    )
    with pytest.raises(ConfigError, match=r"generator changed since the sweep ran") as err:
        load_holdout(out)
    assert "\n" not in str(err.value) and "run the sweep again" in str(err.value)


def test_data_env_is_recorded_by_name_and_resolved_again(tmp_path, db, monkeypatch):
    # sweep.json keeps the variable's name, never its value; promotion reads the variable again.
    monkeypatch.setenv("BARS_DB", db)
    spec = SweepSpec(space="smoke", data_env="BARS_DB", table=VIEW, ticker="AAA", folds=2, name="e")
    space = load_space(spec.space)
    bars = load_sweep_bars(spec, space, base_config(spec, space))
    out = tmp_path / "results" / "e"
    out.mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps({**asdict(spec), **data_record(spec, bars)}))
    text = (out / "sweep.json").read_text()
    assert '"data_env": "BARS_DB"' in text and db not in text and '"data": null' in text
    assert load_holdout(out).source == f"{db} (from $BARS_DB) table {VIEW}"
    monkeypatch.delenv("BARS_DB")
    with pytest.raises(
        ConfigError, match="--data-env BARS_DB: the environment variable is not set"
    ):
        load_holdout(out)


def test_tune_flags_reach_the_sweep_spec(db):
    # Every database flag of the CLI is a SweepSpec field, so sweep.json records it.
    from orchestrator.tune import parse_args

    spec = parse_args(
        ["--data", db, "--query", "SELECT * FROM bars", "--ticker", "A", "--start", "2020-01-02"]
        + ["--end", "2020-02-01", "--snapshot"]
    )
    assert (spec.data, spec.query, spec.start, spec.end, spec.snapshot) == (
        db,
        "SELECT * FROM bars",
        "2020-01-02",
        "2020-02-01",
        True,
    )
    assert parse_args(["--data-env", "X", "--table", "t"]).data_env == "X"


def test_train_cli_reads_a_database_table(db, tmp_path, capsys):
    # python -m trainables.train takes the same flags; its log names the source, no password.
    import trainables.train as train_cli

    out = tmp_path / "run"
    args = ["--data", db, "--table", VIEW, "--ticker", "CCC", "--end", "2020-01-12"]
    tiny = ["--hidden_size", "8", "--num_layers", "1", "--sequence_length", "8", "--epochs", "1"]
    assert train_cli.main([*args, *tiny, "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"Data: {db} table {VIEW}: 265 bars 2020-01-01 00:00:00 .. 2020-01-12 00:00:00" in log
    assert (out / "model.pt").is_file()


def test_a_relative_sqlite_file_is_recorded_absolute_so_promotion_finds_it(tmp_path, monkeypatch):
    # sqlite:///bars.db is relative to the folder the sweep ran in; it was recorded as given,
    # so promotion from another folder failed ("no such file 'bars.db'"). A data file's path
    # was already made absolute; the SQLite file now is too.
    work = tmp_path / "work"
    work.mkdir()
    sqlite_view(work / "bars.db", users_bars({"AAA": 0}, 1500))
    monkeypatch.chdir(work)
    results = tmp_path / "results"
    flags = ["--data", "sqlite:///bars.db", "--table", VIEW, "--ticker", "AAA", "--smoke-test"]
    flags += ["--trials", "1", "--name", "rel", "--results-dir", str(results)]
    assert tune_main([*flags, "--num-cpus", "2", "--no-dashboard"]) == 0
    record = json.loads((results / "rel" / "sweep.json").read_text())
    assert record["data"] == f"sqlite:///{work / 'bars.db'}"  # four slashes: an absolute path
    monkeypatch.chdir(tmp_path)  # promotion from elsewhere reads the same rows
    assert len(load_holdout(results / "rel").features) > 0
    # and a resume naming the file as at first is the same data, not a changed --data
    monkeypatch.chdir(work)
    assert tune_main(["--resume", "--name", "rel", "--results-dir", str(results), *flags[:2]]) == 0
