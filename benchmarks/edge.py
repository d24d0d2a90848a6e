"""How much a model of the default inputs can beat ridge by on the built-in data (issue #19).

    python benchmarks/edge.py                 # 200,000 bars of data seed 5, ~10 s

One long series of the built-in generator, so that sampling noise is negligible: the R^2 of
the next bar's log return (against the training mean, on the last 30% of the bars) of
  * the generator's own expected return (the ceiling for any forecast),
  * a linear fit on the last 20 log returns and log volume ratios (what ridge sees),
  * the same plus the products of return and volume ratio over the last 3 bars (the
    volume-confirmed momentum docs/data.md describes, which a linear model cannot form).
The gap between the last two is the part of the edge over ridge a sequence model of these
inputs can reach; compare it with the smallest skill a test part can detect (promotion's
verdict prints it).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from trainables.bars.synthetic import simulate
from trainables.prep.features import build_features


def lags(x: np.ndarray, n: int) -> np.ndarray:
    return np.stack([np.roll(x, k) for k in range(n)], axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bars", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--lags", type=int, default=20)
    args = p.parse_args()

    sim = simulate(args.bars, seed=args.seed)
    f = build_features(sim.bars, ["log_return", "volume_ratio"])
    r = f["log_return"].to_numpy()
    vr = np.log(f["volume_ratio"].to_numpy())
    expected = pd.Series(sim.expected_log_return, index=sim.bars.index).reindex(f.index)
    y = np.roll(r, -1)[:-1]  # the next bar's log return, aligned with the row that sees it
    ex = np.roll(expected.to_numpy(), -1)[:-1]
    n = len(y)
    train = slice(args.lags, int(n * 0.7))
    test = slice(int(n * 0.7), n)
    base = np.mean((y[test] - y[train].mean()) ** 2)

    def r2(x: np.ndarray) -> float:
        model = Ridge(alpha=1e-6).fit(x[train], y[train])
        return 1 - np.mean((y[test] - model.predict(x[test])) ** 2) / base

    linear = np.hstack([lags(r, args.lags), lags(vr, args.lags)])[:-1]
    products = np.hstack([lags(r * np.tanh(2 * vr), 3), lags(r * vr, 3)])[:-1]
    print(f"{args.bars} bars, data seed {args.seed}, R^2 on the last 30% against the training mean")
    print(
        f"  ceiling (the generator's expected return)   {1 - np.mean((y[test] - ex[test]) ** 2) / base:.3f}"
    )
    print(f"  linear, last {args.lags} returns and volume ratios  {r2(linear):.3f}")
    print(f"  linear + return x volume products          {r2(np.hstack([linear, products])):.3f}")


if __name__ == "__main__":
    main()
