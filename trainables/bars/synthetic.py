"""Synthetic OHLCV bars with a known, learnable signal: the built-in default data.

The generator is a small hidden-state market model. Per bar ``t`` (all draws from one
``numpy.random.default_rng(seed)``, so a seed always gives the same frame):

1. **Regime** ``z_t`` in {bull, bear, quiet}: a sticky hidden Markov chain (a regime lasts
   100, 62 and 83 bars on average). It sets the drift ``mu_z`` (+2e-4, -2e-4, 0 per bar)
   and the volatility level ``sig_z`` (0.004, 0.008, 0.005).
2. **Volatility** ``sigma_t = sig_z * exp(h_t)`` with log-volatility
   ``h_t = 0.98 h_{t-1} + 0.08 xi_t`` (slow, persistent clusters).
3. **Cycle** ``c_t = 2 rho cos(w) c_{t-1} - rho^2 c_{t-2} + 0.18 eta_t`` with ``rho = 0.97``
   and period ``2 pi / w = 48`` bars: a damped, noise-driven oscillation of the log price
   (in units of ``sigma``). It makes returns predictable over many bars (what a
   ``horizon=20`` classifier needs), but only through a noisy view of the price path.
4. **Standardised return** ``u_t = s_t + e_t`` with Student-t(5) noise ``e_t`` (unit
   variance, fat tails) plus the cycle's innovation, and the predictable part

       s_t = 0.80 tanh(v_{t-1}) u_{t-1}             volume-confirmed momentum (non-linear)
           - 0.25 u_{t-2}                           reversal two bars later
           - 0.20 d_{t-1}                           mean reversion to the 20-bar EMA
           + E[c_t - c_{t-1} | c_{t-1}, c_{t-2}]    the cycle's expected step

   where ``v_t`` is the volume surprise (log volume minus its running average before the
   bar, in units of the volume noise; a move on unusually high volume continues, one on
   low volume fades) and ``d_t`` is the distance of the log close from its 20-bar EMA in
   units of ``sigma_t``.
5. **Log return** ``r_t = mu_z + sigma_t u_t``; ``close_t = close_{t-1} exp(r_t)`` from 100.
6. **Bars**: ``open_t`` is ``close_{t-1}`` times a tiny gap, ``high``/``low`` extend
   ``max``/``min(open, close)`` by half-normal intrabar excursions of size ``~0.6 sigma_t``,
   so ``high >= max(open, close) >= min(open, close) >= low > 0``. Log volume rises with
   the volatility level (``+2 log sigma``), with the size of the bar's move (``0.4 |u_t|``)
   and has its own noise (std 0.3), median about 1.5 million.

Every input of ``s_t`` except the latent cycle is a function of past bars (returns, closes,
volumes), so a sequence model on windows of past OHLCV and ``log_return`` can learn it.
About 52% of the next-bar return variance is the conditional mean ``mu_z + sigma_t s_t``
(the ceiling for a model that knew the hidden state, measured over 200,000 bars). A ridge
regression on 10 lagged log returns recovers about 21% out of sample (14-28% over seeds 0-9,
4,000 bars, 70/30 split); one that also forms return x volume products about 36%: the
volume-confirmed momentum is the edge a model that reads volume has over a linear one
(``benchmarks/data_stats.py``, docs/data.md). Lag-1 autocorrelation is about 0.36, below the
0.5 at which "next return = this return" would beat "next return = 0", so naive baselines
(persistence, zero, historical mean) do not beat a fitted model.

The momentum weight was 0.40 beside a linear lag-1 term of 0.20 until 2026-12-06: a
model's edge over ridge was then ~0.04 of skill even with 140,000 training bars, too small
for a 4,000-bar series' test part to tell apart (benchmarks/README.md, issue #19). Sweeps
of the older bars cannot be promoted by this version (their rows' hash differs).

Sample bars in a file, for the README's examples or your own tries::

    python -m trainables.synthetic --out bars.parquet --bars 4000          # the built-in series
    python -m trainables.synthetic --out universe.parquet --tickers 4      # 4 tickers, long format

``make_universe`` writes several tickers as one long frame (a ``ticker`` column), each the
built-in series with its own seed (``seed + k``), and, with ``random_walks``, tickers that are
pure random walks beside them (``RW<k>``: nothing in their past predicts their next return;
``random_walk_bars``): a universe where a fair verdict names the learnable tickers and none
of the random walks (benchmarks/universe_fdr.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainables.errors import ConfigError, UserError

__all__ = [
    "BUILTIN_SOURCE",
    "Simulation",
    "main",
    "make_bars",
    "make_universe",
    "random_walk_bars",
    "simulate",
    "ticker_names",
]

# Regimes: bull, bear, quiet. Rows of _TRANSITION sum to 1; the diagonal keeps a regime
# for 1 / (1 - p) bars on average.
_TRANSITION = np.array(
    [
        [0.990, 0.005, 0.005],
        [0.008, 0.984, 0.008],
        [0.006, 0.006, 0.988],
    ]
)
_DRIFT = np.array([2e-4, -2e-4, 0.0])
_VOL_LEVEL = np.array([0.004, 0.008, 0.005])

_LOGVOL_AR, _LOGVOL_NOISE = 0.98, 0.08
_CYCLE_RHO, _CYCLE_PERIOD, _CYCLE_NOISE = 0.97, 48.0, 0.18
_PHI2 = -0.25  # reversal two bars later
_PSI = 0.80  # volume-confirmed momentum
_KAPPA = 0.20  # mean reversion to the EMA of the log close
_EMA_SPAN = 20
_T_DOF = 5

_VOLUME_NOISE = 0.3  # std of log-volume noise; the volume surprise is measured in these units
_VOLUME_EMA = 0.1  # smoothing of the log-volume average behind the surprise


@dataclass(frozen=True)
class Simulation:
    """Bars plus the hidden state that made them (for tests and docs, never for training)."""

    bars: pd.DataFrame
    # [n] mean of r_t given the hidden state (regime, sigma_t, the cycle, all before t): no
    # forecast can do better, so its share of the variance is the (oracle) ceiling; one from
    # past bars alone reaches less, since the cycle is latent (docs/data.md).
    expected_log_return: np.ndarray
    regime: np.ndarray  # [n] 0 bull, 1 bear, 2 quiet


# How a run of ``python -m trainables.train`` on these bars names its data (config.json's
# origin), so that ``orchestrator.predict`` can rebuild them.
BUILTIN_SOURCE = "built-in synthetic bars"


def make_bars(
    n_bars: int = 4000, *, seed: int = 0, freq: str = "1h", start: str = "2020-01-01"
) -> pd.DataFrame:
    """Synthetic bars in the ``load_bars`` format; the same seed gives an identical frame."""
    return simulate(n_bars, seed=seed, freq=freq, start=start).bars


def simulate(
    n_bars: int = 4000, *, seed: int = 0, freq: str = "1h", start: str = "2020-01-01"
) -> Simulation:
    """Run the generator described in the module docstring."""
    if isinstance(n_bars, bool) or not isinstance(n_bars, (int, np.integer)) or n_bars < 3:
        raise ConfigError(f"n_bars must be an integer >= 3, but got n_bars={n_bars!r}")
    try:
        index = pd.date_range(start=start, periods=n_bars, freq=freq, name="timestamp")
        # No freq attribute, like bars loaded from a file (real bars have gaps).
        index = pd.DatetimeIndex(index, freq=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"cannot build timestamps from start={start!r}, freq={freq!r}: {err}"
        ) from err
    n = int(n_bars)
    rng = np.random.default_rng(seed)

    regime = _markov_chain(rng, n)
    logvol = np.zeros(n)
    xi = rng.standard_normal(n)
    for t in range(1, n):
        logvol[t] = _LOGVOL_AR * logvol[t - 1] + _LOGVOL_NOISE * xi[t]
    sigma = _VOL_LEVEL[regime] * np.exp(logvol)

    cycle = np.zeros(n)
    omega = 2 * np.pi / _CYCLE_PERIOD
    a1, a2 = 2 * _CYCLE_RHO * np.cos(omega), -(_CYCLE_RHO**2)
    cycle_noise = _CYCLE_NOISE * rng.standard_normal(n)
    for t in range(2, n):
        cycle[t] = a1 * cycle[t - 1] + a2 * cycle[t - 2] + cycle_noise[t]

    noise = rng.standard_t(_T_DOF, n) / np.sqrt(_T_DOF / (_T_DOF - 2))
    volume_noise = _VOLUME_NOISE * rng.standard_normal(n)
    signal, log_close, log_volume = _returns_and_volume(
        cycle, noise, volume_noise, sigma, logvol, regime
    )

    close = 100.0 * np.exp(log_close)
    gap = 0.05 * sigma * rng.standard_normal(n)
    prev_close = np.concatenate([[100.0], close[:-1]])
    open_ = prev_close * np.exp(gap)
    # Multiplying by a factor >= 1 (<= 1) keeps high >= max(open, close) (low <= min) exactly.
    high = np.maximum(open_, close) * np.exp(0.6 * sigma * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.6 * sigma * np.abs(rng.standard_normal(n)))
    volume = np.round(np.exp(log_volume))

    bars = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index,
        dtype=np.float64,
    )
    expected = _DRIFT[regime] + sigma * signal
    return Simulation(bars=bars, expected_log_return=expected, regime=regime)


def _markov_chain(rng: np.random.Generator, n: int) -> np.ndarray:
    cumulative = np.cumsum(_TRANSITION, axis=1)
    draws = rng.random(n)
    regime = np.empty(n, dtype=np.int64)
    regime[0] = 2
    for t in range(1, n):
        regime[t] = min(int(np.searchsorted(cumulative[regime[t - 1]], draws[t], side="right")), 2)
    return regime


def _returns_and_volume(
    cycle: np.ndarray,
    noise: np.ndarray,
    volume_noise: np.ndarray,
    sigma: np.ndarray,
    logvol: np.ndarray,
    regime: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recursive part: each return depends on past returns, closes and volumes.

    Returns the predictable part ``s_t``, ``log(close_t / 100)`` and the log volume.
    """
    n = len(cycle)
    u = np.zeros(n)  # standardised return
    signal = np.zeros(n)  # its predictable part s_t
    log_close = np.zeros(n)  # log(close / 100)
    log_volume = np.zeros(n)
    alpha = 2.0 / (_EMA_SPAN + 1)
    a1 = 2 * _CYCLE_RHO * np.cos(2 * np.pi / _CYCLE_PERIOD)
    a2 = -(_CYCLE_RHO**2)
    ema_close = 0.0
    ema_volume = 0.0
    surprise = 0.0
    base_volume = np.log(1e6) + 2.0 * np.log(_VOL_LEVEL / _VOL_LEVEL[2])
    for t in range(n):
        step = 0.0
        if t >= 2:
            cycle_mean = a1 * cycle[t - 1] + a2 * cycle[t - 2]
            distance = (log_close[t - 1] - ema_close) / sigma[t - 1]
            signal[t] = (
                _PHI2 * u[t - 2]
                + _PSI * np.tanh(surprise) * u[t - 1]
                - _KAPPA * distance
                + (cycle_mean - cycle[t - 1])
            )
            step = cycle[t] - cycle_mean  # the cycle's unpredictable innovation
        u[t] = signal[t] + noise[t] + step
        prev = log_close[t - 1] if t else 0.0
        log_close[t] = prev + _DRIFT[regime[t]] + sigma[t] * u[t]
        log_volume[t] = base_volume[regime[t]] + 2.0 * logvol[t] + 0.4 * abs(u[t]) + volume_noise[t]
        if t == 0:
            ema_close, ema_volume = log_close[0], log_volume[0]
        else:
            ema_close += alpha * (log_close[t] - ema_close)
        # Surprise against the average *before* this bar, so a spike counts in full.
        surprise = (log_volume[t] - ema_volume) / _VOLUME_NOISE
        ema_volume += _VOLUME_EMA * (log_volume[t] - ema_volume)
    return signal, log_close, log_volume


# ---------------------------------------------------------------------- several tickers


def ticker_names(n_tickers: int) -> list[str]:
    """The universe's ticker names: SYN0, SYN1, ..."""
    return [f"SYN{k}" for k in range(n_tickers)]


def random_walk_bars(
    n_bars: int = 4000, *, seed: int = 0, freq: str = "1h", start: str = "2020-01-01"
) -> pd.DataFrame:
    """Bars of a pure random walk in the ``load_bars`` format: log returns iid Student-t(5)
    with the built-in series' typical size (0.005 a bar), volume log-normal and independent
    of everything. No forecast from past bars beats the training mean of the returns."""
    simulate(3, freq=freq, start=start)  # the same checks of start and freq, the same errors
    index = pd.DatetimeIndex(
        pd.date_range(start=start, periods=int(n_bars), freq=freq, name="timestamp"), freq=None
    )
    rng = np.random.default_rng(seed)
    n = int(n_bars)
    sigma = 0.005
    returns = sigma * rng.standard_t(_T_DOF, n) / np.sqrt(_T_DOF / (_T_DOF - 2))
    close = 100.0 * np.exp(np.cumsum(returns))
    prev_close = np.concatenate([[100.0], close[:-1]])
    open_ = prev_close * np.exp(0.05 * sigma * rng.standard_normal(n))
    high = np.maximum(open_, close) * np.exp(0.6 * sigma * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.6 * sigma * np.abs(rng.standard_normal(n)))
    volume = np.round(np.exp(np.log(1.5e6) + _VOLUME_NOISE * rng.standard_normal(n)))
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index,
        dtype=np.float64,
    )


def make_universe(
    n_tickers: int,
    n_bars: int = 4000,
    *,
    seed: int = 0,
    freq: str = "1h",
    start: str = "2020-01-01",
    random_walks: int = 0,
) -> pd.DataFrame:
    """``n_tickers`` learnable series as one long frame: columns ``timestamp, ticker, open,
    high, low, close, volume``, ticker ``SYN<k>`` drawn with seed ``seed + k`` (so SYN0 is
    ``make_bars(n_bars, seed=seed)``), every ticker on the same timestamps; then
    ``random_walks`` tickers ``RW<k>``, random walks (``random_walk_bars``) with seed
    ``seed + 100_000 + k``."""
    for name, value, low in (("n_tickers", n_tickers, 0), ("random_walks", random_walks, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, but got {name}={value!r}")
    if n_tickers + random_walks < 1:
        raise ConfigError("a universe needs at least one ticker (n_tickers or random_walks)")
    frames = []
    for k, name in enumerate(ticker_names(int(n_tickers))):
        bars = make_bars(n_bars, seed=seed + k, freq=freq, start=start).reset_index()
        bars.insert(1, "ticker", name)
        frames.append(bars)
    for k in range(int(random_walks)):
        bars = random_walk_bars(n_bars, seed=seed + 100_000 + k, freq=freq, start=start)
        bars = bars.reset_index()
        bars.insert(1, "ticker", f"RW{k}")
        frames.append(bars)
    return pd.concat(frames, ignore_index=True)


def _parser():
    from trainables.cli import ArgumentParser

    p = ArgumentParser(
        prog="python -m trainables.synthetic",
        description="Write sample bars from the built-in generator (a known, learnable "
        "signal; docs/data.md) to a Parquet or CSV file.",
    )
    p.add_argument("--out", required=True, help="a .parquet, .pq or .csv file (not there yet)")
    p.add_argument("--bars", type=int, default=4000, help="bars per ticker (default: %(default)s)")
    p.add_argument(
        "--tickers",
        type=int,
        default=1,
        help="1: one series, no ticker column; more: a long frame with a ticker column "
        "(SYN0, SYN1, ...; pick one with --ticker) (default: %(default)s)",
    )
    p.add_argument(
        "--random-walks",
        type=int,
        default=0,
        help="with --tickers: this many random-walk tickers (RW0, RW1, ...) beside the "
        "learnable ones, which no model should beat its baselines on (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of SYN0; SYN<k> uses seed + k (default: %(default)s)",
    )
    p.add_argument(
        "--freq", default="1h", help="bar spacing, a pandas frequency (default: %(default)s)"
    )
    p.add_argument("--start", default="2020-01-01", help="first timestamp (default: %(default)s)")
    return p


def write_sample(argv: list[str] | None = None, *, log=print) -> Path:
    """Everything ``main`` does, raising UserError instead of exiting."""
    from trainables.atomic import write_file

    args = _parser().parse_args(argv)
    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ConfigError(f"--out {out}: use a .parquet, .pq or .csv file name")
    if out.exists():
        raise ConfigError(f"--out {out} already exists; choose another name or remove it")
    checks = (("--bars", args.bars, 3), ("--tickers", args.tickers, 1))
    for flag, value, low in (*checks, ("--random-walks", args.random_walks, 0)):
        if value < low:
            raise ConfigError(f"{flag} must be >= {low}, but got {value}")
    kw = {"seed": args.seed, "freq": args.freq, "start": args.start}
    several = args.tickers > 1 or args.random_walks > 0
    frame = (
        make_universe(args.tickers, args.bars, random_walks=args.random_walks, **kw)
        if several
        else make_bars(args.bars, **kw).reset_index()
    )
    if out.suffix.lower() == ".csv":
        write_file(out, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        write_file(out, lambda tmp: frame.to_parquet(tmp, index=False))
    span = f"{frame['timestamp'].iloc[0]} .. {frame['timestamp'].iloc[-1]}"
    if not several:
        log(f"Wrote {args.bars:,} bars ({span}, seed {args.seed}) to {out}")
    else:
        names = ticker_names(args.tickers)
        n = args.random_walks
        walks = f" and {n} random walk{'s' if n > 1 else ''} (RW0{f'..RW{n - 1}' if n > 1 else ''})"
        walks = walks if n else ""
        log(
            f"Wrote {args.tickers} tickers x {args.bars:,} bars ({names[0]}..{names[-1]}, seeds "
            f"{args.seed}..{args.seed + args.tickers - 1}{walks}, {span}) to {out}: pick one "
            f"with --ticker {names[0]}, or all with --tickers all"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        write_sample(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
