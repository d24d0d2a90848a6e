"""The false discovery rate across a universe's tickers: which "beats the baselines" survive.

Each ticker's promotion tests "better than every baseline" on its own test part: an
intersection-union test whose p-value is the largest one-sided deciding p over the baselines
(``chosen.iu_p`` in its ``promoted.json``, orchestrator/stats/verdicts.py). With many tickers some
pass by chance (20 random walks at 5% give one "winner" on average), so the universe's
verdict adjusts those p-values with **Benjamini-Yekutieli** (statsmodels ``fdr_by``) and
names as winners only the tickers that survive at ``FDR_LEVEL``: among them, the expected
share of tickers that do not really beat their baselines stays below 10%.

Why Benjamini-Yekutieli and not Benjamini-Hochberg: BH needs the tests to be independent or
positively dependent (PRDS); tickers co-move (one market, one day's news) and their test
statistics are correlated in ways nobody checks, so BY, valid under any dependence, at the
price of a factor sum(1/i) (about 3.0 for 10 tickers, 6.8 for 500) on the adjusted p-values.
``benchmarks/universe_fdr.py`` measures both the error rate and the power it costs.
"""

from __future__ import annotations

import math

import numpy as np
from statsmodels.stats.multitest import multipletests

__all__ = ["FDR_LEVEL", "METHOD", "METHOD_NAME", "WHY", "adjust", "iu_p_of"]

FDR_LEVEL = 0.10
METHOD = "fdr_by"  # statsmodels' name
METHOD_NAME = "Benjamini-Yekutieli"
WHY = "valid under any dependence between the tickers' tests (tickers co-move)"


def adjust(p_values: dict[str, float], *, level: float = FDR_LEVEL) -> dict[str, dict]:
    """ticker -> {"adjusted_p", "winner"} by Benjamini-Yekutieli over every ticker given (a
    ticker without a p-value counts as p = 1: tested, never a winner)."""
    tickers = list(p_values)
    if not tickers:
        return {}
    p = np.array([_p(p_values[t]) for t in tickers], dtype=np.float64)
    reject, adjusted, _, _ = multipletests(p, alpha=level, method=METHOD)
    return {
        t: {"adjusted_p": float(a), "winner": bool(r)}
        for t, a, r in zip(tickers, adjusted, reject, strict=True)
    }


def _p(value) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        return 1.0
    return min(max(p, 0.0), 1.0) if math.isfinite(p) else 1.0


def iu_p_of(index: dict) -> float:
    """The intersection-union p-value of a promotion's chosen model: ``chosen.iu_p`` (#20).

    A promotion written before that field existed had two-sided deciding p-values; each is
    turned into the one-sided p of "the model is better" (half of it when the estimate
    favours the model, else one minus half), and the largest is taken."""
    chosen = index.get("chosen") or {}
    if chosen.get("iu_p") is not None:
        return _p(chosen["iu_p"])
    one_sided = []
    for c in chosen.get("comparisons") or []:
        if not c.get("decides"):
            continue
        p, estimate = _p(c.get("p_value")), c.get("estimate")
        favours = estimate is not None and math.isfinite(estimate) and estimate > 0
        one_sided.append(p / 2 if favours else 1 - p / 2)
    return max(one_sided) if one_sided else 1.0
