"""One typed training config, every parameter under the users' own names (docs/parameters.md).

Each ``TrainConfig`` field carries all of its facts (``trainables.parameters.fields.param``): default,
range or choices, aliases, a line of help, whether it is a data setting or part of the
network. What other modules need is derived from them here (``ALIASES``,
``DATA_SETTINGS``, ``MODEL_FIELDS``, ``choices_of``, ``specs``) and elsewhere from
``specs()`` (the train CLI's flags, docs/parameters.md's tables, checked by a test).
``TrainConfig.from_dict`` validates, accepting the users' other spellings (``sequence_length``,
``max_epochs``, ``early_stopping_patience``, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from functools import cache
from typing import Any

from trainables.errors import ConfigError, shown
from trainables.parameters.fields import (
    Spec,
    check,
    check_class_weights,
    check_device,
    check_names,
    param,
    specs_of,
)

__all__ = [
    "ALIASES",
    "DATA_SETTINGS",
    "MODEL_FIELDS",
    "SECTIONS",
    "TrainConfig",
    "check_value",
    "choices_of",
    "specs",
    "unknown_parameter",
]

# The inputs and target benchmarks/ablation.py chose on the built-in data's CV folds: the
# return and the volume surprise beat raw OHLCV levels for the LSTM and for ridge alike
# (docs/parameters.md, "Where the defaults come from").
DEFAULT_F_COLS = ("log_return", "volume_ratio")

# docs/parameters.md's sections, in its order; every parameter belongs to one.
DATA, MODEL, LOSS, OPTIM, LOOP, SPLIT = SECTIONS = (
    "Data and target",
    "Model",
    "Loss",
    "Optimizer and learning-rate schedule",
    "Training loop",
    "Final split",
)


@dataclass(frozen=True)
class TrainConfig:
    """Every training parameter. The network and the training recipe default to the LSTM
    guide's configuration; the inputs, target, scaling and loss to what benchmarks/ablation.py
    chose on CV folds (docs/parameters.md, "Where the defaults come from")."""

    # data and target
    f_cols: tuple[str, ...] = param(
        DEFAULT_F_COLS,
        DATA,
        "input features per bar (trainables.prep.features.FEATURES or numeric columns of the data)",
        data=True,
        check=check_names,
        allowed="non-empty list, no repeats",
    )
    target_col: str | None = param(
        "log_return",
        DATA,
        "the column regression predicts, horizon bars ahead",
        data=True,
        allowed="a feature name, or none (every f_cols column)",
    )
    task: str = param(
        "regression",
        DATA,
        "regression, or classification into down/flat/up",
        data=True,
        choices=("regression", "classification"),
    )
    horizon: int = param(1, DATA, "bars ahead the label looks", data=True, low=1)
    threshold: float = param(
        0.001, DATA, "classification: a log return within +-threshold is 'flat'", data=True, low=0
    )
    sma_window: int = param(
        10, DATA, "window of the rolling features (sma_value, volatility, ...)", data=True, low=1
    )
    scaler: str = param(
        "standard",
        DATA,
        "per-column scaling, fit on training rows only",
        choices=("minmax", "standard"),
    )
    sequence_length: int = param(
        60, DATA, "bars per input window", data=True, low=1, aliases=("seq_len",)
    )
    # model
    cell: str = param("lstm", MODEL, "recurrent cell", model=True, choices=("lstm", "gru"))
    hidden_size: int = param(256, MODEL, "units per layer", model=True, low=1, high=8192)
    num_layers: int = param(2, MODEL, "stacked layers", model=True, low=1, high=16)
    dropout: float = param(
        0.3,
        MODEL,
        "dropout between stacked layers and before the head, training only",
        model=True,
        low=0,
        high=1,
        open_high=True,
    )
    bidirectional: bool = param(
        False, MODEL, "also read each window backwards (doubles the width)", model=True
    )
    attention: bool = param(
        False,
        MODEL,
        "attention pooling over all steps instead of the last step's state",
        model=True,
    )
    attention_heads: int = param(
        4,
        MODEL,
        "heads of the attention pooling",
        model=True,
        low=1,
        high=64,
        note="must divide hidden_size x directions",
    )
    residual: bool = param(
        True, MODEL, "regression: predict a level target as its last input value plus a change"
    )
    # loss
    loss: str = param(
        "auto",
        LOSS,
        "auto: huber for regression, cross_entropy for classification",
        choices=("auto", "mse", "mae", "huber", "cross_entropy", "focal"),
        aliases=("loss_function",),
    )
    huber_delta: float = param(
        1.0, LOSS, "where huber turns from squared to linear (scaled units)", low=0, open_low=True
    )
    focal_gamma: float = param(2.0, LOSS, "focal loss focus (0: cross-entropy)", low=0)
    class_weights: str | tuple[float, ...] | None = param(
        None,
        LOSS,
        "classification: balanced, or down,flat,up weights",
        check=check_class_weights,
        allowed="none, balanced, 3 positive numbers",
    )
    # optimizer and schedule
    optimizer: str = param("adamw", OPTIM, "optimizer", choices=("adamw", "adam", "sgd"))
    learning_rate: float = param(
        1e-3, OPTIM, "peak learning rate", low=0, high=10, open_low=True, aliases=("lr",)
    )
    weight_decay: float = param(
        1e-4, OPTIM, "L2 penalty (adam, sgd) or decoupled decay (adamw)", low=0, high=1
    )
    momentum: float = param(0.9, OPTIM, "sgd only", low=0, high=1, open_high=True)
    scheduler: str = param(
        "cosine",
        OPTIM,
        "how the rate changes per epoch",
        choices=("cosine", "plateau", "step", "exponential", "onecycle", "none"),
        aliases=("scheduler_type",),
    )
    warmup_epochs: int = param(5, OPTIM, "cosine: epochs of linear warmup", low=0)
    plateau_factor: float = param(
        0.5, OPTIM, "plateau: factor per reduction", low=0, high=1, open_low=True, open_high=True
    )
    plateau_patience: int = param(5, OPTIM, "plateau: flat epochs before a reduction", low=0)
    step_size: int = param(30, OPTIM, "step: epochs between reductions", low=1)
    gamma: float | None = param(
        None,
        OPTIM,
        "decay factor of step/exponential (none: 0.1 for step, 0.95 for exponential)",
        low=0,
        high=1,
        open_low=True,
    )
    min_lr: float = param(
        0.0,
        OPTIM,
        "floor of every schedule, the end point of cosine",
        low=0,
        note="at most learning_rate",
    )
    # loop
    epochs: int = param(100, LOOP, "maximum epochs", low=1, high=100_000, aliases=("max_epochs",))
    batch_size: int | str = param(
        512,
        LOOP,
        "samples per step (auto: the largest that fits the GPU)",
        low=1,
        words=("auto",),
        aliases=("auto_batch_size",),
    )
    patience: int = param(
        15,
        LOOP,
        "early stopping: epochs without improvement (0: never stop early)",
        low=0,
        aliases=("early_stopping_patience",),
    )
    min_delta: float = param(
        1e-4, LOOP, "smallest relative decrease of val loss that counts", low=0
    )
    restore_best: bool = param(True, LOOP, "keep the weights of the best validation epoch")
    grad_clip: float = param(
        1.0,
        LOOP,
        "maximum total gradient norm",
        note="0 disables",
        low=0,
        aliases=("gradient_clip",),
    )
    amp: str = param(
        "auto",
        LOOP,
        "mixed precision: auto picks bf16/fp16 on a GPU, off on the CPU",
        choices=("auto", "bf16", "fp16", "off"),
        aliases=("mixed_precision",),
    )
    seed: int = param(
        0,
        LOOP,
        "seeds weights, dropout and shuffling",
        low=0,
        high=2**63 - 1,
        aliases=("random_seed",),
    )
    device: str = param(
        "auto",
        LOOP,
        "auto: the current GPU when there is one",
        check=check_device,
        allowed="auto, cpu, cuda, cuda:N",
    )
    # final split (python -m trainables.train); the sweep's folds come from its CV scheme
    train_split: float = param(
        0.70,
        SPLIT,
        "share of samples for training (oldest first)",
        data=True,
        low=0,
        high=1,
        open_low=True,
        open_high=True,
    )
    val_split: float = param(
        0.15,
        SPLIT,
        "share for validation (the test share is the rest)",
        data=True,
        low=0,
        high=1,
        open_low=True,
        open_high=True,
        note="train_split + val_split < 1",
    )
    purge: int | None = param(
        None,
        SPLIT,
        "samples dropped before each later part (none: sequence_length + horizon - 1)",
        data=True,
        low=0,
    )
    embargo: int | None = param(
        None,
        SPLIT,
        "further samples dropped against serial correlation (none: sequence_length + horizon)",
        data=True,
        low=0,
    )
    ticker: str | None = param(
        None,
        DATA,
        "ticker to pick from multi-ticker data; also names the run",
        data=True,
        allowed="any text, or none",
    )

    def __post_init__(self) -> None:
        for name, spec in specs().items():
            object.__setattr__(self, name, check(spec, getattr(self, name)))
        _check_consistency(self)

    # ------------------------------------------------------------------ conveniences

    @property
    def test_split(self) -> float:
        """What the final split leaves for the test set: ``1 - train_split - val_split``."""
        return round(1.0 - self.train_split - self.val_split, 12)

    @property
    def resolved_loss(self) -> str:
        """``loss='auto'``: huber for regression (fat-tailed returns: benchmarks/ablation.py),
        cross_entropy for classification."""
        if self.loss != "auto":
            return self.loss
        return "cross_entropy" if self.task == "classification" else "huber"

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


# ---------------------------------------------------------------------- derived facts


@cache
def specs() -> dict[str, Spec]:
    """Every parameter's resolved facts (type, default, Param), in the order of the fields."""
    return specs_of(TrainConfig)


def choices_of(name: str) -> tuple[str, ...]:
    """The allowed words of a choice parameter, e.g. ``choices_of("task")``."""
    return specs()[name].param.choices


def check_value(name: str, value: Any) -> Any:
    """One parameter's value, validated alone (a space's fixed value or choice)."""
    return check(specs()[ALIASES.get(name, name)], value)


# Other documents' names -> the canonical field. ``mixed_precision`` and ``auto_batch_size``
# take true/false and are translated in ``_canonical``.
ALIASES: dict[str, str] = {a: s.name for s in specs().values() for a in s.aliases}
# Settings that decide how the data is built, labelled and cut (promotion keeps the sweep's).
DATA_SETTINGS: tuple[str, ...] = tuple(s.name for s in specs().values() if s.param.data)
# The network's own arguments (trainables.training.network.ModelSpec).
MODEL_FIELDS: tuple[str, ...] = tuple(s.name for s in specs().values() if s.param.model)


# ---------------------------------------------------------------------- validation


def _canonical(d: dict[str, Any]) -> dict[str, Any]:
    """Aliases -> canonical names; unknown names raise with a did-you-mean."""
    names = specs()
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = ALIASES.get(key, key)
        if name not in names:
            raise ConfigError(unknown_parameter(key))
        if key == "mixed_precision":
            value = _bool_alias(key, value, "auto", "off")
        elif key == "auto_batch_size":
            if _bool_alias(key, value, True, False) is False:
                continue  # auto_batch_size: false says nothing about the size itself
            value = "auto"
        if name in out and out[name] != value:
            raise ConfigError(
                f"{name} is given twice with different values: {shown(out[name])} and {key}={shown(value)}"
            )
        out[name] = value
    return out


def unknown_parameter(key: Any) -> str:
    """The error text of a name that is no parameter, with the closest one."""
    close = difflib.get_close_matches(str(key), [*specs(), *ALIASES], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown training parameter {shown(key)}{hint}"


def _bool_alias(key: str, value: Any, yes: Any, no: Any) -> Any:
    if isinstance(value, bool):
        return yes if value else no
    if key == "mixed_precision" and value in choices_of("amp"):
        return value  # already one of amp's own values
    raise ConfigError(f"{key} must be true or false, but got {key}={shown(value)}")


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
