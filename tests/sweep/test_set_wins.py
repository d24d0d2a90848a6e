"""``--set`` of a parameter the space samples wins (#21 defect 3): the parameter leaves the
sampled space, the first line says so, sweep.json records it, every trial trains with the
value; it was silently ignored (trials trained with the sampled values)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tune import main as tune_main


def test_set_of_a_sampled_parameter_wins_is_said_first_and_recorded(tmp_path):
    lines: list[str] = []
    spec = SweepSpec(
        space="smoke",  # samples sequence_length among [8, 16]
        trials=2,
        folds=2,
        epochs=1,
        n_bars=1000,
        num_cpus=2,
        dashboard=False,
        scheduler="none",
        max_concurrent=1,
        results_dir=str(tmp_path / "r"),
        name="w",
        overrides={"sequence_length": 12},
    )
    out = run_sweep(spec, log=lines.append)
    assert lines[0].startswith("--set sequence_length=12 wins over space smoke: fixed for every")
    assert lines[1].startswith("Sweep 'w': space smoke (5 params)")
    record = json.loads((out.out_dir / "sweep.json").read_text())
    assert record["set_wins"] == ["sequence_length"]
    assert "sequence_length" not in record["space_definition"]["params"]
    assert record["overrides"] == {"sequence_length": 12}
    board = read_leaderboard(out.out_dir)
    assert "param_sequence_length" not in board.columns and len(board) == 2
    assert yaml.safe_load((out.out_dir / "best_config.yaml").read_text())["sequence_length"] == 12
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{out.out_dir / 'optuna.db'}")
    assert all("sequence_length" not in t.params for t in study.trials)
    # --resume goes on with the same, smaller space
    again = run_sweep(SweepSpec(**{**spec.__dict__, "resume": True}), log=lambda *_: None)
    assert again.already_finished


def test_set_that_leaves_the_data_too_short_fails_before_any_work(tmp_path, capsys):
    code = tune_main(
        ["--smoke-test", "--set", "sequence_length=100000", "--results-dir", str(tmp_path / "r")]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.startswith("--set sequence_length=100000 wins over space smoke")
    assert "too few for 2 walk-forward folds with sequence_length=100000" in captured.err
    assert captured.err.count("\n") == 1
    # --set fixes the window in every space: the smoke space is no way out, a shorter --set is
    assert "--space smoke" not in captured.err and "a shorter one" in captured.err
    assert not (tmp_path / "r").exists()


def test_set_of_every_sampled_parameter_is_refused(tmp_path, capsys):
    space = tmp_path / "one.yaml"
    space.write_text(
        "# python -m orchestrator.tune --space one.yaml\nname: one\n"
        "params:\n  hidden_size: {type: categorical, choices: [8, 16]}\n"
    )
    code = tune_main(
        ["--space", str(space), "--set", "hidden_size=8", "--results-dir", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "fixes every parameter space 'one' samples" in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "setting",
    [
        "cell=" + "x" * 100_000,
        "hidden_size=" + "9" * 100_000,
        "learning_rate=[" + "1," * 50_000 + "]",
        "learning_rate=" + "{" * 5_000,  # was a RecursionError traceback
        "k" * 100_000,
        "k" * 100_000 + "=1",
    ],
)
def test_set_errors_cut_long_values(tmp_path, capsys, setting):
    # Rule: a --set error quotes at most 80 characters of what was typed, in one line.
    code = tune_main(["--smoke-test", "--set", setting, "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and len(err) < 300, err[:300]
    assert "…" in err
    assert list(Path(tmp_path).iterdir()) == []


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_a_bad_value_of_a_sampled_parameter_is_only_the_error(value, tmp_path, capsys):
    # The cpu space samples learning_rate: a bad --set value used to print "--set ... wins
    # over space cpu" first (as if it were taken), then the error.
    code = tune_main(
        ["--set", f"learning_rate={value}", "--results-dir", str(tmp_path / "r"), "--no-dashboard"]
    )
    captured = capsys.readouterr()
    assert code == 2 and "wins over" not in captured.out, captured.out
    assert captured.err.startswith("error: learning_rate must be") and captured.err.count("\n") == 1
    assert not (tmp_path / "r").exists()
