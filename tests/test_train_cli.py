"""python -m trainables.train: one run end to end, settings precedence, clean failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import trainables.train as train_cli
from trainables.artifacts import FILES
from trainables.errors import OrchestratorError
from trainables.synthetic import make_bars

TINY = [
    "--hidden_size",
    "8",
    "--num_layers",
    "1",
    "--seq_len",
    "8",
    "--epochs",
    "2",
    "--batch_size",
    "128",
]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bars_csv(tmp_path):
    path = tmp_path / "bars.csv"
    make_bars(600).to_csv(path)
    return path


@pytest.mark.parametrize("preset", ["guide", "parameters"])
def test_cli_writes_every_artifact(preset, tmp_path, capsys):
    # Rule: a run on the built-in data prints the users' epoch lines and writes all five files.
    out = tmp_path / "run"
    assert train_cli.main(["--preset", preset, *TINY, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    stdout = capsys.readouterr().out
    assert "Epoch 1/2 - Train Loss: " in stdout and "Test: " in stdout
    assert f"Artifacts: {out}/" in stdout


def test_config_file_then_flags(tmp_path, bars_csv, capsys):
    # Rule: preset < --config file < --name value flags; --data reads the user's bars.
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(
        json.dumps({"hidden_size": 12, "max_epochs": 1, "f_cols": ["close", "volume"]})
    )
    out = tmp_path / "run"
    argv = [
        "--data",
        str(bars_csv),
        "--config",
        str(cfg_file),
        "--epochs",
        "2",
        "--seq-len",
        "8",
        "--out",
        str(out),
    ]
    assert train_cli.main(argv) == 0
    saved = json.loads((out / "config.json").read_text())["train_config"]
    assert (saved["hidden_size"], saved["epochs"], saved["sequence_length"]) == (12, 2, 8)
    assert saved["f_cols"] == ["close", "volume"]
    assert str(bars_csv) in capsys.readouterr().out


def test_bad_flag_value_exits_2_with_one_line(tmp_path):
    # Rule: a user error is one line on stderr, exit code 2, no traceback, no output directory.
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "trainables.train", "--dropout", "1.5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: dropout must be in [0, 1), but got dropout=1.5"
    ]
    assert not out.exists()


def test_unknown_flag_suggests_a_name(capsys):
    # Rule: a misspelt parameter names the closest real one.
    assert train_cli.main(["--hiden_size", "8"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: unknown training parameter 'hiden_size'; did you mean 'hidden_size'?"
    )


def test_existing_output_directory_is_refused(tmp_path, capsys):
    # Rule: a run never writes into an existing directory.
    (tmp_path / "run").mkdir()
    assert train_cli.main([*TINY, "--out", str(tmp_path / "run")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_failed_save_leaves_no_directory(tmp_path, monkeypatch, capsys):
    # Rule: a failure while writing leaves neither the run directory nor a partial one.
    real = train_cli.save_run

    def fails_half_way(out_dir, **kwargs):  # injected fault: files written, then an error
        real(out_dir, **kwargs)
        raise OrchestratorError("disk full")

    monkeypatch.setattr(train_cli, "save_run", fails_half_way)
    assert train_cli.main([*TINY, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == "error: disk full"
    assert list(tmp_path.iterdir()) == []
