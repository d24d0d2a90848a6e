"""On a random walk nothing is learnable: a real sweep and promotion must not call the model
better than its naive forecast (persistence, or the training mean of a return target) or
than the majority class (classification).

Each test runs a real sweep (Ray Tune + Optuna) on a random-walk bar file and promotes its
best config through the real CLI (Ray Train, MLflow), so they are slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from orchestrator.promotion.run import main as promote_main
from orchestrator.sweep.run import SweepSpec, run_sweep

pytestmark = pytest.mark.slow


def random_walk_bars(n: int, *, seed: int) -> pd.DataFrame:
    """Hourly OHLCV bars whose close is a pure Gaussian random walk in log price."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(0.004 * rng.standard_normal(n)))
    open_ = np.r_[100.0, close[:-1]]
    wick = 1 + 0.001 * np.abs(rng.standard_normal((2, n)))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * wick[0],
            "low": np.minimum(open_, close) / wick[1],
            "close": close,
            "volume": np.exp(14 + 0.3 * rng.standard_normal(n)),
        },
        index=pd.date_range("2021-01-01", periods=n, freq="h", name="timestamp"),
    )


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _sweep_and_promote(tmp_path: Path, name: str, extra: list[str], **spec) -> dict:
    data = tmp_path / "walk.csv"
    random_walk_bars(2000, seed=5).to_csv(data)
    results = tmp_path / "results"
    run_sweep(
        SweepSpec(
            space="smoke",
            data=str(data),
            trials=3,
            folds=2,
            epochs=2,
            num_cpus=2,
            dashboard=False,
            scheduler="none",
            results_dir=str(results),
            name=name,
            **spec,
        ),
        log=lambda *_: None,
    )
    argv = ["--name", name, "--results-dir", str(results), "--top-k", "1", "--seeds", "2"]
    assert promote_main([*argv, "--epochs", "10", "--no-report", *extra]) == 0
    return json.loads((results / name / "promoted.json").read_text())


def test_regression_on_a_random_walk_is_not_better_than_the_naive_forecast(ray_session, tmp_path):
    index = _sweep_and_promote(tmp_path, "walk", [], overrides={"scaler": "standard"})
    chosen = index["chosen"]
    # The naive forecast is the first deciding comparison: persistence for a price target,
    # the training mean for the default log-return target (#19).
    naive = next(c for c in chosen["comparisons"] if c["decides"])
    assert naive["baseline"] in ("persistence", "training mean")
    assert naive["outcome"] != "better"
    assert "does NOT beat the baselines" in chosen["verdict"]
    assert "beats the baselines" not in chosen["verdict"].replace("NOT beat", "")
    assert naive["ci_low"] < 0  # the skill interval includes no improvement
    assert chosen["iu_p"] >= 0.05  # the intersection-union p-value says the same


def test_classification_on_a_random_walk_is_not_better_than_the_majority_class(
    ray_session, tmp_path
):
    index = _sweep_and_promote(
        tmp_path,
        "walk-classes",
        ["--cost-bps", "0"],
        task="classification",
        overrides={"horizon": 5, "threshold": 0.004},
    )
    chosen = index["chosen"]
    majority = next(c for c in chosen["comparisons"] if c["baseline"] == "majority class")
    assert majority["test"] == "accuracy difference (EWC)"  # the 0/1 loss differential
    assert majority["outcome"] != "better"
    assert "does NOT beat the baselines" in chosen["verdict"]
    assert index["trading"]["cost_bps"] == 0.0
