"""The trading view of the test part: what trading on a forecast's sign would have earned.

A position per test bar from the forecast made at that bar: the sign of the predicted move
(predicted level minus the current level for a price target, the forecast itself for a
return target; long / flat / short for the three classes). It is held over the next bar and
earns that bar's return of the traded instrument (its close), net of ``cost_bps`` basis
points per unit of turnover (going from short to long is 2 units). Figures: annualised
Sharpe with a moving-block bootstrap 95% interval, total return, max drawdown, hit rate,
turnover and the share of bars in the market, next to buy-and-hold and to the same rule on
the best baseline's forecast.

This checks the signal; it is not a backtester (see ``NOTE``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orchestrator.significance import N_RESAMPLES, block_indices, block_length

__all__ = [
    "NOTE",
    "PRICE_TARGETS",
    "RETURN_TARGETS",
    "bars_per_year",
    "class_positions",
    "next_bar_returns",
    "sign_positions",
    "strategy_figures",
    "summary_line",
    "tradable_target",
    "trading_view",
]

PRICE_TARGETS = ("close", "open", "high", "low")  # levels of the traded bar itself
RETURN_TARGETS = ("log_return",)
NOTE = (
    "This checks the signal; it is not a backtester: one unit long, flat or short, a flat "
    "cost per unit of turnover, no slippage model, no position sizing, no financing costs."
)


def tradable_target(names: list[str]) -> tuple[int, str] | None:
    """(column, name) of the target whose forecast gives a position: close first, then the
    other prices, then log_return; None when no target is a price or a return."""
    for name in (*PRICE_TARGETS, *RETURN_TARGETS):
        if name in names:
            return names.index(name), name
    return None


def sign_positions(target: str, pred: np.ndarray, now: np.ndarray) -> np.ndarray:
    """-1 / 0 / +1 per sample: the sign of the predicted move of ``target``."""
    move = pred - now if target in PRICE_TARGETS else pred
    return np.sign(np.asarray(move, dtype=np.float64))


def class_positions(proba: np.ndarray) -> np.ndarray:
    """Short / flat / long for the predicted class down / flat / up."""
    return np.asarray(proba).argmax(axis=1).astype(np.float64) - 1.0


def next_bar_returns(close: np.ndarray) -> np.ndarray:
    """Simple return of each bar to the next: ``close[t + 1] / close[t] - 1`` (n - 1 values)."""
    close = np.asarray(close, dtype=np.float64)
    return close[1:] / close[:-1] - 1.0


def bars_per_year(index: pd.DatetimeIndex) -> tuple[float, str]:
    """(bars per year, how it was found) from the data's own timestamps.

    The median count of bars in the calendar years the data covers completely (every year
    but the first and the last); with no such year, the bar count scaled to 365.25 days by
    the time the data spans.
    """
    index = pd.DatetimeIndex(index)
    years = index.year
    counts = pd.Series(1, index=years).groupby(level=0).sum()
    inner = counts.iloc[1:-1]
    if len(inner):
        return float(inner.median()), f"median bars per full calendar year ({len(inner)} year(s))"
    days = (index[-1] - index[0]) / pd.Timedelta(days=1)
    if days <= 0:
        return math.nan, "no time span"
    return (len(index) - 1) * 365.25 / days, f"{len(index):,} bars over {days:.1f} days, scaled"


def _max_drawdown(net: np.ndarray) -> float:
    equity = np.cumprod(1.0 + net)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1.0 - equity / peak)) if len(equity) else 0.0


def strategy_figures(
    positions: np.ndarray,
    returns: np.ndarray,
    *,
    cost_bps: float,
    periods_per_year: float,
    horizon: int = 1,
    seed: int = 0,
) -> tuple[dict, np.ndarray]:
    """(figures, net return per bar) of holding ``positions[t]`` over the bar ``returns[t]``.

    Turnover starts from flat: the first bar pays for entering its position.
    """
    p = np.asarray(positions, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    trades = np.abs(np.diff(np.concatenate([[0.0], p])))
    net = p * r - cost_bps / 1e4 * trades
    n = len(net)
    active = (p != 0) & (r != 0)
    sd = float(net.std(ddof=1)) if n > 1 else 0.0
    scale = math.sqrt(periods_per_year)
    out = {
        "sharpe": float(net.mean() / sd * scale) if sd > 0 else None,
        "sharpe_ci_low": None,
        "sharpe_ci_high": None,
        "total_return": float(np.prod(1.0 + net) - 1.0),
        "max_drawdown": _max_drawdown(net),
        "hit_rate": float(np.mean(np.sign(p[active]) == np.sign(r[active])))
        if active.any()
        else None,
        "turnover_per_bar": float(trades.mean()) if n else 0.0,
        "exposure": float(np.mean(p != 0)) if n else 0.0,
        "n_bars": n,
    }
    if out["sharpe"] is not None:
        idx = block_indices(n, block_length(n, horizon), N_RESAMPLES, np.random.default_rng(seed))
        draws = net[idx]
        sds = draws.std(axis=1, ddof=1)
        ok = sds > 0
        sharpes = draws[ok].mean(axis=1) / sds[ok] * scale
        low, high = np.percentile(sharpes, [2.5, 97.5])
        out["sharpe_ci_low"], out["sharpe_ci_high"] = float(low), float(high)
    return out, net


def _best(positions: dict[str, np.ndarray], loss: dict[str, float]) -> str:
    """The baseline with the lowest test loss among those whose rule ever takes a position
    (persistence forecasts no move, so trading it says nothing); any, if none does."""
    trading = [b for b in positions if np.any(positions[b] != 0)] or list(positions)
    return min(trading, key=lambda b: loss[b])


def trading_view(
    test,
    pred: np.ndarray,
    baselines: dict[str, np.ndarray],
    baseline_scores: dict[str, dict],
    *,
    cost_bps: float,
    periods: tuple[float, str],
    seed: int = 0,
) -> tuple[dict, pd.DataFrame | None]:
    """The ``trading`` block of promoted.json and the per-bar frame behind the equity plot.

    ``test``: the HoldoutRows (with ``close``); ``pred``: the chosen model's test outputs;
    ``baselines``: each baseline's outputs on the same rows, ``baseline_scores`` their test
    metrics (the best one that ever takes a position, by test MSE of the traded target or
    accuracy, is traded too).
    """
    names, task = list(test.targets.names), test.targets.task
    if task == "classification":
        target, model_pos = "class", class_positions(pred)
        positions = {b: class_positions(f) for b, f in baselines.items()}
        best = _best(positions, {b: -baseline_scores[b]["accuracy"] for b in baselines})
        rule = "long for 'up', flat for 'flat', short for 'down'"
    else:
        found = tradable_target(names)
        if found is None:
            return {
                "computed": False,
                "note": f"not computed: the target(s) {names} are neither prices "
                f"({', '.join(PRICE_TARGETS)}) nor returns ({', '.join(RETURN_TARGETS)}), so "
                "a forecast of them says nothing about a position",
            }, None
        k, target = found
        now = test.now()[:, k]
        key = f"mse_{target}" if len(names) > 1 else "mse"
        model_pos = sign_positions(target, pred[:, k], now)
        positions = {b: sign_positions(target, f[:, k], now) for b, f in baselines.items()}
        best = _best(positions, {b: baseline_scores[b][key] for b in baselines})
        rule = (
            f"the sign of the predicted change of {target}"
            if target in PRICE_TARGETS
            else f"the sign of the predicted {target}"
        )
    local = np.asarray(test.anchors) - test.first_row
    close = np.asarray(test.close, dtype=np.float64)
    returns = close[local + 1] / close[local] - 1.0
    per_year, how = periods
    common = dict(cost_bps=cost_bps, periods_per_year=per_year, horizon=test.targets.horizon)
    model, net_model = strategy_figures(model_pos, returns, seed=seed, **common)
    hold, net_hold = strategy_figures(np.ones(len(returns)), returns, seed=seed, **common)
    base_pos = positions[best]
    base, net_base = strategy_figures(base_pos, returns, seed=seed, **common)
    block = {
        "computed": True,
        "target": target,
        "rule": f"position = {rule}, held over the next bar",
        "cost_bps": cost_bps,
        "bars_per_year": per_year,
        "bars_per_year_from": how,
        "model": model,
        "buy_and_hold": hold,
        "best_baseline": {"name": best, **base},
        "note": NOTE,
    }
    frame = pd.DataFrame(
        {
            "timestamp": test.timestamps,
            "next_bar_return": returns,
            "position_model": model_pos,
            "net_model": net_model,
            "net_buy_and_hold": net_hold,
            "position_baseline": base_pos,
            "net_baseline": net_base,
        }
    )
    return block, frame


def summary_line(block: dict) -> str:
    """The trading view in one line (console, report)."""
    if not block.get("computed"):
        return f"Trading view: {block.get('note', 'not computed')}"

    def fig(f: dict) -> str:
        if f["sharpe"] is None:
            return "no position taken" if f["exposure"] == 0 else "no variation"
        return (
            f"Sharpe {f['sharpe']:.2f} [{f['sharpe_ci_low']:.2f}, {f['sharpe_ci_high']:.2f}], "
            f"return {f['total_return']:+.2%}, max drawdown {f['max_drawdown']:.2%}"
        )

    m = block["model"]
    hit = "n/a" if m["hit_rate"] is None else f"{m['hit_rate']:.1%}"
    return (
        f"Trading the chosen model's forecast on the test part ({block['rule']}; "
        f"{block['cost_bps']:g} bp per unit of turnover, {block['bars_per_year']:.0f} bars a "
        f"year): {fig(m)}, hit rate {hit}, turnover {m['turnover_per_bar']:.2f} a bar; "
        f"buy-and-hold: {fig(block['buy_and_hold'])}; the same rule on "
        f"{block['best_baseline']['name']}: {fig(block['best_baseline'])}. {block['note']}"
    )
