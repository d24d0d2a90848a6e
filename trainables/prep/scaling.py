"""Feature scalers fit on training rows only, saved as JSON (never pickles).

``rows_covered`` gives the rows a set of training anchors may see, so callers fit a
scaler on exactly those rows and nothing of the evaluation block.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from trainables.errors import ConfigError, DataError

__all__ = [
    "MinMaxScaler",
    "Scaler",
    "StandardScaler",
    "make_scaler",
    "rows_covered",
    "scaler_from_dict",
]


class Scaler(Protocol):
    kind: str
    columns: list[str]

    def fit(self, x: np.ndarray) -> Scaler: ...
    def transform(self, x: np.ndarray) -> np.ndarray: ...
    def inverse_transform(self, x: np.ndarray, columns: list[str] | None = None) -> np.ndarray: ...
    def to_dict(self) -> dict: ...


class _ColumnScaler:
    """Per-column affine map ``(x - offset) / scale``; subclasses choose offset and scale."""

    kind = ""

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = list(columns or [])
        self.offset: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, x: np.ndarray) -> _ColumnScaler:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise DataError(f"cannot fit a {self.kind} scaler on an array of shape {x.shape}")
        if self.columns and len(self.columns) != x.shape[1]:
            raise ConfigError(
                f"scaler has {len(self.columns)} column names for {x.shape[1]} columns"
            )
        offset, scale = self._stats(x)
        # A constant column maps to 0 instead of dividing by zero.
        scale = np.where(scale > 1e-12, scale, 1.0)
        self.offset, self.scale = offset, scale
        return self

    def _check_fitted(self) -> None:
        if self.offset is None or self.scale is None:
            raise ConfigError(f"{self.kind} scaler used before fit()")

    def _select(self, columns: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        if columns is None:
            return self.offset, self.scale
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise ConfigError(f"scaler has no column(s) {missing}; it was fit on {self.columns}")
        idx = [self.columns.index(c) for c in columns]
        return self.offset[idx], self.scale[idx]

    def scale_of(self, columns: list[str]) -> np.ndarray:
        """[len(columns)] the factor from scaled to original units: an error of ``e`` scaled
        units is ``e * scale`` in original units (a squared error: times ``scale ** 2``)."""
        return self._select(columns)[1].copy()

    def transform(self, x: np.ndarray, columns: list[str] | None = None) -> np.ndarray:
        offset, scale = self._select(columns)
        return ((np.asarray(x, dtype=np.float64) - offset) / scale).astype(np.float32)

    def inverse_transform(self, x: np.ndarray, columns: list[str] | None = None) -> np.ndarray:
        offset, scale = self._select(columns)
        return np.asarray(x, dtype=np.float64) * scale + offset

    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "kind": self.kind,
            "columns": self.columns,
            "offset": self.offset.tolist(),
            "scale": self.scale.tolist(),
        }


class MinMaxScaler(_ColumnScaler):
    """Scales each column to [0, 1] over the rows it was fit on (the users' default)."""

    kind = "minmax"

    def _stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = x.min(axis=0), x.max(axis=0)
        return lo, hi - lo


class StandardScaler(_ColumnScaler):
    """Zero mean, unit variance per column over the rows it was fit on."""

    kind = "standard"

    def _stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.mean(axis=0), x.std(axis=0)


_KINDS = {cls.kind: cls for cls in (MinMaxScaler, StandardScaler)}


def make_scaler(kind: str, columns: list[str] | None = None) -> _ColumnScaler:
    if kind not in _KINDS:
        raise ConfigError(f"scaler must be one of {sorted(_KINDS)}, but got {kind!r}")
    return _KINDS[kind](columns)


def scaler_from_dict(d: dict) -> _ColumnScaler:
    scaler = make_scaler(d["kind"], d["columns"])
    scaler.offset = np.asarray(d["offset"], dtype=np.float64)
    scaler.scale = np.asarray(d["scale"], dtype=np.float64)
    return scaler


def rows_covered(
    anchors: np.ndarray, sequence_length: int, horizon: int, n_rows: int
) -> np.ndarray:
    """Boolean mask of rows inside any span ``[i - sequence_length + 1, i + horizon]`` of ``anchors``."""
    marks = np.zeros(n_rows + 1, dtype=np.int64)
    anchors = np.asarray(anchors, dtype=np.int64)
    np.add.at(marks, np.clip(anchors - sequence_length + 1, 0, n_rows), 1)
    np.add.at(marks, np.clip(anchors + horizon + 1, 0, n_rows), -1)
    return np.cumsum(marks[:-1]) > 0
