"""One reader for every value a user types: --set (tune, promote), train flags, --config
files and search-space files read 1e-3 as a number and only true/false as booleans."""

from __future__ import annotations

import json

import pytest
import torch

import trainables.train as train_cli
from orchestrator.promotion.run import build_parser as promote_parser
from orchestrator.promotion.run import main as promote_main
from orchestrator.sweep.spaces import load_space
from orchestrator.tune import parse_args as tune_args
from trainables.errors import ConfigError
from trainables.parameters.train_config import TrainConfig
from trainables.parameters.values import read_mapping_file, read_value

SPACE = """\
name: {name}
fixed: {fixed}
params:
  learning_rate: {{type: float, low: 1e-4, high: 1e-2, log: true}}
  bidirectional: {{type: categorical, choices: {choices}}}
"""


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("1E-4", 1e-4), (".5", 0.5), ("-2e+2", -200.0), ("64", 64), ("007", 7)],
)
def test_exponents_and_plain_digits_are_numbers(text, value):
    # Rule: a number with an exponent and no dot is a number (YAML 1.1 would keep the text).
    assert read_value(text) == value and type(read_value(text)) is type(value)


@pytest.mark.parametrize("text", ["yes", "no", "on", "off", "y", "n", "Yes", "OFF"])
def test_yes_no_on_off_stay_text(text):
    # Rule: only true/false are booleans.
    assert read_value(text) == text


def test_true_false_null_lists_and_dates():
    # Rule: true/false are booleans, null/~/'' None, [a, b] a list, a date stays text.
    assert [read_value(t) for t in ("true", "False", "null", "~", "")] == [
        True,
        False,
        None,
        None,
        None,
    ]
    assert read_value("[open, close]") == ["open", "close"]
    assert read_value("2024-01-02") == "2024-01-02" and read_value("1:30") == "1:30"


def test_a_key_written_twice_names_the_file_and_line(tmp_path):
    # Rule: a duplicated key is an error with the file and line, not "the last one wins".
    path = tmp_path / "cfg.yaml"
    path.write_text("epochs: 3\nhidden_size: 8\nepochs: 4\n")
    with pytest.raises(
        ConfigError, match=rf"^--config {path}:3: invalid YAML: key 'epochs' appears twice"
    ):
        read_mapping_file(path, what=f"--config {path}")


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("learning_rate", "1e-3"),
        ("min_delta", "1e-5"),
        ("amp", "off"),
        ("bidirectional", "true"),
        ("f_cols", "close,volume,log_return"),
        ("gamma", "none"),
        ("class_weights", "1,2,1"),
        ("seq_len", "12"),
        ("mixed_precision", "false"),
    ],
)
def test_tune_promote_and_train_read_a_value_alike(key, text):
    # Rule: `tune --set`, `promote --set` and `trainables.train --key` give the same setting.
    extra = {"task": "classification"} if key == "class_weights" else {}
    base = TrainConfig(**extra)
    tune = dict(tune_args(["--set", f"{key}={text}"]).overrides)
    promote = dict(promote_parser().parse_args(["--name", "x", "--set", f"{key}={text}"]).overrides)
    flags = ["--task", "classification"] if extra else []
    train, _ = train_cli.build_config(["--preset", "guide", *flags, f"--{key}", text])
    assert base.replace(**tune) == base.replace(**promote) == train


def test_promote_set_learning_rate_1e_3_is_accepted(tmp_path, capsys):
    # Rule: `orchestrator.promote --set learning_rate=1e-3` is a number (it was the text
    # '1e-3' and an error): the command gets past its settings to the missing sweep.
    argv = ["--name", "nope", "--results-dir", str(tmp_path), "--set", "learning_rate=1e-3"]
    assert dict(promote_parser().parse_args(argv).overrides) == {"learning_rate": 1e-3}
    assert promote_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no sweep at {tmp_path}")


def test_promote_set_yes_is_one_line_naming_the_parameter(tmp_path, capsys):
    # Rule: a boolean spelt 'yes' is refused before any work, naming the parameter.
    argv = ["--name", "nope", "--results-dir", str(tmp_path), "--set", "bidirectional=yes"]
    assert promote_main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: bidirectional must be true or false, but got bidirectional='yes'"
    )
    assert list(tmp_path.iterdir()) == []


def test_train_with_a_yaml_config_of_exponent_numbers(tmp_path, capsys):
    # Rule: a --config file with `learning_rate: 1e-4` trains (it was the text '1e-4' and an
    # error); the run's config.json holds the numbers and amp's word 'off'.
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "# a tiny run\n"
        "learning_rate: 1e-4\n"
        "min_delta: 1e-5\n"
        "weight_decay: 0\n"
        "amp: off\n"
        "bidirectional: false\n"
        "hidden_size: 8\n"
        "num_layers: 1\n"
        "seq_len: 8\n"
        "epochs: 2\n"
        "batch_size: 128\n"
    )
    out = tmp_path / "run"
    assert train_cli.main(["--preset", "cpu", "--config", str(cfg), "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())["train_config"]
    assert (saved["learning_rate"], saved["min_delta"], saved["amp"]) == (1e-4, 1e-5, "off")
    assert (saved["hidden_size"], saved["sequence_length"], saved["epochs"]) == (8, 8, 2)
    assert "Epoch 2/2" in capsys.readouterr().out


def test_train_config_with_yes_exits_2_naming_it(tmp_path, capsys):
    # Rule: `attention: yes` in a --config file is one line and exit 2, no run folder.
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("attention: yes\n")
    out = tmp_path / "run"
    assert train_cli.main(["--config", str(cfg), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: attention must be true or false, but got attention='yes'"
    )
    assert not out.exists()


def test_space_file_reads_like_a_config(tmp_path):
    # Rule: a space file is read as --config is: 1e-4 a number, 'off' amp's word.
    path = tmp_path / "s.yaml"
    path.write_text(SPACE.format(name="s", fixed="{amp: off}", choices="[true, false]"))
    space = load_space(path)
    assert space.fixed == {"amp": "off"}
    assert space.params["learning_rate"]["low"] == 1e-4
    TrainConfig.from_dict({**space.fixed, "bidirectional": True})


@pytest.mark.parametrize(
    ("fixed", "choices", "needle"),
    [
        ("{}", "[yes, no]", "params.bidirectional: bidirectional must be true or false"),
        ("{dropout: 1.0}", "[true]", "fixed.dropout: dropout must be in [0, 1), but got"),
        ("{scheduler: linear}", "[true]", "fixed.scheduler: scheduler must be one of"),
    ],
)
def test_space_values_a_trial_could_not_take_fail_on_load(tmp_path, fixed, choices, needle):
    # Rule: a space whose fixed value or choice no trial could take fails when it is loaded,
    # naming the file and the place, not in every trial.
    path = tmp_path / "s.yaml"
    path.write_text(SPACE.format(name="s", fixed=fixed, choices=choices))
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(err.value).startswith(f"{path}: ") and needle in str(err.value)
