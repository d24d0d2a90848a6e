"""Hand-written classification metrics agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from trainables.training.metrics import CLASS_NAMES, classification_metrics


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for n in (1, 2, 5, 17, 200):
        for present in ([0, 1, 2], [0, 2], [1], [2, 1]):
            # The truth uses only `present` classes; predictions may use any, or fewer.
            y = rng.choice(present, size=n)
            cases.append((y, rng.integers(0, 3, size=n)))
            cases.append((y, rng.choice(present[:1], size=n)))
    return cases


@pytest.mark.parametrize("y_true, y_pred", _cases())
def test_classification_metrics_equal_sklearn(y_true, y_pred):
    # Rule: macro-F1 averages the classes present in truth or predictions, exactly as
    # sklearn.metrics.f1_score(average='macro') does; per-class F1, accuracy and the
    # confusion matrix equal sklearn's too (absent classes score 0).
    got = classification_metrics(y_true, y_pred)
    assert got["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0.0), abs=1e-12
    )
    per_class = f1_score(y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0.0)
    for name, want in zip(CLASS_NAMES, per_class, strict=True):
        assert got[f"f1_{name}"] == pytest.approx(want, abs=1e-12)
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert got["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist()


def test_probabilities_score_their_argmax():
    # Rule: [n, 3] probabilities are scored by their most likely class.
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=50)
    y = rng.integers(0, 3, size=50)
    assert classification_metrics(y, proba) == classification_metrics(y, proba.argmax(axis=1))
