"""``--bars N``: the length of the built-in generated data (issue #19's power question: a
longer series gives a longer test part). It is a deciding setting: sweep.json records it,
promotion rebuilds the same bars from it, and --resume refuses to change it."""

from __future__ import annotations

import json

import pytest

from orchestrator.tune import main as tune_main
from orchestrator.tune import parse_args


def test_bars_reaches_the_sweep_spec_and_wins_over_the_smoke_test():
    assert parse_args([]).n_bars == 4000
    assert parse_args(["--bars", "6000"]).n_bars == 6000
    assert parse_args(["--smoke-test"]).n_bars == 1200
    assert parse_args(["--smoke-test", "--bars", "1500"]).n_bars == 1500


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bars", "50"], "error: --bars must be an integer in [100, 2,000,000] (hourly bars from 2020 stay within pandas' dates), but got 50"),
        (["--bars", "ten"], "argument --bars: invalid int value: 'ten'"),
        (["--bars", "6000", "--data", "bars.csv"], "error: --bars sets the length of the built-in"),
        (["--bars", "6000", "--data-env", "DB", "--table", "t"], "with --data-env the bars are"),
        # hourly bars from 2020 leave pandas' dates after 2,123,760 (was a traceback)
        (["--bars", "3000000"], "error: --bars must be an integer in [100, 2,000,000]"),
        # too short for the folds: the message says how many bars would do
        (["--smoke-test", "--bars", "150"], "need at least 529; --bars 529 makes enough"),
    ],
)
def test_bad_bars_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, args, needle):
    code = tune_main([*args, "--results-dir", str(tmp_path / "r"), "--no-dashboard"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_sweep_on_longer_built_in_data_records_it_and_resume_keeps_it(capsys, tmp_path):
    common = ["--name", "b", "--results-dir", str(tmp_path / "r"), "--no-dashboard"]
    run = ["--smoke-test", "--bars", "1500", "--trials", "1", "--num-cpus", "2", *common]
    assert tune_main(run) == 0
    out = capsys.readouterr().out
    assert "built-in data: 1,500 bars -> " in out  # the data line says what was generated
    record = json.loads((tmp_path / "r" / "b" / "sweep.json").read_text())
    assert record["n_bars"] == 1500
    # The test part starts where a 1,500-bar series puts it (15% of the rows at the end).
    assert 1200 < record["test_first_row"] < 1500 * 0.86
    # --resume may not change the data under a sweep ...
    assert tune_main(["--resume", "--bars", "4000", *common]) == 2
    err = capsys.readouterr().err
    assert "--bars was 1500, not 4000; drop --bars" in err, err
    # ... nor swap the built-in data for a file (the message names what was recorded)
    assert tune_main(["--resume", "--data", "bars.csv", *common]) == 2
    assert "--data was not given (the built-in data, 1,500 bars), not 'bars.csv'" in (
        capsys.readouterr().err
    )
    # ... and without --bars it goes on with the recorded length (here: nothing left to do)
    assert tune_main(["--resume", *common]) == 0
    assert json.loads((tmp_path / "r" / "b" / "sweep.json").read_text())["n_bars"] == 1500
