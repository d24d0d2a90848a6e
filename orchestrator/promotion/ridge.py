"""Ridge regression on flattened windows, from normal equations summed chunk by chunk.

The same estimator as scikit-learn's ``Ridge(alpha)`` with its defaults (an unpenalised
intercept: X and y centred on their training means, then ``(X'X + alpha I) w = X'y``, the
system its ``cholesky`` solver solves for dense data); tests/promotion/test_ridge.py checks the two
agree. Written out because the sweep fits ridge on every CV fold for every window length
before its first trial:

* scikit-learn needs the flattened windows as one ``[n, L * F]`` matrix (1.5 GB for a
  16-bar window of 6 features at 2M bars); here windows are gathered ``CHUNK`` anchors at
  a time and only the ``[L * F, L * F]`` Gram matrix is kept;
* the Gram matrix is computed once per fold and every ``alpha`` is one small solve;
* a sweep then imports no scikit-learn (a second or more of start-up).

Sums are in float64 even for a float32 fold (scikit-learn keeps float32 inputs in float32),
so the two differ by float32 rounding there (~1e-7 relative) and agree to ~1e-12 in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.prep.windows import sliding_windows

__all__ = ["CHUNK", "RidgeFit", "RidgeGram"]

# Windows gathered at once: 4,096 x (40 bars x 8 features) in float64 is 10 MB.
CHUNK = 4096


def _chunks(x: np.ndarray, anchors: np.ndarray, sequence_length: int):
    """The flattened windows ending at ``anchors``, ``CHUNK`` at a time: ``[k, L * F]``."""
    view = sliding_windows(x, sequence_length)  # [n - L + 1, L, F], a view
    first = np.asarray(anchors, dtype=np.int64) - (sequence_length - 1)
    for start in range(0, len(first), CHUNK):
        win = view[first[start : start + CHUNK]]  # [k, L, F], a copy of these windows only
        # float64 whatever the fold's dtype: the normal equations square the inputs.
        yield start, win.reshape(len(win), -1).astype(np.float64, copy=False)


@dataclass
class RidgeFit:
    """One fitted ridge: ``y = windows @ coef + intercept``."""

    coef: np.ndarray  # [L * F, T]
    intercept: np.ndarray  # [T]
    sequence_length: int

    def predict(self, x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """[n, T] predictions for the windows of ``x`` ending at ``anchors``."""
        out = np.empty((len(anchors), self.coef.shape[1]))
        for start, win in _chunks(x, anchors, self.sequence_length):
            out[start : start + len(win)] = win @ self.coef + self.intercept
        return out


class RidgeGram:
    """The centred normal equations of windows -> ``y`` on some anchors; ``solve(alpha)``
    gives the ridge fit for any alpha without reading the windows again."""

    def __init__(
        self, x: np.ndarray, anchors: np.ndarray, y: np.ndarray, *, sequence_length: int
    ) -> None:
        y = np.asarray(y, dtype=np.float64).reshape(len(anchors), -1)  # [n, T]
        self.sequence_length = sequence_length
        self.x_mean = self._mean(x, anchors)  # [d]
        self.y_mean = y.mean(axis=0)  # [T]
        d = len(self.x_mean)
        self.gram = np.zeros((d, d))  # sum of centred x x'
        self.cross = np.zeros((d, y.shape[1]))  # sum of centred x y'
        yc = y - self.y_mean
        for start, win in _chunks(x, anchors, sequence_length):
            win = win - self.x_mean
            self.gram += win.T @ win
            self.cross += win.T @ yc[start : start + len(win)]

    def _mean(self, x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        total = None
        for _, win in _chunks(x, anchors, self.sequence_length):
            part = win.sum(axis=0)
            total = part if total is None else total + part
        return total / len(anchors)

    def solve(self, alpha: float) -> RidgeFit:
        a = self.gram + alpha * np.eye(len(self.gram))
        try:
            coef = np.linalg.solve(a, self.cross)  # symmetric positive definite for alpha > 0
        except np.linalg.LinAlgError:  # singular without a penalty: least squares instead
            coef = np.linalg.lstsq(a, self.cross, rcond=None)[0]
        intercept = self.y_mean - self.x_mean @ coef
        return RidgeFit(coef, intercept, self.sequence_length)
