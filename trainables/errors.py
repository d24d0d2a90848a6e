"""One exception hierarchy for user-facing failures.

The CLIs catch :class:`UserError`, print ``str(err)`` as one line and exit 2.
Anything else is a bug and keeps its traceback. :class:`DataWarning` is the one warning
about data that still loads (a long constant stretch, a large time gap): the CLIs print it
as one ``warning: ...`` line on stderr and go on.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DataWarning",
    "DiskError",
    "TrainingError",
    "UserError",
    "shown",
]


class UserError(Exception):
    """Base class of every error a user can cause and fix."""


class DataError(UserError):
    """The bar data cannot be used: missing column, bad value, bad ordering, too few rows."""


class ConfigError(UserError):
    """A setting is out of range, misspelt or inconsistent with another setting."""


class TrainingError(UserError):
    """Training cannot go on: the loss diverged (NaN/inf) or no batch fits in memory."""


class DataWarning(UserWarning):
    """The bar data load, but something in them deserves a look (see docs/data.md)."""


class DiskError(UserError):
    """An output cannot be written: a full disk, a read-only folder, no permission.

    ``exit_code`` is 2 when nothing had run yet, 1 when the failure cut a run short."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters with an ellipsis: an error line quotes
    what the user typed without echoing 100,000 characters of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
