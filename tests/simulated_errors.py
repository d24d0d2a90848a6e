"""Simulated forecast errors with the dependence real ones have, for the significance tests
and benchmarks/verdict_size.py (one copy, so the benchmark measures what the tests check)."""

from __future__ import annotations

import math

import numpy as np


def ma_errors(rng: np.random.Generator, n: int, h: int) -> np.ndarray:
    """Unit-variance errors of overlapping h-step forecasts: MA(h - 1)."""
    z = rng.normal(size=n + h - 1)
    return np.convolve(z, np.ones(h), mode="valid") / math.sqrt(h)


def ar_errors(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """AR(1) errors with coefficient ``phi``, after a 200-step burn-in."""
    e = rng.normal(size=n + 200)
    x = np.zeros_like(e)
    for t in range(1, len(e)):
        x[t] = phi * x[t - 1] + e[t]
    return x[200:]


def volatility_path(rng: np.random.Generator, n: int) -> np.ndarray:
    """A volatility path with strong clustering (log-volatility AR(1), 0.95)."""
    return np.exp(ar_errors(rng, n, 0.95) * 0.3)
