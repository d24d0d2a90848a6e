"""The built-in data's measured properties: the table in docs/data.md, "How much is predictable".

    python benchmarks/data_stats.py          # ~30 s on one core

Prints, from the generator itself (trainables/bars/synthetic.py; no model of the product):
  * the oracle ceiling: the share of next-bar return variance that is the generator's
    conditional mean (200,000 bars of seed 0);
  * the lag-1 autocorrelation and the kurtosis of the log returns;
  * ridge on the last 10 log returns (4,000 bars, first 70% fit, last 30% scored, R^2
    against "next return = 0"), over data seeds 0-9, and the same with the last 10 volume
    ratios and their products with the returns (what a model that reads volume can add);
  * persistence and the historical mean against zero on the same split;
  * ridge on the last 10 returns and the EMA distance for the 20-bar return (the users'
    classification horizon).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.stats import kurtosis
from sklearn.linear_model import Ridge

from trainables.bars.synthetic import make_bars, simulate
from trainables.prep.features import build_features


def lagged(x: np.ndarray, n: int) -> np.ndarray:
    """Row j holds x[j + n - 1], x[j + n - 2], ..., x[j]: the n values up to j + n - 1."""
    return np.stack([x[n - 1 - k : len(x) - k] for k in range(n)], axis=1)


def oracle_share(n_bars: int, seed: int) -> float:
    sim = simulate(n_bars, seed=seed)
    r = np.diff(np.log(sim.bars["close"].to_numpy()))
    return 1 - np.var(r - sim.expected_log_return[1:]) / np.var(r)


def r2(x: np.ndarray, y: np.ndarray, cut: int) -> float:
    pred = Ridge(alpha=1e-6).fit(x[:cut], y[:cut]).predict(x[cut:])
    return 1 - np.mean((y[cut:] - pred) ** 2) / np.mean(y[cut:] ** 2)


def one_seed(seed: int, n_bars: int, lags: int = 10) -> dict[str, float]:
    f = build_features(make_bars(n_bars, seed=seed), ["log_return", "volume_ratio"])
    r = f["log_return"].to_numpy()
    v = np.log(f["volume_ratio"].to_numpy())
    past_r, past_v = lagged(r, lags)[:-1], lagged(v, lags)[:-1]  # row j predicts r[j + lags]
    y = r[lags:]
    cut = int(0.7 * len(y))
    zero = np.mean(y[cut:] ** 2)
    both = np.column_stack([past_r, past_v, past_r * past_v, past_r * np.tanh(2 * past_v)])
    # 20-bar return from the last 10 returns and the distance of log close from its EMA.
    log_close = np.cumsum(r)
    ema = pd.Series(log_close).ewm(span=20, adjust=False).mean().to_numpy()
    h = 20
    y20 = np.array([log_close[j + h] - log_close[j] for j in range(lags - 1, len(r) - h)])
    x20 = np.column_stack(
        [lagged(r, lags)[: len(y20)], (log_close - ema)[lags - 1 : lags - 1 + len(y20)]]
    )
    return {
        "ridge": r2(past_r, y, cut),
        "ridge_volume": r2(both, y, cut),
        "persistence": np.mean((y[cut:] - past_r[cut:, 0]) ** 2) / zero,
        "mean": np.mean((y[cut:] - y[:cut].mean()) ** 2) / zero,
        "ridge_20": r2(x20, y20, int(0.7 * len(y20))),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bars", type=int, default=4000, help="bars per seed for the ridge rows")
    p.add_argument("--seeds", type=int, default=10, help="data seeds 0..N-1 for the ridge rows")
    args = p.parse_args()
    print(f"oracle ceiling (200,000 bars, seed 0): {oracle_share(200_000, 0):.3f}")
    r = np.diff(np.log(make_bars(200_000, seed=0)["close"].to_numpy()))
    print(
        f"lag-1 autocorrelation {np.corrcoef(r[1:], r[:-1])[0, 1]:+.3f}, "
        f"kurtosis {kurtosis(r, fisher=False):.1f} (200,000 bars, seed 0)"
    )
    rows = [one_seed(s, args.bars) for s in range(args.seeds)]
    print(
        f"{args.bars:,} bars, first 70% fit, last 30% scored, data seeds 0-{args.seeds - 1}: "
        "mean (min-max)"
    )
    for key, label in [
        ("ridge", "ridge, last 10 log returns: R^2 vs zero"),
        ("ridge_volume", "  + last 10 volume ratios and return x volume products"),
        ("persistence", "MSE of persistence / MSE of zero"),
        ("mean", "MSE of the training mean / MSE of zero"),
        ("ridge_20", "20-bar return, ridge on 10 returns + EMA distance: R^2 vs zero"),
    ]:
        values = np.array([row[key] for row in rows])
        print(f"  {label:<66} {values.mean():.3f} ({values.min():.3f}-{values.max():.3f})")


if __name__ == "__main__":
    main()
