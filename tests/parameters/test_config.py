"""TrainConfig: the users' names, defaults, ranges, aliases and presets."""

from __future__ import annotations

import json

import pytest

from trainables.cli import parse_value
from trainables.errors import ConfigError
from trainables.parameters.presets import PRESETS
from trainables.parameters.train_config import TrainConfig


def test_defaults_follow_the_guide():
    # Rule: the network and training recipe default to the LSTM guide's configuration
    # (docs/parameters.md).
    cfg = TrainConfig()
    assert (cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.sequence_length) == (256, 2, 0.3, 60)
    assert (cfg.learning_rate, cfg.weight_decay, cfg.grad_clip) == (1e-3, 1e-4, 1.0)
    assert (cfg.optimizer, cfg.scheduler, cfg.warmup_epochs) == ("adamw", "cosine", 5)
    assert (cfg.batch_size, cfg.epochs, cfg.patience, cfg.min_delta) == (512, 100, 15, 1e-4)
    assert (cfg.horizon, cfg.train_split, cfg.val_split) == (1, 0.70, 0.15)
    assert cfg.test_split == pytest.approx(0.15)
    assert PRESETS["guide"] == cfg


def test_data_defaults_are_the_ablations_choice():
    # Rule: inputs, target, scaling and loss default to what benchmarks/ablation.py chose on CV
    # folds (the return and the volume surprise, the next log return, standard scaling, Huber).
    cfg = TrainConfig()
    assert cfg.f_cols == ("log_return", "volume_ratio")
    assert (cfg.target_col, cfg.scaler, cfg.resolved_loss) == ("log_return", "standard", "huber")
    assert TrainConfig(task="classification").resolved_loss == "cross_entropy"
    cpu = PRESETS["cpu"]
    assert (cpu.f_cols, cpu.target_col, cpu.scaler) == (cfg.f_cols, cfg.target_col, cfg.scaler)
    assert (cpu.hidden_size, cpu.num_layers, cpu.batch_size) == (64, 1, 32)


def test_parameters_preset_is_the_single_ticker_trainer():
    # Rule: preset 'parameters' carries the single-ticker trainer's defaults (docs/parameters.md).
    cfg = PRESETS["parameters"]
    assert (cfg.hidden_size, cfg.dropout, cfg.batch_size, cfg.weight_decay) == (64, 0.2, 64, 1e-5)
    assert (cfg.optimizer, cfg.scheduler, cfg.plateau_factor, cfg.plateau_patience) == (
        "adam",
        "plateau",
        0.5,
        5,
    )
    assert (cfg.sequence_length, cfg.train_split, cfg.patience) == (10, 0.8, 15)
    assert "sma_value" in cfg.f_cols and cfg.target_col is None
    assert (cfg.scaler, cfg.resolved_loss) == ("minmax", "mse")  # its MinMaxScaler, MSELoss


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"dropout": 1.5}, "dropout must be in [0, 1), but got dropout=1.5"),
        ({"hidden_size": 0}, "hidden_size must be an integer in [1, 8192], but got hidden_size=0"),
        ({"learning_rate": 0}, "learning_rate must be in (0, 10], but got learning_rate=0.0"),
        ({"scheduler": "linear"}, "scheduler must be one of"),
        (
            {"batch_size": "big"},
            "batch_size must be an integer >= 1 or 'auto', but got batch_size='big'",
        ),
        (
            {"device": "gpu"},
            "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got device='gpu'",
        ),
        ({"epochs": 2.5}, "epochs must be an integer in [1, 100000], but got epochs=2.5"),
        ({"bidirectional": "yes"}, "bidirectional must be true or false"),
        ({"class_weights": [1, 2]}, "class_weights must be None, 'balanced' or 3 positive numbers"),
    ],
)
def test_validation_error_names_the_parameter_and_value(settings, needle):
    # Rule: an out-of-range value raises ConfigError naming the parameter, the value and the range.
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(settings)
    assert needle in str(err.value)


def test_cross_parameter_rules():
    # Rule: combinations that cannot work are rejected with both names in the message.
    with pytest.raises(ConfigError, match="loss='mse'.*classification"):
        TrainConfig(task="classification", loss="mse")
    with pytest.raises(ConfigError, match="attention_heads=3 must divide"):
        TrainConfig(hidden_size=16, attention=True, attention_heads=3)
    with pytest.raises(ConfigError, match="train_split \\+ val_split must leave a test share"):
        TrainConfig(train_split=0.8, val_split=0.2)
    with pytest.raises(ConfigError, match="class_weights"):
        TrainConfig(task="regression", class_weights="balanced")


def test_aliases_map_to_canonical_names():
    # Rule: the users' other spellings are accepted and land on the canonical fields.
    cfg = TrainConfig.from_dict(
        {
            "seq_len": 30,
            "max_epochs": 7,
            "early_stopping_patience": 4,
            "gradient_clip": 0.5,
            "mixed_precision": False,
        }
    )
    assert (cfg.sequence_length, cfg.epochs, cfg.patience, cfg.grad_clip, cfg.amp) == (
        30,
        7,
        4,
        0.5,
        "off",
    )
    assert TrainConfig.from_dict({"mixed_precision": True}).amp == "auto"
    assert TrainConfig.from_dict({"auto_batch_size": True}).batch_size == "auto"
    assert cfg.sequence_length == 30


def test_unknown_key_suggests_the_closest_name():
    # Rule: a misspelt parameter is an error with a did-you-mean, never silently ignored.
    with pytest.raises(
        ConfigError, match="unknown training parameter 'hiden_size'; did you mean 'hidden_size'"
    ):
        TrainConfig.from_dict({"hiden_size": 64})


def test_alias_and_canonical_disagreeing_is_an_error():
    # Rule: one setting given twice with two values is ambiguous.
    with pytest.raises(ConfigError, match="given twice"):
        TrainConfig.from_dict({"seq_len": 30, "sequence_length": 60})


def test_dict_round_trip_is_json_ready():
    # Rule: to_dict -> JSON -> from_dict gives the same config back.
    cfg = TrainConfig(f_cols=["close", "volume"], class_weights=[1, 2, 1], task="classification")
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.f_cols == ("close", "volume") and back.class_weights == (1.0, 2.0, 1.0)


def test_replace_validates_and_accepts_aliases():
    # Rule: replace() goes through the same checks as construction.
    cfg = TrainConfig().replace(lr=0.01, seq_len=20)
    assert (cfg.learning_rate, cfg.sequence_length) == (0.01, 20)
    with pytest.raises(ConfigError, match="num_layers"):
        cfg.replace(num_layers=0)


def test_resolved_defaults():
    # Rule: loss='auto' and gamma=None resolve per task and scheduler.
    assert TrainConfig().resolved_loss == "huber"
    assert TrainConfig(task="classification").resolved_loss == "cross_entropy"
    assert TrainConfig(scheduler="step").resolved_gamma == 0.1
    assert TrainConfig(scheduler="exponential").resolved_gamma == 0.95


def test_parse_value_uses_the_field_types():
    # Rule: command-line text is read as the field needs: numbers as numbers (1e-3 too),
    # lists from a,b; text parameters as typed; only true/false are booleans.
    assert parse_value("hidden_size", "64") == 64
    assert parse_value("dropout", "0.25") == 0.25
    assert parse_value("learning_rate", "1e-3") == 1e-3
    assert parse_value("batch_size", "auto") == "auto"
    assert parse_value("f_cols", "open,close") == ["open", "close"]
    assert parse_value("f_cols", "[open, close]") == ["open", "close"]
    assert parse_value("bidirectional", "true") is True
    assert parse_value("bidirectional", "yes") == "yes"  # TrainConfig then refuses it
    assert parse_value("amp", "off") == "off"
    assert parse_value("ticker", "7203") == "7203"
    assert parse_value("seq_len", "12") == 12
    assert parse_value("mixed_precision", "false") is False
    assert TrainConfig().replace(gamma=parse_value("gamma", "none")).gamma is None
    assert TrainConfig().replace(target_col=parse_value("target_col", "none")).target_col is None
    assert (
        TrainConfig().replace(mixed_precision=parse_value("mixed_precision", "false")).amp == "off"
    )
    with pytest.raises(ConfigError, match="did you mean"):
        parse_value("hiden_size", "64")


def test_yes_no_on_off_are_not_booleans():
    # Rule: a boolean is true or false; 'yes' for one is an error naming it, not a silent True.
    with pytest.raises(
        ConfigError, match="bidirectional must be true or false, but got bidirectional='yes'"
    ):
        TrainConfig().replace(bidirectional=parse_value("bidirectional", "yes"))
    with pytest.raises(ConfigError, match="restore_best must be true or false"):
        TrainConfig.from_dict({"restore_best": "off"})


def test_none_clears_an_optional_value_wherever_it_is_written():
    # Rule: none/null clears gamma, purge, embargo, target_col, class_weights, ticker alike
    # from a file or a flag; a parameter whose word 'none' is a value keeps it.
    cfg = TrainConfig.from_dict({"gamma": "none", "purge": "null", "target_col": "None"})
    assert (cfg.gamma, cfg.purge, cfg.target_col) == (None, None, None)
    assert TrainConfig.from_dict({"scheduler": "none"}).scheduler == "none"


def test_range_errors_say_the_range_of_the_field():
    # Rule: the message carries the allowed range, as docs/parameters.md states it.
    with pytest.raises(ConfigError, match=r"threshold must be a number >= 0, but got threshold=-1"):
        TrainConfig(threshold=-1)
    with pytest.raises(
        ConfigError, match=r"huber_delta must be a number > 0, but got huber_delta=0"
    ):
        TrainConfig(huber_delta=0)
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2\^63 - 1\]"):
        TrainConfig(seed=-1)
    with pytest.raises(ConfigError, match=r"min_lr must be a finite number, but got min_lr=inf"):
        TrainConfig(min_lr=float("inf"))
