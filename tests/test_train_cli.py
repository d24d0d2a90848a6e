"""python -m trainables.train: one run end to end, settings precedence, clean failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import trainables.train as train_cli
from trainables.artifacts import FILES
from trainables.bars.synthetic import make_bars
from trainables.errors import UserError

TINY = [
    "--hidden_size",
    "8",
    "--num_layers",
    "1",
    "--sequence_length",
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
    # the skill is named against the naive forecast it was computed from, with that one's MSE
    test = json.loads((out / "training_metrics.json").read_text())["test_metrics"]
    if preset == "guide":  # the default target, the next log return: the training mean
        naive = f"training mean mse {test['naive_mse']:.6g} (skill {test['skill']:+.4f})"
        assert naive in stdout
    # After epoch 1, how long the rest may take; on a CPU, one line: this preset needs a GPU.
    lines = stdout.splitlines()
    first = next(k for k, line in enumerate(lines) if line.startswith("Epoch 1/2 - "))
    assert (
        lines[first + 1].startswith("Epoch 1 took ")
        and "the other 1 epochs take up to ~" in lines[first + 1]
    )
    warned = [
        line for line in lines if line.startswith(f"warning: preset {preset} is sized for a GPU")
    ]
    assert len(warned) == (0 if torch.cuda.is_available() else 1)
    assert not warned or "--preset cpu is sized for a CPU" in warned[0]


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
        raise UserError("disk full")

    monkeypatch.setattr(train_cli, "save_run", fails_half_way)
    assert train_cli.main([*TINY, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == "error: disk full"
    assert list(tmp_path.iterdir()) == []


# --- the default preset on a CPU (issue #12) ------------------------------------------------


def test_no_preset_without_cuda_is_the_cpu_preset_printed_and_recorded(
    tmp_path, monkeypatch, capsys
):
    # Rule: without --preset and without a CUDA device the run starts from 'cpu', says so
    # first, and keeps the choice in config.json.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert train_cli.main(["--epochs", "1", "--out", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        "Preset: cpu (no CUDA device here; --preset guide trains the guide's full-size model)"
    )
    info = json.loads((out / "config.json").read_text())
    assert info["origin"]["preset"] == "cpu"
    saved = info["train_config"]
    cpu = train_cli.PRESETS["cpu"]
    assert (saved["hidden_size"], saved["num_layers"], saved["sequence_length"]) == (
        cpu.hidden_size,
        cpu.num_layers,
        cpu.sequence_length,
    )


def test_no_preset_with_cuda_is_the_guide_and_an_explicit_preset_wins(monkeypatch):
    # Rule: with a CUDA device the default is the guide's model; --preset always decides.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg, opts = train_cli.build_config([])
    assert (opts.preset, cfg.hidden_size) == ("guide", 256)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg, opts = train_cli.build_config(["--preset", "parameters"])
    assert (opts.preset, opts.preset_reason, cfg.hidden_size) == ("parameters", "--preset", 64)


def test_cpu_preset_is_smaller_than_the_guide():
    # Rule: the cpu preset trains a fraction of the guide's model for fewer epochs.
    cpu, guide = train_cli.PRESETS["cpu"], train_cli.PRESETS["guide"]
    assert cpu.hidden_size * cpu.num_layers * 4 <= guide.hidden_size * guide.num_layers
    assert cpu.epochs < guide.epochs and cpu.sequence_length < guide.sequence_length


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_is_one_line_and_leaves_no_run_folder(tmp_path, sig, code):
    # Rule: Ctrl-C or SIGTERM in the middle of training prints one line, exits 128 + signal
    # and leaves neither the run folder nor a partial one.
    out = tmp_path / "results" / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "trainables.train",
            "--epochs",
            "1000",
            "--patience",
            "1000",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    try:
        for line in proc.stdout:  # wait until training is under way
            if line.startswith("Epoch 1/"):
                break
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code
    assert err.strip().splitlines() == ["interrupted: no run folder was written"]
    assert not out.exists()
    assert list(out.parent.glob("*")) == []


def test_interrupt_while_saving_leaves_no_folder(tmp_path, monkeypatch, capsys):
    # Rule: an interrupt after some files are written removes the partial folder too.
    real = train_cli.save_run

    def interrupted_half_way(out_dir, **kwargs):  # injected fault: files written, then Ctrl-C
        real(out_dir, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "save_run", interrupted_half_way)
    assert train_cli.main([*TINY, "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted: no run folder was written"
    assert list(tmp_path.iterdir()) == []


# --- bad data: one line, exit 2, no folder --------------------------------------------------


def test_absurd_close_exits_2_before_training_and_writes_nothing(tmp_path, capsys):
    # Rule: a close of 1e300 (which used to end in a TypeError after a complete-looking run
    # folder was written) is one line naming the file and its row, and no folder appears.
    bars = make_bars(600)
    bars.iloc[400, bars.columns.get_loc("close")] = 1e300
    path = tmp_path / "huge.csv"
    bars.to_csv(path)
    out = tmp_path / "run"
    assert train_cli.main(["--data", str(path), *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: column 'close' jumps from ")
    assert "at row 400 " in err[0]
    assert not out.exists()


def test_test_part_without_any_price_move_is_refused(tmp_path, capsys):
    # Rule: a test part whose naive (persistence) error is 0 cannot judge a model: one line.
    bars = make_bars(600)
    bars.iloc[480:, bars.columns.get_loc("close")] = bars["close"].iloc[479]
    path = tmp_path / "flat_end.csv"
    bars.to_csv(path)
    argv = ["--data", str(path), *TINY, "--target_col", "close", "--out", str(tmp_path / "run")]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("warning: ") and "stays at" in err[0]
    assert len(err) == 2 and err[1].startswith(f"error: {path}: the test part (")
    assert "has zero naive error for 'close' (persistence is exact" in err[1]
    assert not (tmp_path / "run").exists()


def test_too_few_rows_names_the_file(tmp_path, capsys):
    # Rule: too little data for the split is one line that names the file.
    path = tmp_path / "short.csv"
    make_bars(40).to_csv(path)
    assert train_cli.main(["--data", str(path), *TINY, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"error: {path}: 40 bars (31 feature rows after the warm-up) are too few for the split: "
    )
