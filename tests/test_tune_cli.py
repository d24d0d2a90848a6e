"""The sweep CLI: bad input is one line on stderr and exit code 2, with nothing left behind."""

from __future__ import annotations

import pytest

from orchestrator.tune import main, parse_args, promote_spec
from trainables.bars.synthetic import make_bars


def run_cli(capsys, tmp_path, *args: str) -> tuple[int, str]:
    code = main([*args, "--results-dir", str(tmp_path / "results"), "--no-dashboard"])
    return code, capsys.readouterr().err


def test_misspelt_column_names_file_and_column_and_exits_2(capsys, tmp_path):
    # A file with a misspelt 'close' column stops before Ray starts, naming file and column.
    bad = tmp_path / "bars.csv"
    bad.write_text("timestamp,open,high,low,clsoe,volume\n2024-01-01,1,2,0.5,1.5,100\n")
    code, err = run_cli(capsys, tmp_path, "--data", str(bad), "--name", "x")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "bars.csv" in lines[0] and "close" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "results" / "x").exists()  # nothing half-written


def test_missing_data_file_exits_2(capsys, tmp_path):
    # A path that does not exist is named in the one error line.
    code, err = run_cli(capsys, tmp_path, "--data", str(tmp_path / "nope.parquet"))
    assert code == 2 and "nope.parquet" in err


def test_unknown_space_lists_the_available_ones(capsys, tmp_path):
    # --space with a typo lists the spaces that exist.
    code, err = run_cli(capsys, tmp_path, "--space", "qiuck")
    assert code == 2 and "qiuck" in err and "quick" in err and "daily" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--folds", "1"], "--folds must be >= 2, but got 1"),
        (["--trials", "0"], "--trials must be >= 1, but got 0"),
        (["--race-margin", "1.5"], "--race-margin must be in [0, 1) (0 = off), but got 1.5"),
        (["--resume"], "--resume needs --name"),
        (["--set", "dropout=1.5", "--smoke-test"], "dropout"),
        (["--set", "hiden_size=64"], "hidden_size"),  # did-you-mean for a misspelt key
    ],
)
def test_bad_settings_exit_2_with_the_numbers(capsys, tmp_path, args, needle):
    # Out-of-range settings are refused up front with the value in the message.
    code, err = run_cli(capsys, tmp_path, *args)
    assert code == 2 and needle in err


def test_smoke_test_shrinks_the_sweep():
    # --smoke-test shrinks what the user did not set: space, trials, folds, epochs, data.
    spec = parse_args(["--smoke-test", "--seed", "7"])
    assert (spec.space, spec.trials, spec.folds, spec.epochs, spec.seed) == ("smoke", 4, 2, 2, 7)
    assert spec.n_bars == 1200 and spec.smoke_test
    # ... and what the user typed wins
    assert parse_args(["--smoke-test", "--trials", "50"]).trials == 50


def test_set_types_values_from_the_training_config():
    # --set key=value reads numbers, booleans and lists the way a user writes them.
    spec = parse_args(
        [
            "--set",
            "horizon=5",
            "--set",
            "f_cols=close,volume",
            "--set",
            "bidirectional=true",
            "--set",
            "learning_rate=1e-3",
        ]
    )
    assert spec.overrides == {
        "horizon": 5,
        "f_cols": ["close", "volume"],
        "bidirectional": True,
        "learning_rate": 1e-3,
    }


@pytest.mark.parametrize(("gpu", "space", "share"), [(False, "cpu", 0.0), (True, "gpu", 0.25)])
def test_space_auto_fits_the_machine(monkeypatch, gpu, space, share):
    # The bare command picks the CPU-sized space without a CUDA GPU and the GPU-sized one
    # (batch_size auto, a quarter GPU per trial) with one; the choice names the sweep.
    import orchestrator.sweep.spec as sweep

    monkeypatch.setattr(sweep, "cuda_available", lambda: gpu)
    spec = parse_args(["--trials", "50"])
    assert (spec.space, spec.space_auto, spec.gpus_per_trial) == (space, True, share)
    assert spec.name.startswith(f"{space}-")
    note = sweep.space_note(spec)
    assert note.startswith(f"Space {space}, picked by --space auto")
    assert ("--space gpu" if space == "cpu" else "--space cpu") in note
    # an explicit choice is kept as it is
    assert parse_args(["--space", "quick"]).space == "quick"


def test_time_budget_reads_durations():
    from orchestrator.tune import parse_duration

    assert [parse_duration(t) for t in ("30m", "2h", "1h30m", "90", "45s")] == [
        1800.0,
        7200.0,
        5400.0,
        90.0,
        45.0,
    ]
    for bad in ("", "soon", "5x", "-3m"):
        with pytest.raises(Exception, match="--time-budget takes a duration"):
            parse_duration(bad)


def test_promotion_cost_flag_reaches_the_promotion_and_is_checked_first(capsys, tmp_path):
    # --cost-bps goes to the promotion (default 1 bp); a negative cost stops before the sweep.
    spec = parse_args(["--promote", "--cost-bps", "5"])
    assert promote_spec(["--promote", "--cost-bps", "5"], spec).cost_bps == 5.0
    assert promote_spec(["--promote"], parse_args(["--promote"])).cost_bps == 1.0
    code, err = run_cli(capsys, tmp_path, "--promote", "--cost-bps", "-1", "--name", "x")
    assert code == 2 and "--cost-bps must be a number >= 0" in err
    assert not (tmp_path / "results" / "x").exists()


def test_set_without_equals_is_one_line(capsys, tmp_path):
    # --set epochs (no '=') is one line, not argparse's whole usage text.
    code, err = run_cli(capsys, tmp_path, "--set", "epochs")
    assert code == 2
    assert err.strip() == (
        "error: argument --set: takes KEY=VALUE (e.g. --set epochs=20), not 'epochs'"
    )


def test_unknown_flag_is_one_line(capsys, tmp_path):
    # A misspelt flag is one line too.
    code, err = run_cli(capsys, tmp_path, "--trails", "5")
    assert code == 2 and err.strip() == "error: unrecognized arguments: --trails 5"


def test_absurd_value_stops_the_sweep_before_ray_starts(capsys, tmp_path):
    # A close of 1e300 (which used to start Ray, fail every trial and exit 0) is one line
    # naming the file and its row, and no sweep folder appears.
    bars = make_bars(1200)
    bars.iloc[600, bars.columns.get_loc("close")] = 1e300
    path = tmp_path / "huge.csv"
    bars.to_csv(path)
    code, err = run_cli(capsys, tmp_path, "--data", str(path), "--smoke-test", "--name", "x")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: column 'close' jumps from")
    assert "at row 600 (2020-01-26 00:00:00)" in lines[0]
    assert not (tmp_path / "results").exists()


def test_data_flags_reach_the_sweep_spec():
    # --timezone, --dst and --max-jump are SweepSpec fields, so sweep.json records them.
    spec = parse_args(["--timezone", "America/New_York", "--dst", "infer", "--max-jump", "3"])
    assert (spec.timezone, spec.dst, spec.max_jump) == ("America/New_York", "infer", 3.0)
    assert parse_args([]).max_jump == 2.0


def test_reading_a_sweep_needs_no_ray():
    # Promotion's holdout, the report and a sweep's record are read without importing Ray.
    import subprocess
    import sys

    code = (
        "import sys; import orchestrator.promotion.holdout, orchestrator.report, orchestrator.sweep.spec, "
        "orchestrator.records.sweep_record; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_flag_has_help_with_its_default():
    # --help documents every flag; a flag that takes a value says its default in words
    # (argparse's own "(default: None)" / "(default: True)" never appears)
    from orchestrator.tune import build_parser

    parser = build_parser()
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: True)" not in text
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        if action.nargs != 0:  # takes a value
            assert "default" in action.help, f"{action.option_strings}: no default in its help"


def test_no_dashboard_reaches_the_sweep_spec():
    # Rule: --no-dashboard starts a local Ray without its dashboard (the flag used to be
    # dropped with the flags left out, so the dashboard started anyway); default: with it.
    assert parse_args(["--smoke-test"]).dashboard is True
    assert parse_args(["--smoke-test", "--no-dashboard"]).dashboard is False
