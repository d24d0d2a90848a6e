"""What the terminal says at the edges of a sweep: data too short for the folds (and what
would fit), the summary's last lines. No Ray: the data checks run before it starts, and
print_summary is fed an outcome as run_sweep builds it."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestrator.sweep.prepare import prepare_sweep_data
from orchestrator.sweep.results import SweepOutcome, print_summary
from orchestrator.sweep.spaces import load_space
from orchestrator.sweep.spec import SweepSpec, base_config, longest_sequence
from orchestrator.tune import main as tune_main
from trainables.bars.synthetic import make_bars
from trainables.errors import DataError


def _prepare(bars: pd.DataFrame, space: str, folds: int):
    spec = SweepSpec(space=space, folds=folds)
    loaded = load_space(space)
    base = base_config(spec, loaded)
    return prepare_sweep_data(
        base,
        data=None,
        ticker=None,
        cv="walk-forward",
        n_splits=folds,
        sequence_length_max=longest_sequence(loaded, base),
        bars=bars,
        source="bars.csv",
    )


def test_monthly_bars_too_few_for_the_folds_say_how_many_are_needed(tmp_path, capsys):
    # Rule: 156 monthly bars: one line, exit 2, with the bars the settings need (and the
    # fewest any shipped setting needs), before anything is written.
    data = tmp_path / "monthly.csv"
    make_bars(156, freq="MS").to_csv(data)
    results = tmp_path / "results"
    code = tune_main(["--data", str(data), "--space", "cpu", "--results-dir", str(results)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: {data}: 156 bars are too few for 5 walk-forward folds")
    assert "need at least " in err[0] and "even --space smoke --folds 2 needs " in err[0]
    assert not results.exists()


def _needed(message: str) -> int:
    return int(message.split("need at least ")[1].split(";")[0].replace(",", ""))


@pytest.mark.parametrize(("space", "folds"), [("cpu", 5), ("smoke", 2)])
def test_the_number_of_bars_said_to_be_needed_is_exact(space, folds):
    # Rule: "need at least N": N bars give the folds, N - 1 do not.
    with pytest.raises(DataError) as err:
        _prepare(make_bars(300, freq="MS"), space, folds)
    need = _needed(str(err.value))
    _prepare(make_bars(need, freq="MS"), space, folds)
    with pytest.raises(DataError, match=f"{need - 1:,} bars are too few"):
        _prepare(make_bars(need - 1, freq="MS"), space, folds)


def test_the_suggested_flags_fit_the_file():
    # Rule: a file too short for the default settings but long enough for fewer folds or the
    # smoke space's shorter windows gets a "try ..." that works, said once.
    bars = make_bars(700, freq="MS")
    with pytest.raises(DataError) as err:
        _prepare(bars, "cpu", 5)
    message = str(err.value)
    assert message.count("try ") == 1 and "use fewer" not in message
    flags = message.split("try ")[1].split(" (needs")[0].split()
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    _prepare(bars, given.get("--space", "cpu"), int(given["--folds"]))


def test_a_tiny_smoke_file_gives_its_fix_once(tmp_path, capsys):
    # Rule: the smoke sweep on 100 bars: one line, its numbers once, no doubled advice.
    data = tmp_path / "short.csv"
    make_bars(100, freq="MS").to_csv(data)
    assert tune_main(["--data", str(data), "--smoke-test", "--results-dir", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.count("need at least") == 1 and "use fewer" not in line
    assert "2 walk-forward folds with sequence_length=16" in line


def test_the_summary_lists_optuna_db_and_no_dashboard_of_a_closed_ray(tmp_path):
    # Rule: Results names optuna.db with the other files; the sweep's own Ray has shut down,
    # so its dashboard URL is not printed, and the line says how to keep one.
    out = tmp_path / "results" / "s"
    out.mkdir(parents=True)
    (out / "optuna.db").write_bytes(b"")
    files = {"sweep.json": out / "sweep.json", "tune": out / "tune"}
    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    outcome = SweepOutcome("s", out, pd.DataFrame(), None, files, "http://127.0.0.1:8265", uri)
    outcome.ray_closed, outcome.experiment_id = True, "7"
    lines: list[str] = []
    print_summary(outcome, "mse_ratio", "min", lines.append)
    results = next(line for line in lines if line.startswith("Results: "))
    assert results == f"Results: {out}/ (optuna.db, sweep.json)"
    assert not any("8265" in line for line in lines)
    # MLflow 3's UI opens on a GenAI overview: the line links straight to the runs
    mlflow = next(line for line in lines if line.startswith("MLflow: "))
    assert mlflow.endswith(", then http://127.0.0.1:5000/#/experiments/7/runs")
    assert "python -m orchestrator.cluster start" in lines[-1]
    outcome.ray_closed = False  # attached to a cluster: its dashboard is still there
    lines.clear()
    print_summary(outcome, "mse_ratio", "min", lines.append)
    assert lines[-1] == "Ray dashboard: http://127.0.0.1:8265"
