"""orchestrator.promotion.ridge: the windows' ridge from chunked normal equations is scikit-learn's Ridge."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from orchestrator.promotion import ridge
from orchestrator.promotion.ridge import RidgeGram
from trainables.prep.windows import sliding_windows


def _data(seed: int, n: int = 700, f: int = 3, t: int = 2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).cumsum(axis=0) * 0.1 + rng.normal(size=(n, f))
    anchors = np.sort(rng.choice(np.arange(9, n), size=n // 2, replace=False))
    y = rng.normal(size=(len(anchors), t)) + x[anchors, :1]
    return x, anchors, y


@pytest.mark.parametrize("chunk", [7, 100_000])  # many chunks, and one
@pytest.mark.parametrize("alpha", [0.01, 1.0, 100.0])
def test_equals_sklearn_ridge_on_the_flattened_windows(monkeypatch, chunk, alpha):
    # The same coefficients, intercept and predictions as Ridge(alpha) fit on the
    # materialised [n, L*F] windows, whatever the chunk size.
    monkeypatch.setattr(ridge, "CHUNK", chunk)
    x, anchors, y = _data(seed=int(alpha * 100) + chunk)
    length = 10
    flat = sliding_windows(x, length)[anchors - (length - 1)].reshape(len(anchors), -1)
    want = Ridge(alpha=alpha).fit(flat, y)
    got = RidgeGram(x, anchors, y, sequence_length=length).solve(alpha)
    np.testing.assert_allclose(got.coef, want.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got.intercept, want.intercept_, rtol=1e-8, atol=1e-10)
    others = np.arange(length - 1, len(x))
    flat_all = sliding_windows(x, length)[others - (length - 1)].reshape(len(others), -1)
    np.testing.assert_allclose(
        got.predict(x, others), want.predict(flat_all), rtol=1e-8, atol=1e-10
    )


def test_one_target_as_a_vector():
    # A [n] target is one output column, as scikit-learn's [n, 1].
    x, anchors, y = _data(seed=3, t=1)
    flat = sliding_windows(x, 5)[anchors - 4].reshape(len(anchors), -1)
    want = Ridge(alpha=0.1).fit(flat, y[:, 0]).predict(flat)
    got = RidgeGram(x, anchors, y[:, 0], sequence_length=5).solve(0.1).predict(x, anchors)
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-8, atol=1e-10)
