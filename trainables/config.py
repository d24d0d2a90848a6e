"""One typed training config, every parameter under the users' own names (docs/parameters.md).

``TrainConfig`` is the single place where defaults live and ranges are checked: the CLI,
the sweep and the search spaces all build one through ``from_dict``, which also accepts the
users' older spellings (``seq_len``, ``max_epochs``, ``early_stopping_patience``, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from trainables.errors import ConfigError

__all__ = ["ALIASES", "PRESETS", "TrainConfig", "parse_value"]

DEFAULT_F_COLS = ("open", "high", "low", "close", "volume", "log_return")

# Older or other documents' names -> the canonical field. ``mixed_precision`` and
# ``auto_batch_size`` are booleans and translated in ``_canonical``.
ALIASES = {
    "seq_len": "sequence_length",
    "max_epochs": "epochs",
    "early_stopping_patience": "patience",
    "gradient_clip": "grad_clip",
    "mixed_precision": "amp",
    "auto_batch_size": "batch_size",
    "lr": "learning_rate",
    "loss_function": "loss",
    "scheduler_type": "scheduler",
    "random_seed": "seed",
}

_CHOICES = {
    "task": ("regression", "classification"),
    "scaler": ("minmax", "standard"),
    "cell": ("lstm", "gru"),
    "loss": ("auto", "mse", "mae", "huber", "cross_entropy", "focal"),
    "optimizer": ("adamw", "adam", "sgd"),
    "scheduler": ("cosine", "plateau", "step", "exponential", "onecycle", "none"),
    "amp": ("auto", "bf16", "fp16", "off"),
}

# name: (low, high, low inclusive, high inclusive); None = unbounded on that side.
_FLOAT_RANGES = {
    "threshold": (0.0, None, True, True),
    "dropout": (0.0, 1.0, True, False),
    "huber_delta": (0.0, None, False, True),
    "focal_gamma": (0.0, None, True, True),
    "learning_rate": (0.0, 10.0, False, True),
    "weight_decay": (0.0, 1.0, True, True),
    "momentum": (0.0, 1.0, True, False),
    "plateau_factor": (0.0, 1.0, False, False),
    "gamma": (0.0, 1.0, False, True),
    "min_lr": (0.0, None, True, True),
    "min_delta": (0.0, None, True, True),
    "grad_clip": (0.0, None, True, True),
    "train_split": (0.0, 1.0, False, False),
    "val_split": (0.0, 1.0, False, False),
}
_INT_RANGES = {
    "horizon": (1, None),
    "sma_window": (1, None),
    "sequence_length": (1, None),
    "hidden_size": (1, 8192),
    "num_layers": (1, 16),
    "attention_heads": (1, 64),
    "warmup_epochs": (0, None),
    "plateau_patience": (0, None),
    "step_size": (1, None),
    "epochs": (1, 100_000),
    "batch_size": (1, None),
    "patience": (0, None),
    "seed": (0, 2**63 - 1),
    "purge": (0, None),
    "embargo": (0, None),
}
_CLASSES = 3  # down, flat, up
_TRUTH = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


@dataclass(frozen=True)
class TrainConfig:
    """Every training parameter. Defaults: lstm-training-guide.md's default configuration."""

    # data and target
    f_cols: tuple[str, ...] = DEFAULT_F_COLS
    target_col: str | None = "close"  # None: predict every f_cols column (multi-output)
    task: str = "regression"
    horizon: int = 1
    threshold: float = 0.001  # classification: |log return| <= threshold is 'flat'
    sma_window: int = 10
    scaler: str = "minmax"
    sequence_length: int = 60
    # model
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.3
    bidirectional: bool = False
    attention: bool = False
    attention_heads: int = 4
    residual: bool = True
    # loss
    loss: str = "auto"
    huber_delta: float = 1.0
    focal_gamma: float = 2.0
    class_weights: str | tuple[float, ...] | None = None
    # optimizer and schedule
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"
    warmup_epochs: int = 5
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    step_size: int = 30
    gamma: float | None = None  # None: 0.1 for 'step', 0.95 for 'exponential'
    min_lr: float = 0.0
    # loop
    epochs: int = 100
    batch_size: int | str = 512
    patience: int = 15
    min_delta: float = 1e-4
    restore_best: bool = True
    grad_clip: float = 1.0
    amp: str = "auto"
    seed: int = 0
    device: str = "auto"
    # final split (python -m trainables.train); the sweep's folds come from its CV scheme
    train_split: float = 0.70
    val_split: float = 0.15
    purge: int | None = None  # None: seq_len + horizon - 1, the least the leakage rule needs
    embargo: int | None = None  # None: seq_len + horizon
    ticker: str | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _normalise(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        _check_consistency(self)

    # ------------------------------------------------------------------ conveniences

    @property
    def seq_len(self) -> int:
        """The users' short name for ``sequence_length``."""
        return self.sequence_length

    @property
    def test_split(self) -> float:
        """What the final split leaves for the test set: ``1 - train_split - val_split``."""
        return round(1.0 - self.train_split - self.val_split, 12)

    @property
    def resolved_loss(self) -> str:
        """``loss='auto'``: mse for regression, cross_entropy for classification."""
        if self.loss != "auto":
            return self.loss
        return "cross_entropy" if self.task == "classification" else "mse"

    @property
    def resolved_gamma(self) -> float:
        """``gamma=None``: the guide's 0.1 for 'step' and 0.95 for 'exponential'."""
        if self.gamma is not None:
            return self.gamma
        return 0.1 if self.scheduler == "step" else 0.95

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict (JSON, YAML, CLI); aliases accepted, unknown keys rejected."""
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a mapping, but got {type(d).__name__}")
        return cls(**_canonical(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (aliases accepted), validated again."""
        return TrainConfig.from_dict({**self.to_dict(), **_canonical(changes)})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ---------------------------------------------------------------------- validation


def _canonical(d: dict[str, Any]) -> dict[str, Any]:
    """Aliases -> canonical names; unknown names raise with a did-you-mean."""
    names = TrainConfig.field_names()
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = ALIASES.get(key, key)
        if name not in names:
            close = difflib.get_close_matches(str(key), [*names, *ALIASES], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown training parameter {key!r}{hint}")
        if key == "mixed_precision":
            value = _bool_alias(key, value, "auto", "off")
        elif key == "auto_batch_size":
            if _bool_alias(key, value, True, False) is False:
                continue  # auto_batch_size: false says nothing about the size itself
            value = "auto"
        if name in out and out[name] != value:
            raise ConfigError(
                f"{name} is given twice with different values: {out[name]!r} and {key}={value!r}"
            )
        out[name] = value
    return out


def _bool_alias(key: str, value: Any, yes: Any, no: Any) -> Any:
    if isinstance(value, bool):
        return yes if value else no
    if key == "mixed_precision" and value in _CHOICES["amp"]:
        return value  # already one of amp's own values
    raise ConfigError(f"{key} must be true or false, but got {key}={value!r}")


def _normalise(name: str, value: Any) -> Any:
    """Type-check one field and return its canonical form; raises ConfigError naming it."""
    if name == "f_cols":
        return _names(name, value)
    if name == "class_weights":
        return _class_weights(value)
    if name in ("ticker", "target_col"):
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{name} must be a non-empty string, but got {name}={value!r}")
        return value.strip()
    if name == "device":
        if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.lower()):
            raise ConfigError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got device={value!r}"
            )
        return value.lower()
    if name in _CHOICES:
        if isinstance(value, str) and value.lower() in _CHOICES[name]:
            return value.lower()
        raise ConfigError(f"{name} must be one of {list(_CHOICES[name])}, but got {name}={value!r}")
    if name in ("bidirectional", "attention", "residual", "restore_best"):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, but got {name}={value!r}")
        return value
    if name == "batch_size" and isinstance(value, str) and value.lower() == "auto":
        return "auto"
    if value is None and name in ("gamma", "purge", "embargo"):
        return None
    if name in _INT_RANGES:
        return _int(name, value)
    if name in _FLOAT_RANGES:
        return _float(name, value)
    raise ConfigError(f"no validation rule for {name}")  # a new field without a rule: a bug


def _int(name: str, value: Any) -> int:
    low, high = _INT_RANGES[name]
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)  # 64.0 from a YAML or JSON file
    upper = "" if high is None else f", {high}]"
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}{upper}"
    if name == "batch_size":
        allowed += " or 'auto'"
    if not ok or value < low or (high is not None and value > high):
        raise ConfigError(f"{name} must be {allowed}, but got {name}={value!r}")
    return int(value)


def _float(name: str, value: Any) -> float:
    low, high, low_in, high_in = _FLOAT_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{name} must be a number, but got {name}={value!r}")
    value = float(value)
    too_low = low is not None and (value < low or (value == low and not low_in))
    too_high = high is not None and (value > high or (value == high and not high_in))
    if too_low or too_high or value == float("inf"):
        left = "[" if low_in else "("
        right = "]" if high_in and high is not None else ")"
        hi = "inf" if high is None else f"{high:g}"
        raise ConfigError(f"{name} must be in {left}{low:g}, {hi}{right}, but got {name}={value!r}")
    return value


def _names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ConfigError(
            f"{name} must be a non-empty list of column names, but got {name}={value!r}"
        )
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise ConfigError(f"{name} lists {dupes} more than once: {list(value)}")
    return tuple(value)


def _class_weights(value: Any) -> str | tuple[float, ...] | None:
    if value is None or (isinstance(value, str) and value.lower() == "balanced"):
        return None if value is None else "balanced"
    if isinstance(value, str):  # "1,2,1" from the command line
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            value = None
    ok = isinstance(value, (list, tuple)) and len(value) == _CLASSES
    ok = ok and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value
    )
    if not ok:
        raise ConfigError(
            "class_weights must be None, 'balanced' or 3 positive numbers (down, flat, up), "
            f"but got class_weights={value!r}"
        )
    return tuple(float(v) for v in value)


def _check_consistency(cfg: TrainConfig) -> None:
    """Rules that involve two or more parameters."""
    classification = cfg.task == "classification"
    loss = cfg.loss
    if classification and loss in ("mse", "mae", "huber"):
        raise ConfigError(
            f"loss={loss!r} is a regression loss; task='classification' needs 'cross_entropy' or 'focal'"
        )
    if not classification and loss in ("cross_entropy", "focal"):
        raise ConfigError(
            f"loss={loss!r} needs task='classification'; task='regression' takes 'mse', 'mae' or 'huber'"
        )
    if not classification and cfg.class_weights is not None:
        raise ConfigError(
            f"class_weights={cfg.class_weights!r} only applies to task='classification'"
        )
    directions = 2 if cfg.bidirectional else 1
    width = cfg.hidden_size * directions
    if cfg.attention and width % cfg.attention_heads:
        raise ConfigError(
            f"attention_heads={cfg.attention_heads} must divide hidden_size * directions = {width}"
        )
    if cfg.min_lr > cfg.learning_rate:
        raise ConfigError(
            f"min_lr={cfg.min_lr:g} must not exceed learning_rate={cfg.learning_rate:g}"
        )
    if cfg.train_split + cfg.val_split >= 1 - 1e-9:
        raise ConfigError(
            f"train_split + val_split must leave a test share (< 1), but got "
            f"train_split={cfg.train_split:g} + val_split={cfg.val_split:g}"
        )


# ---------------------------------------------------------------------- CLI values


def parse_value(name: str, text: str) -> Any:
    """Turn the command-line text of field ``name`` into a value of the field's type.

    The types come from the dataclass annotations; range checks stay in ``TrainConfig``.
    """
    lowered = text.strip().lower()
    if name in ("mixed_precision", "auto_batch_size") and lowered in _TRUTH:
        return _TRUTH[lowered]  # boolean aliases of non-boolean fields
    name = ALIASES.get(name, name)
    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        TrainConfig.from_dict({name: None})  # raises the unknown-parameter error
    hint = hints[name]
    kinds = (
        typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    )
    if type(None) in kinds and lowered in ("none", "null"):
        return None
    for kind in kinds:
        origin = typing.get_origin(kind)
        if kind is bool and lowered in _TRUTH:
            return _TRUTH[lowered]
        elif kind is int:
            try:
                return int(text)
            except ValueError:
                pass
        elif kind is float:
            try:
                return float(text)
            except ValueError:
                pass
        elif origin is tuple:
            if text.strip().startswith("["):
                try:
                    return json.loads(text)
                except ValueError as err:
                    raise ConfigError(
                        f"{name}: cannot read {text!r} as a JSON list ({err})"
                    ) from err
            if name != "class_weights":
                return [v.strip() for v in text.split(",") if v.strip()]
        elif kind is str:
            return text
    return text  # TrainConfig reports the type error with the allowed range


def _preset_parameters() -> TrainConfig:
    """lstm-training-parameters.md's single-ticker trainer (Adam + ReduceLROnPlateau)."""
    return TrainConfig(
        f_cols=("open", "high", "low", "close", "volume", "sma_value"),
        target_col=None,  # it predicts every input feature
        hidden_size=64,
        num_layers=2,
        dropout=0.2,
        sequence_length=10,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-5,
        scheduler="plateau",
        plateau_factor=0.5,
        plateau_patience=5,
        warmup_epochs=0,
        epochs=100,
        batch_size=64,
        patience=15,
        min_delta=0.0,  # its early stopping counts any decrease as an improvement
        grad_clip=1.0,
        train_split=0.8,
        val_split=0.1,  # its 20% validation, split in two so a test set remains
    )


def _preset_cpu() -> TrainConfig:
    """The guide's settings sized for a CPU: one small LSTM layer on 30-bar windows.

    The guide's model (256 units x 2 layers on 60-bar windows, up to 100 epochs) is sized
    for a GPU. ``python -m trainables.train`` starts from this one when no CUDA device is
    present (docs/parameters.md, "Presets").
    """
    return TrainConfig(
        hidden_size=64,
        num_layers=1,
        dropout=0.1,
        sequence_length=30,
        learning_rate=3e-3,
        warmup_epochs=2,
        epochs=30,
        batch_size=128,
        patience=5,
        min_delta=0.0,  # scaled validation losses are ~1e-3: count any real improvement
    )


PRESETS: dict[str, TrainConfig] = {
    "guide": TrainConfig(),
    "parameters": _preset_parameters(),
    "cpu": _preset_cpu(),
}
