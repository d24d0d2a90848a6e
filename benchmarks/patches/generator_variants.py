"""Generator variants of the built-in bars, measured as in benchmarks/README.md ("The built-in
bars' edge made big enough to see"): the constants of trainables/bars/synthetic.py are set
for one run, and a centred volume surprise (the volume beyond what the bar's move explains)
can replace the generator's own.

    python benchmarks/patches/generator_variants.py "[{}, {'_PSI': 0.4, '_PHI1': 0.2}]"
    GEN='{"_PSI": 0.8}' python benchmarks/patches/generator_variants.py --ablation --block more --rows new

The first form prints, per variant, on 100,000 bars of seed 5 (R^2 on the last 30% against
the training mean): the generator's ceiling, a linear fit of the last 20 log returns and
volume ratios, the same plus products, the gap and the lag-1 autocorrelation. ``_PHI1`` is a
linear lag-1 term ``_PHI1 * u_{t-1}`` that the kept generator no longer has (0 here unless
given; the older bars had ``_PSI`` 0.4 and ``_PHI1`` 0.2). The second runs
benchmarks/ablation.py on the variant ``GEN`` names (JSON; ``"center": true`` for the centred
surprise).
"""

from __future__ import annotations

import ast
import json
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

import trainables.bars.synthetic as S
from trainables.prep.features import build_features

MODE = {"center": False, "phi1": 0.0}


def _returns_and_volume(cycle, noise, volume_noise, sigma, logvol, regime):
    """The generator's recursion with a lag-1 term and, optionally, a centred surprise."""
    n = len(cycle)
    u, signal, log_close, log_volume = (np.zeros(n) for _ in range(4))
    alpha = 2.0 / (S._EMA_SPAN + 1)
    a1 = 2 * S._CYCLE_RHO * np.cos(2 * np.pi / S._CYCLE_PERIOD)
    a2 = -(S._CYCLE_RHO**2)
    ema_close = ema_volume = surprise = 0.0
    base_volume = np.log(1e6) + 2.0 * np.log(S._VOL_LEVEL / S._VOL_LEVEL[2])
    for t in range(n):
        step = 0.0
        if t >= 2:
            cycle_mean = a1 * cycle[t - 1] + a2 * cycle[t - 2]
            distance = (log_close[t - 1] - ema_close) / sigma[t - 1]
            signal[t] = (
                MODE["phi1"] * u[t - 1]
                + S._PHI2 * u[t - 2]
                + S._PSI * np.tanh(surprise) * u[t - 1]
                - S._KAPPA * distance
                + (cycle_mean - cycle[t - 1])
            )
            step = cycle[t] - cycle_mean
        u[t] = signal[t] + noise[t] + step
        prev = log_close[t - 1] if t else 0.0
        log_close[t] = prev + S._DRIFT[regime[t]] + sigma[t] * u[t]
        log_volume[t] = base_volume[regime[t]] + 2.0 * logvol[t] + 0.4 * abs(u[t]) + volume_noise[t]
        seen = log_volume[t] - 0.4 * abs(u[t]) if MODE["center"] else log_volume[t]
        if t == 0:
            ema_close, ema_volume = log_close[0], seen
        else:
            ema_close += alpha * (log_close[t] - ema_close)
        surprise = (seen - ema_volume) / S._VOLUME_NOISE
        ema_volume += S._VOLUME_EMA * (seen - ema_volume)
    return signal, log_close, log_volume


def use(variant: dict) -> None:
    """Make trainables.bars.synthetic generate this variant from now on."""
    variant = dict(variant)
    MODE["center"] = bool(variant.pop("center", False))
    MODE["phi1"] = float(variant.pop("_PHI1", 0.0))
    for name, value in variant.items():
        setattr(S, name, value)
    S._returns_and_volume = _returns_and_volume


def lags(x: np.ndarray, n: int) -> np.ndarray:
    return np.stack([np.roll(x, k) for k in range(n)], axis=1)


def measure(n_bars: int = 100_000, seed: int = 5) -> tuple[float, float, float, float]:
    sim = S.simulate(n_bars, seed=seed)
    f = build_features(sim.bars, ["log_return", "volume_ratio"])
    r, vr = f["log_return"].to_numpy(), np.log(f["volume_ratio"].to_numpy())
    expected = pd.Series(sim.expected_log_return, index=sim.bars.index).reindex(f.index)
    y, ex = np.roll(r, -1)[:-1], np.roll(expected.to_numpy(), -1)[:-1]
    n = len(y)
    train, test = slice(20, int(n * 0.7)), slice(int(n * 0.7), n)
    base = np.mean((y[test] - y[train].mean()) ** 2)

    def r2(x):
        model = Ridge(alpha=1e-6).fit(x[train], y[train])
        return 1 - np.mean((y[test] - model.predict(x[test])) ** 2) / base

    linear = np.hstack([lags(r, 20), lags(vr, 20)])[:-1]
    products = np.hstack(
        [lags(r * np.tanh(2 * vr), 3), lags(r * vr, 3), lags(r * np.abs(r) / r.std(), 3)]
    )[:-1]
    ceiling = 1 - np.mean((y[test] - ex[test]) ** 2) / base
    ac1 = np.corrcoef(r[1:], r[:-1])[0, 1]
    return ceiling, r2(linear), r2(np.hstack([linear, products])), ac1


def main() -> None:
    if sys.argv[1:2] == ["--ablation"]:
        use(json.loads(os.environ.get("GEN", "{}")))
        script = Path(__file__).resolve().parents[1] / "ablation.py"
        sys.argv = [str(script), *sys.argv[2:]]
        runpy.run_path(str(script), run_name="__main__")
        return
    for variant in ast.literal_eval(sys.argv[1]) if len(sys.argv) > 1 else [{}]:
        saved = {k: getattr(S, k) for k in variant if hasattr(S, k)}
        use(variant)
        c, lin, prod, ac1 = measure()
        print(
            f"{variant}: ceiling {c:.3f} linear {lin:.3f} +products {prod:.3f} "
            f"edge {prod - lin:+.3f} ac1 {ac1:+.2f}",
            flush=True,
        )
        for name, value in saved.items():
            setattr(S, name, value)


if __name__ == "__main__":
    main()
