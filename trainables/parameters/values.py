"""The one reader of values users type: ``--set KEY=VALUE``, ``--config`` files, space files.

Every such value is read as a YAML 1.2 ("core schema") scalar or flow collection:

* ``1e-3``, ``.5`` and ``-2E+4`` are numbers. PyYAML follows YAML 1.1, where a float needs a
  dot, so ``yaml.safe_load("1e-3")`` is the *text* "1e-3";
* only ``true``/``false`` (any of three capitalisations) are booleans: ``yes``, ``no``,
  ``on``, ``off``, ``y`` and ``n`` stay text (``--set amp=off`` is amp's value 'off');
* ``null``, ``~`` and an empty value are None; ``007`` is 7 (no octal), ``1:30`` is text
  (no sexagesimal), and a date stays text;
* ``[a, b]`` is a list; a key written twice in a mapping is an error, not "the last wins".

Which *type* a training parameter needs is TrainConfig's business (``trainables.parameters.train_config``):
this module only reads text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from trainables.errors import ConfigError, shown

__all__ = ["Loader", "load_yaml", "read_mapping_file", "read_value"]

_NULL = r"^(?:~|null|Null|NULL|)$"
_BOOL = r"^(?:true|True|TRUE|false|False|FALSE)$"
_INT = r"^[-+]?[0-9]+$"
_FLOAT = (
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and duplicate keys refused."""

    # Start from no implicit types at all (not SafeLoader's YAML 1.1 table), then add the
    # core schema's: the order within a first character decides (int before float).
    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader's own construct_mapping reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_decimal_int(self, node: yaml.ScalarNode) -> int:
        return int(self.construct_scalar(node))  # base 10: '007' is 7, not octal


for _tag, _pattern, _first in (
    ("null", _NULL, ["~", "n", "N", ""]),
    ("bool", _BOOL, list("tTfF")),
    ("int", _INT, list("-+0123456789")),
    ("float", _FLOAT, list("-+.0123456789")),
    ("merge", r"^(?:<<)$", ["<"]),
):
    Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), _first)
Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_decimal_int)


def load_yaml(text: str, *, source: str) -> Any:
    """Parse YAML (or JSON) ``text``; errors are one ConfigError line naming ``source`` and
    the line: ``search_spaces/x.yaml:4: invalid YAML: key 'low' appears twice``."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 (Loader is a SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML: {err.problem}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML: {err}") from err
    except RecursionError:  # '[[[[...' or '{{{{...' thousands deep: no setting is that
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{source}: not a value: {shown(str(err), 80)[1:-1]}") from None


def read_value(text: str, *, source: str = "value") -> Any:
    """One value as typed on a command line: ``"1e-3"`` -> 0.001, ``"off"`` -> 'off',
    ``"true"`` -> True, ``"[a, b]"`` -> ['a', 'b'], ``""`` -> None."""
    return load_yaml(text, source=source)


def read_mapping_file(path: str | Path, *, what: str) -> dict[str, Any]:
    """A JSON (``.json``) or YAML file holding one mapping; ``what`` names it in errors
    (e.g. ``"--config cfg.yaml"``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{what}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what}: not a text file ({err.reason})") from err
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ConfigError(f"{what}: not valid JSON ({err})") from err
    else:
        data = load_yaml(text, source=what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: expected a mapping of parameter: value")
    return data
