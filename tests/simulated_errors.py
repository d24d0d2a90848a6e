"""Simulated forecast errors and outcomes with the dependence real ones have, for the
significance tests and benchmarks/verdict_size.py (one copy, so the benchmark measures what
the tests check). ``reps``: that many independent series at once, as columns of ``[n, reps]``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal


def _shape(n: int, reps: int | None) -> tuple[int, ...]:
    return (n,) if reps is None else (n, reps)


def ma_errors(rng: np.random.Generator, n: int, h: int, *, reps: int | None = None) -> np.ndarray:
    """Unit-variance errors of overlapping h-step forecasts: MA(h - 1)."""
    z = rng.normal(size=_shape(n + h - 1, reps))
    c = np.cumsum(np.concatenate([np.zeros_like(z[:1]), z]), axis=0)
    return (c[h:] - c[:-h]) / math.sqrt(h)


def ar_errors(
    rng: np.random.Generator, n: int, phi: float, *, reps: int | None = None
) -> np.ndarray:
    """AR(1) errors with coefficient ``phi``, after a 200-step burn-in."""
    e = rng.normal(size=_shape(n + 200, reps))
    return signal.lfilter([1.0], [1.0, -phi], e, axis=0)[200:]


def volatility_path(rng: np.random.Generator, n: int, *, reps: int | None = None) -> np.ndarray:
    """A volatility path with strong clustering (log-volatility AR(1), 0.95)."""
    return np.exp(ar_errors(rng, n, 0.95, reps=reps) * 0.3)


def markov_flags(
    rng: np.random.Generator, n: int, stay: float, *, p: float = 0.5, reps: int | None = None
) -> np.ndarray:
    """0/1 'correct' flags that come in runs: a two-state Markov chain with stationary
    P(1) = ``p`` whose lag-1 autocorrelation is ``2 stay - 1`` (``stay``: the probability of
    keeping the state at p = 0.5; 0.5 is independent flags)."""
    rho = 2 * stay - 1
    stay1, stay0 = p + (1 - p) * rho, (1 - p) + p * rho  # P(1 -> 1), P(0 -> 0)
    u = rng.random(_shape(n, reps))
    out = np.empty(_shape(n, reps))
    state = u[0] < p
    out[0] = state
    for t in range(1, n):
        state = np.where(state, u[t] < stay1, u[t] >= stay0)
        out[t] = state
    return out


def markov_labels(
    rng: np.random.Generator, n: int, run: float, *, k: int = 3, reps: int | None = None
) -> np.ndarray:
    """Class labels 0..k-1 in runs of mean length ``run``: each bar keeps the class with
    probability 1 - 1/run, else draws a fresh one uniformly (possibly the same)."""
    u, fresh = rng.random(_shape(n, reps)), rng.integers(0, k, _shape(n, reps))
    out = np.empty(_shape(n, reps), dtype=np.int64)
    out[0] = fresh[0]
    for t in range(1, n):
        out[t] = np.where(u[t] < 1.0 / run, fresh[t], out[t - 1])
    return out
