"""What every command line of the project shares: one-line errors, warnings and interrupts.

* :class:`ArgumentParser`: a bad flag raises ``ConfigError`` (the CLI prints ``error: ...``
  and exits 2) instead of argparse's whole usage text.
* :func:`command_line`, a context for a CLI's ``main``: inside it a
  :class:`~trainables.errors.DataWarning` prints as one ``warning: ...`` line on stderr, and
  SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt``, so a terminated run unwinds
  like Ctrl-C and every ``finally`` removes what it started; :func:`interrupt_exit_code` is
  then ``128 + signal``: 130 for Ctrl-C, 143 for SIGTERM. Both are restored on the way out.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from trainables.bars.checks import DEFAULT_MAX_JUMP
from trainables.bars.timestamps import DST_CHOICES
from trainables.errors import ConfigError, DataWarning, shown
from trainables.parameters.train_config import ALIASES, specs, unknown_parameter
from trainables.parameters.values import read_value

__all__ = [
    "ArgumentParser",
    "Terminated",
    "bar_options",
    "command_line",
    "interrupt_exit_code",
    "parse_value",
    "setting",
]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with errors as ConfigError: one line and exit 2 through the CLI's main()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.argv_given: list[str] = []  # what parse_args read, for error()

    def parse_args(self, args=None, namespace=None):
        self.argv_given = sys.argv[1:] if args is None else list(args)
        return super().parse_args(self.argv_given, namespace)

    def error(self, message: str):
        # argparse checks required flags before unknown ones: "--nmae x" would be reported
        # as "--name is required", hiding the misspelling the user has to fix.
        unknown = [a for a in self.argv_given if self._unknown_flag(a)]
        if message.startswith("the following arguments are required") and unknown:
            message = f"unrecognized arguments: {' '.join(unknown)} ({message})"
        raise ConfigError(message)

    def _unknown_flag(self, arg: str) -> bool:
        if not arg.startswith("--") or arg == "--":
            return False
        flag = arg.split("=", 1)[0]
        known = [s for action in self._actions for s in action.option_strings]
        return flag not in known and not (
            self.allow_abbrev and any(s.startswith(flag) for s in known)
        )


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C's KeyboardInterrupt."""


@contextmanager
def command_line(*, signals: bool = True) -> Iterator[None]:
    """One-line DataWarnings and (``signals``) SIGTERM as an interrupt, for a CLI run.

    ``signals=False`` leaves the signal handlers alone (the sweep, where Ray Tune has its
    own handling of Ctrl-C).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)  # each run's data warnings, every time
        warnings.showwarning = _one_line(warnings.showwarning)
        if not signals or threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        previous = signal.signal(signal.SIGTERM, _terminated)
        # Also when the parent started this process with SIGINT ignored.
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def interrupt_exit_code(err: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + signal number: 143 after SIGTERM, 130 after Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def _terminated(signum, frame):
    raise Terminated()


def _one_line(previous):
    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def bar_options(parser: argparse.ArgumentParser, *, explicit: bool = False) -> None:
    """The flags of every command that reads bars: --timezone, --dst, --max-jump.

    ``explicit``: their value is None unless given (the help still says the default), for a
    command that must tell a given flag from a default one (``orchestrator.tune --resume``).
    """
    parser.add_argument(
        "--timezone",
        default=None,
        metavar="ZONE",
        help="time zone of naive local timestamps, e.g. America/New_York: they are read in "
        "that zone and converted to UTC; times with a UTC offset are always converted "
        "(default: none: naive times are kept as they are)",
    )
    parser.add_argument(
        "--dst",
        choices=DST_CHOICES,
        default=None if explicit else "raise",
        help="with --timezone, a time in the hour that repeats or is skipped at a daylight "
        "saving change: raise (an error naming the row), infer (the repeated hour in file "
        "order, a skipped time shifted forward) or drop the row (default: raise)",
    )
    parser.add_argument(
        "--max-jump",
        type=float,
        default=None if explicit else DEFAULT_MAX_JUMP,
        metavar="X",
        help="largest |log return| of a price between consecutive bars; a larger move is "
        f"refused as a data error; inf turns the check off (default: {DEFAULT_MAX_JUMP:g}, a "
        f"factor of {math.exp(DEFAULT_MAX_JUMP):.1f})",
    )


# ---------------------------------------------------------------------- training parameters


def parse_value(name: str, text: str) -> Any:
    """The command line's text of parameter ``name`` (or an alias) as a value for TrainConfig.

    A text parameter (a choice, a column, a ticker) takes the text as typed (``--ticker 7203``
    stays '7203'); a list parameter also takes ``a,b,c``; anything else is read by
    :func:`trainables.parameters.values.read_value`, as in a ``--config`` or space file (``1e-3`` is a
    number, only true/false are booleans). Ranges are TrainConfig's to check.
    """
    canonical = ALIASES.get(name, name)
    if canonical not in specs():
        raise ConfigError(unknown_parameter(name))
    spec = specs()[canonical]
    if spec.text_only and canonical == name:  # an alias such as mixed_precision takes true/false
        return text.strip()
    if spec.kind is tuple and not text.strip().startswith("["):
        return [v.strip() for v in text.split(",") if v.strip()]
    typed = text if len(text) <= 60 else text[:59] + "…"  # errors quote it on one line
    return read_value(text, source=f"{name}={typed}")


def setting(text: str) -> tuple[str, Any]:
    """argparse ``type`` of ``--set KEY=VALUE``: the key and its value (:func:`parse_value`)."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(
            f"takes KEY=VALUE (e.g. --set epochs=20), not {shown(text)}"
        )
    return key.strip(), parse_value(key.strip(), value)
