"""Where each bar came from (the source and its row there), so messages can name both.

``load_bars`` attaches a :class:`BarsOrigin` to the frame it returns (``frame.attrs``);
``build_features`` and the CLIs read it back with :func:`origin_of` to report a problem
found later (a feature that overflows, a test part without any price move) at the row of
the *file*, not at a position shifted by the warm-up rows or by picking one ticker.

The file rows are keyed by timestamp, so a slice or a copy of the frame still maps every
bar to its row. A frame without an origin (the built-in data, a caller's own frame) is
described by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["BarsOrigin", "at_row", "attach_origin", "origin_of", "source_of"]

_KEY = "bars_origin"


@dataclass(frozen=True, eq=False)
class BarsOrigin:
    """The source of some bars, each bar's row there, and how its timestamps were read."""

    source: str
    rows: pd.Series  # file row (0 = first data row) per bar timestamp
    timestamps: str  # e.g. "converted to UTC from UTC offsets -05:00, -04:00"

    def __deepcopy__(self, memo) -> BarsOrigin:
        # pandas deep-copies attrs on most operations; this record is never changed.
        return self

    def row_of(self, stamp) -> int | None:
        row = self.rows.get(stamp)
        return None if row is None else int(row)


def attach_origin(
    frame: pd.DataFrame, source: str, file_rows: np.ndarray, timestamps: str
) -> pd.DataFrame:
    """``frame`` with its origin recorded; ``file_rows[i]`` is the file row of ``frame``'s row i."""
    rows = pd.Series(np.asarray(file_rows, dtype=np.int64), index=frame.index)
    frame.attrs[_KEY] = BarsOrigin(source, rows, timestamps)
    return frame


def origin_of(frame: pd.DataFrame) -> BarsOrigin | None:
    origin = frame.attrs.get(_KEY)
    return origin if isinstance(origin, BarsOrigin) else None


def source_of(frame: pd.DataFrame, default: str | None = None) -> str | None:
    """The source's name (a file path, a database table), else ``default``."""
    origin = origin_of(frame)
    return origin.source if origin else default


def at_row(frame: pd.DataFrame, position: int) -> str:
    """``row 600 (2020-01-26 00:00:00)``: the file row of ``frame``'s row ``position``.

    Without an origin the row is the position in ``frame``.
    """
    stamp = frame.index[position]
    origin = origin_of(frame)
    row = origin.row_of(stamp) if origin else None
    return f"row {position if row is None else row} ({stamp})"
