"""Hyperparameter search spaces as data: load, validate, translate (Optuna and Ray Tune).

A space is a YAML file in ``search_spaces/`` (or anywhere, given its path)::

    # python -m orchestrator.tune --space cpu --trials 50
    name: cpu
    description: what it is for
    fixed: {epochs: 100, scheduler: cosine}          # applied to every trial
    params:
      learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      num_layers: {type: int, low: 1, high: 4}       # low and high inclusive
      patience: {type: int, low: 5, high: 30, step: 5}
      optimizer: {type: categorical, choices: [adam, adamw]}

Every file is validated on load, so a typo fails before Ray starts. ``to_optuna`` is the
one place a distribution is translated (for Ray Tune's ``OptunaSearch``).
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import optuna

from trainables.errors import ConfigError
from trainables.parameters.train_config import ALIASES, TrainConfig, check_value
from trainables.parameters.values import load_yaml

__all__ = [
    "KNOWN_PARAMS",
    "SPACES_DIR",
    "SearchSpace",
    "list_spaces",
    "load_space",
    "sample_configs",
    "space_from_dict",
    "space_to_dict",
    "to_optuna",
]

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"

# A space may search or fix any TrainConfig field, under its canonical name.
KNOWN_PARAMS: frozenset[str] = frozenset(TrainConfig.field_names())

_TOP_KEYS = ("name", "description", "fixed", "params")
_DIST_KEYS = {
    "categorical": ("type", "choices"),
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
}
_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class SearchSpace:
    """One validated space. ``params`` maps a name to its normalised distribution dict:
    ``{"type": "categorical", "choices": [...]}``, or
    ``{"type": "float"|"int", "low": .., "high": .., "log": bool, "step": ..}``
    (``step`` is None or a number for float, an int >= 1 for int)."""

    name: str
    description: str
    path: Path
    fixed: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """JSON-ready: what a sweep records so that --resume and promotion use this very space."""
    return {
        "name": space.name,
        "description": space.description,
        "path": str(space.path),
        "fixed": copy.deepcopy(space.fixed),
        "params": copy.deepcopy(space.params),
    }


def space_from_dict(d: Any, *, source: str = "sweep.json") -> SearchSpace:
    """The space a sweep recorded with :func:`space_to_dict`, validated as a space file is
    (an edited record fails in one line naming ``source``, not with a KeyError)."""
    keys = ("name", "path", "fixed", "params")
    if not isinstance(d, dict) or not all(k in d for k in keys) or not isinstance(d["path"], str):
        got = sorted(d)[:6] if isinstance(d, dict) else type(d).__name__
        raise ConfigError(
            f"{source}: space_definition is not a search space as a sweep records it (it needs "
            f"{', '.join(keys)}; it has {got}): the record was edited or is damaged"
        )
    path = Path(d["path"])
    doc = {k: d[k] for k in ("description", "fixed", "params") if k in d}
    try:
        space = _validate({**doc, "name": path.stem}, path)
    except ConfigError as err:
        raise ConfigError(f"{source}: space_definition: {err}") from None
    if d["name"] != space.name:
        raise ConfigError(
            f"{source}: space_definition names {d['name']!r} but was read from {path}"
        )
    return space


def list_spaces() -> list[str]:
    """Names of the spaces shipped in ``search_spaces/``, sorted."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load and validate a space: a bare name (``"cpu"``) or a path to a YAML file."""
    text = str(name_or_path)
    # A bare name has no folder part and no suffix; anything else is a path.
    is_path = Path(text).name != text or text.endswith((".yaml", ".yml"))
    path = Path(text) if is_path else SPACES_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"search space {text!r} not found (no file {path}); "
            f"available spaces in {SPACES_DIR}: {', '.join(list_spaces()) or 'none'}"
        )
    # trainables.parameters.values: the reader of --set and --config too (1e-4 is a number, only
    # true/false are booleans, a key written twice is an error)
    space = _validate(load_yaml(path.read_text(encoding="utf-8"), source=str(path)), path)
    _check_values(space)
    return space


# ---------------------------------------------------------------- validation


def _unknown(kind: str, key: Any, allowed: Any) -> str:
    if kind == "parameter" and key in ALIASES:
        return f"{key!r} is another name of {ALIASES[key]!r}; a space uses {ALIASES[key]!r}"
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(allowed))}"
    return f"unknown {kind} {key!r}{hint}"


def _validate(doc: Any, path: Path) -> SearchSpace:
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{path}: a search space is a YAML mapping with 'params:', "
            f"but the file holds {type(doc).__name__}"
        )
    for key in doc:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: {_unknown('top-level key', key, _TOP_KEYS)}")
    name = doc.get("name", path.stem)
    # The name picks the file (--space NAME) and the results folder, so they must agree.
    if name != path.stem:
        raise ConfigError(
            f"{path}: name={name!r} must equal the file name {path.stem!r} "
            f"(rename the file or change 'name:')"
        )
    description = doc.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description must be text, but got {description!r}")

    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: 'fixed:' must map names to values, but got {fixed!r}")
    for key, value in fixed.items():
        if key not in KNOWN_PARAMS:
            raise ConfigError(f"{path}: fixed.{key}: {_unknown('parameter', key, KNOWN_PARAMS)}")
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, _SCALARS) for v in items):
            raise ConfigError(
                f"{path}: fixed.{key}: a fixed value must be a number, text, true/false, null "
                f"or a list of these, but got {value!r}"
            )

    params = doc.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigError(
            f"{path}: 'params:' must map at least one parameter to a distribution, "
            f"but got {params!r}"
        )
    checked = {}
    for key, dist in params.items():
        where = f"{path}: params.{key}"
        if key not in KNOWN_PARAMS:
            raise ConfigError(f"{where}: {_unknown('parameter', key, KNOWN_PARAMS)}")
        if key in fixed:
            raise ConfigError(
                f"{where}: {key!r} is both fixed ({key}={fixed[key]!r}) and searched; "
                f"remove it from one of 'fixed:' and 'params:'"
            )
        checked[key] = _validate_dist(dist, where)
    return SearchSpace(name, description.strip(), path, dict(fixed), checked)


def _check_values(space: SearchSpace) -> None:
    """Every fixed value, choice and range end is one the parameter takes, so a space that
    would make trials fail (``bidirectional: yes``, ``dropout: {high: 1.0}``) fails here."""
    where = {f"fixed.{k}": (k, [v]) for k, v in space.fixed.items()}
    for key, d in space.params.items():
        ends = d["choices"] if d["type"] == "categorical" else [d["low"], d["high"]]
        where[f"params.{key}"] = (key, ends)
    for place, (key, values) in where.items():
        for value in values:
            try:
                check_value(key, value)
            except ConfigError as err:
                raise ConfigError(f"{space.path}: {place}: {err}") from None


def _validate_dist(dist: Any, where: str) -> dict[str, Any]:
    if not isinstance(dist, dict) or "type" not in dist:
        raise ConfigError(
            f"{where}: a distribution is a mapping with 'type:', e.g. "
            f"{{type: categorical, choices: [...]}}, but got {dist!r}"
        )
    kind = dist["type"]
    if kind not in _DIST_KEYS:
        raise ConfigError(f"{where}: {_unknown('distribution type', kind, _DIST_KEYS)}")
    for key in dist:
        if key not in _DIST_KEYS[kind]:
            raise ConfigError(f"{where}: {_unknown(f'{kind} key', key, _DIST_KEYS[kind])}")
    if kind == "categorical":
        return _validate_categorical(dist, where)
    return _validate_range(dist, kind, where)


def _validate_categorical(dist: dict[str, Any], where: str) -> dict[str, Any]:
    choices = dist.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: choices must be a non-empty list, but got {choices!r}")
    seen = set()
    for choice in choices:
        if not isinstance(choice, _SCALARS):
            raise ConfigError(
                f"{where}: each choice must be a number, text, true/false or null, "
                f"but got {choice!r}"
            )
        # (type, value): in Python 1 == 1.0 == True, but they are different choices here
        if (type(choice), choice) in seen:
            raise ConfigError(f"{where}: choice {choice!r} is listed twice in {choices!r}")
        seen.add((type(choice), choice))
    return {"type": "categorical", "choices": list(choices)}


def _validate_range(dist: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    number = int if kind == "int" else (int, float)
    for key in ("low", "high"):
        value = dist.get(key)
        if key not in dist:
            raise ConfigError(f"{where}: a {kind} distribution needs '{key}:'")
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            raise ConfigError(f"{where}: {key} must be a finite {kind}, but got {key}={value!r}")
    low, high = dist["low"], dist["high"]
    log = dist.get("log", False)
    step = dist.get("step")
    if kind == "int" and step is None:
        step = 1
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, but got log={log!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, number)):
        raise ConfigError(f"{where}: step must be a positive {kind}, but got step={step!r}")
    if low > high:
        raise ConfigError(f"{where}: low <= high must hold, but got low={low}, high={high}")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be > 0, but got step={step}")
    has_step = step is not None and not (kind == "int" and step == 1)
    if log and has_step:
        raise ConfigError(
            f"{where}: step={step} cannot be combined with log=true (Optuna draws log-scaled "
            f"values on no grid); drop one of them"
        )
    if log and kind == "int" and low < 1:
        raise ConfigError(f"{where}: log=true needs low >= 1, but got low={low}, high={high}")
    if log and kind == "float" and low <= 0:
        raise ConfigError(f"{where}: log=true needs low > 0, but got low={low}, high={high}")
    # Ray Tune quantises to multiples of step and Optuna to low + k*step: same grid only if
    # low and high are multiples of step.
    if has_step and any(Decimal(str(v)) % Decimal(str(step)) for v in (low, high)):
        raise ConfigError(
            f"{where}: low={low} and high={high} must be multiples of step={step}, so that "
            f"Ray Tune and Optuna draw from the same grid"
        )
    if kind == "int":
        return {"type": "int", "low": low, "high": high, "log": log, "step": step}
    return {
        "type": "float",
        "low": float(low),
        "high": float(high),
        "log": log,
        "step": None if step is None else float(step),
    }


# ---------------------------------------------------------------- translation


def to_optuna(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """The searched parameters as Optuna distributions (e.g. for ``OptunaSearch(space=...)``,
    with ``space.fixed`` passed to Ray Tune as ``param_space``)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, d in space.params.items():
        if d["type"] == "categorical":
            out[name] = optuna.distributions.CategoricalDistribution(d["choices"])
        elif d["type"] == "float":
            out[name] = optuna.distributions.FloatDistribution(
                d["low"], d["high"], log=d["log"], step=d["step"]
            )
        else:
            out[name] = optuna.distributions.IntDistribution(
                d["low"], d["high"], log=d["log"], step=d["step"]
            )
    return out


def sample_configs(space: SearchSpace, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` configs drawn at random by Optuna, each merged with ``space.fixed``."""
    if n < 1:
        raise ConfigError(f"sample_configs needs n >= 1, but got n={n}")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    distributions = to_optuna(space)
    return [{**copy.deepcopy(space.fixed), **study.ask(distributions).params} for _ in range(n)]
