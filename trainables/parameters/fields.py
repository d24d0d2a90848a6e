"""What a training parameter *is*: the facts written once on each ``TrainConfig`` field.

``param(default, section, help, ...)`` makes a dataclass field whose ``metadata["param"]`` is a
:class:`Param`: range or choices, aliases, whether it is a data setting, a line of help.
Everything else is derived from these facts and the field's type annotation:

* :func:`check` validates one value (``TrainConfig.__post_init__`` calls it per field);
* :func:`range_text` and :func:`default_text` are the "range" and "default" columns of
  docs/parameters.md (a test compares them row by row) and the ``--help`` of
  ``python -m trainables.train``.

The module knows nothing of particular parameters: those are in ``trainables.parameters.train_config``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from trainables.errors import ConfigError, shown

__all__ = [
    "Param",
    "Spec",
    "check",
    "check_class_weights",
    "check_device",
    "check_names",
    "default_text",
    "format_number",
    "param",
    "range_text",
    "specs_of",
]

NONE_WORDS = ("none", "null")  # how a command line or file clears an optional value
CLASSES = 3  # down, flat, up: class_weights holds one weight each


@dataclass(frozen=True)
class Param:
    """The facts of one parameter besides its name, type and default.

    ``low``/``high`` bound a number (None: unbounded), excluded when ``open_low``/``open_high``;
    ``choices`` are the allowed words of a text parameter; ``words`` are words a number also
    takes (``'auto'`` for batch_size). ``check`` replaces the generic validation of a
    parameter whose rule is its own (a list of names); ``allowed`` then says in words what it
    takes. ``note`` is a rule that involves other parameters (checked by TrainConfig).
    ``data``: it decides how the data is built, labelled or cut (promotion keeps the sweep's).
    ``model``: an argument of the network itself (``trainables.training.network.ModelSpec``).
    """

    help: str
    section: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    data: bool = False
    model: bool = False
    note: str = ""
    allowed: str = ""
    check: Callable[[str, Any], Any] | None = None


def param(default: Any, section: str, help: str, **facts: Any) -> Any:
    """A dataclass field carrying its :class:`Param`."""
    facts = {"section": section, "help": help, **facts}
    return dataclasses.field(default=default, metadata={"param": Param(**facts)})


@dataclass(frozen=True)
class Spec:
    """One field, resolved: name, default, its Python kind and whether None is allowed."""

    name: str
    default: Any
    kind: type  # int, float, bool or str; tuple for a list-valued field
    nullable: bool
    param: Param
    text_only: bool  # every value is text (or None): a command line passes it as typed

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.param.aliases


def specs_of(cls: type) -> dict[str, Spec]:
    """Every field of dataclass ``cls`` that carries a Param, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        kinds = [typing.get_origin(k) or k for k in _kinds(hints[f.name])]
        nullable = type(None) in kinds
        kinds = [k for k in kinds if k is not type(None)]
        # The first type named is the field's own: ``int | str`` is an int (or a word).
        text_only = kinds == [str]
        out[f.name] = Spec(f.name, f.default, kinds[0], nullable, f.metadata["param"], text_only)
    return out


def _kinds(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return list(typing.get_args(hint))
    return [hint]


# ---------------------------------------------------------------------- validation


def check(spec: Spec, value: Any) -> Any:
    """The canonical form of ``value`` for this field, or ConfigError naming it."""
    name, p = spec.name, spec.param
    if spec.nullable and (
        value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)
    ):
        return None
    if p.check is not None:
        return p.check(name, value)
    if isinstance(value, str) and value.strip().lower() in p.words:
        return value.strip().lower()
    if p.choices:
        if isinstance(value, str) and value.strip().lower() in p.choices:
            return value.strip().lower()
        raise ConfigError(f"{name} must be one of {list(p.choices)}, but got {name}={shown(value)}")
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, but got {name}={shown(value)}")
        return value
    if spec.kind is int:
        return _int(spec, value)
    if spec.kind is float:
        return _float(spec, value)
    if spec.kind is str:
        return _text(spec, value)
    raise ConfigError(f"no validation rule for {name}")  # a new kind of field: a bug


def _int(spec: Spec, value: Any) -> int:
    name, p = spec.name, spec.param
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)  # 64.0 from a YAML or JSON file
    ok = ok and (p.low is None or value >= p.low) and (p.high is None or value <= p.high)
    if not ok:
        words = "".join(f" or {w!r}" for w in p.words)
        raise ConfigError(
            f"{name} must be an {_bounds(p, 'integer')}{words}, but got {name}={shown(value)}"
        )
    return int(value)


def _float(spec: Spec, value: Any) -> float:
    name, p = spec.name, spec.param
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, but got {name}={shown(value)}")
    value = float(value)
    too_low = p.low is not None and (value < p.low or (value == p.low and p.open_low))
    too_high = p.high is not None and (value > p.high or (value == p.high and p.open_high))
    if too_low or too_high:
        bounds = _bounds(p, "number")
        phrase = f"a {bounds}" if bounds.startswith("number") else f"in {bounds}"
        raise ConfigError(f"{name} must be {phrase}, but got {name}={shown(value)}")
    return value


def _text(spec: Spec, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a ticker such as 7203 written without quotes
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{spec.name} must be a non-empty string, but got {spec.name}={shown(value)}"
        )
    return value.strip()


# ---------------------------------------------------------------------- own rules


def check_names(name: str, value: Any) -> tuple[str, ...]:
    """A non-empty list of distinct column names (``a,b`` or ``[a, b]``) as a tuple."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ConfigError(
            f"{name} must be a non-empty list of column names, but got {name}={shown(value)}"
        )
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise ConfigError(f"{name} lists {dupes} more than once: {list(value)}")
    return tuple(value)


def check_class_weights(name: str, value: Any) -> str | tuple[float, ...]:
    """'balanced', or one positive weight per class (``1,2,1`` or ``[1, 2, 1]``)."""
    if isinstance(value, str) and value.strip().lower() == "balanced":
        return "balanced"
    if isinstance(value, str):  # "1,2,1" from the command line
        with contextlib.suppress(ValueError):
            value = [float(v) for v in value.split(",")]
    ok = isinstance(value, (list, tuple)) and len(value) == CLASSES
    ok = ok and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value
    )
    if not ok:
        raise ConfigError(
            f"{name} must be None, 'balanced' or 3 positive numbers (down, flat, up), "
            f"but got {name}={shown(value)}"
        )
    return tuple(float(v) for v in value)


def check_device(name: str, value: Any) -> str:
    """auto, cpu, cuda or cuda:N, lower-cased."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.lower()):
        raise ConfigError(
            f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got {name}={shown(value)}"
        )
    return value.lower()


# ---------------------------------------------------------------------- rendering


def _bounds(p: Param, noun: str) -> str:
    """``[0, 1)``, ``(0, 10]`` for numbers bounded on both sides; else ``number >= 0``,
    ``integer in [1, 8192]``, ``integer >= 1`` (``noun`` is "number" or "integer")."""
    low = None if p.low is None else _bound(p.low)
    high = None if p.high is None else _bound(p.high)
    if noun == "integer":
        if high is None:
            return f"integer >= {low}"
        return f"integer in [{low}, {high}]"
    if low is not None and high is not None:
        return f"{'(' if p.open_low else '['}{low}, {high}{')' if p.open_high else ']'}"
    if low is not None:
        return f"number {'>' if p.open_low else '>='} {low}"
    return f"number {'<' if p.open_high else '<='} {high}"


def range_text(spec: Spec) -> str:
    """The "range" column of docs/parameters.md: what the parameter takes, in words."""
    p = spec.param
    if p.allowed:
        text = p.allowed
    elif p.choices:
        text = ", ".join(p.choices)
    elif spec.kind is bool:
        text = "true, false"
    elif spec.kind is int:
        text = _bounds(p, "integer")
    elif spec.kind is float:
        text = _bounds(p, "number").removeprefix("number ")
    else:
        text = "any text"
    text += "".join(f", or {w}" for w in p.words)
    if spec.nullable and not p.allowed:
        text += ", or none"
    if p.note:
        text += f"; {p.note}"
    return text


def default_text(value: Any) -> str:
    """A default as docs/parameters.md and ``--help`` write it: 1e-3, 0.3, true, none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ", ".join(default_text(v) for v in value)
    if isinstance(value, (int, float)):
        return format_number(value)
    return str(value)


def _bound(x: float) -> str:
    return format_number(int(x) if float(x).is_integer() else x)  # [0, 1), not [0.0, 1.0)


def format_number(x: float) -> str:
    """``1e-3`` for small powers of ten, ``2^63 - 1`` for that bound, else ``repr``."""
    if isinstance(x, int):
        if x > 10**6 and (x + 1) & x == 0:
            return f"2^{(x + 1).bit_length() - 1} - 1"
        return str(x)
    if x != 0 and abs(x) < 0.01:
        mantissa, exponent = f"{x:e}".split("e")
        short = f"{float(mantissa):g}e{int(exponent)}"
        if float(short) == x:
            return short
    return repr(float(x))
