"""The trading view of the test part: what trading on a forecast's sign would have earned.

Timing (a one-bar execution delay). The forecast made at anchor ``t`` uses bar ``t``'s close,
so no trader can act on it at that price. Its position is entered at the next bar's open and
held one bar: it earns ``open[t + 1] -> open[t + 2]`` (``close[t + 1] -> close[t + 2]`` for
bars without an open). The anchor whose trade would end past the last bar gets none.

Positions: the sign of the predicted move (predicted level minus the current level for a
price target, the forecast itself for a return target; long / flat / short for the three
classes). A forecast of ``h > 1`` bars is held for its h bars: each forecast gets 1/h of
the capital, so the position over a bar is the mean of the last h signals (overlapping
portfolios, as Jegadeesh and Titman 1993), between -1 and +1; for h = 1 it is the sign.
Net of ``cost_bps`` basis points per unit of turnover (short to long is 2 units; the first
bar pays for entering).

Figures: the Sharpe ratio per bar with its 90% interval (Lo 2002: the delta method on the
mean and variance, with the EWC long-run variance of ``orchestrator.stats.significance`` for
autocorrelated returns), annualised by sqrt(bars per year) and, with a warning, even when the
test part holds less than a year of bars; Lo's autocorrelation-corrected annual figure
(mean over the long-run standard deviation) beside it; total return, max drawdown, hit rate,
turnover, exposure. The model's strategy is compared with buy-and-hold and with the same
rule on the best baseline's forecast by one-sided EWC tests of the mean per-bar return
difference (not by overlapping intervals).

This checks the signal; it is not a backtester (see ``NOTE``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from orchestrator.stats.significance import (
    LEVEL,
    ewc_dof,
    ewc_long_run_variance,
    mean_test,
    too_short,
)

__all__ = [
    "NOTE",
    "PRICE_TARGETS",
    "RETURN_TARGETS",
    "bars_per_year",
    "class_positions",
    "delayed_returns",
    "held_positions",
    "sharpe",
    "sign_positions",
    "strategy_figures",
    "summary_line",
    "tradable_target",
    "trading_view",
]

PRICE_TARGETS = ("close", "open", "high", "low")  # levels of the traded bar itself
RETURN_TARGETS = ("log_return",)
NOTE = (
    "This checks the signal; it is not a backtester: one unit of capital long, flat or short, "
    "a flat cost per unit of turnover, no slippage model, no position sizing, no financing "
    "costs."
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


def held_positions(signals: np.ndarray, horizon: int) -> np.ndarray:
    """The position over each execution bar: the mean of the last ``horizon`` signals (each
    forecast holds 1/h of the capital for its h bars; before the first h signals the missing
    ones are flat)."""
    s = np.asarray(signals, dtype=np.float64)
    h = max(int(horizon), 1)
    total = np.convolve(s, np.ones(h))[: len(s)]
    return total / h


def delayed_returns(prices: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, int]:
    """(return of ``prices[t + 1] -> prices[t + 2]`` for each local anchor row ``t`` whose
    trade ends inside the data, how many anchors that is: a prefix of them)."""
    prices = np.asarray(prices, dtype=np.float64)
    local = np.asarray(local, dtype=np.int64)
    n = int(np.sum(local + 2 <= len(prices) - 1))
    t = local[:n]
    return prices[t + 2] / prices[t + 1] - 1.0, n


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


def sharpe(net: np.ndarray, *, periods_per_year: float, horizon: int = 1) -> dict:
    """The Sharpe ratio of per-bar returns ``net``: per bar, its 90% interval, annualised
    (by sqrt(bars per year)), Lo's (2002) autocorrelation-corrected annual figure, and how
    many bars and years it rests on; ``warning`` when under a year of bars."""
    r = np.asarray(net, dtype=np.float64)
    n = len(r)
    years = n / periods_per_year if periods_per_year > 0 else math.nan
    out = {
        "n_bars": n,
        "years": years,
        "sharpe_per_bar": None,
        "sharpe_per_bar_ci_low": None,
        "sharpe_per_bar_ci_high": None,
        "sharpe": None,
        "sharpe_ci_low": None,
        "sharpe_ci_high": None,
        "sharpe_lo": None,
        "sharpe_note": "",
        "warning": "",
    }
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    if sd == 0:
        out["sharpe_note"] = "no variation in the returns"
        return out
    scale = math.sqrt(periods_per_year)
    mu, per_bar = float(r.mean()), float(r.mean()) / sd
    out["sharpe_per_bar"], out["sharpe"] = per_bar, per_bar * scale
    if not years >= 1:
        out["warning"] = (
            f"annualised from {n:,} bars ({years:.2g} of a year): under a year of bars the "
            "annual figure extrapolates and is mostly noise"
        )
    short = too_short(n, horizon)
    if short:
        out["sharpe_note"] = f"no interval: {short}"
        return out
    dof = ewc_dof(n, horizon)
    out["sharpe_lo"] = mu / math.sqrt(float(ewc_long_run_variance(r, dof))) * scale
    # Lo (2002): the Sharpe ratio's influence function, its long-run variance by EWC.
    c = r - mu
    psi = c / sd - per_bar / (2 * sd**2) * (c**2 - sd**2)
    se = math.sqrt(float(ewc_long_run_variance(psi, dof)) / n)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, dof)) * se
    out["sharpe_per_bar_ci_low"], out["sharpe_per_bar_ci_high"] = per_bar - half, per_bar + half
    out["sharpe_ci_low"], out["sharpe_ci_high"] = (per_bar - half) * scale, (per_bar + half) * scale
    return out


def strategy_figures(
    positions: np.ndarray,
    returns: np.ndarray,
    *,
    cost_bps: float,
    periods_per_year: float,
    horizon: int = 1,
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
    out = {
        **sharpe(net, periods_per_year=periods_per_year, horizon=horizon),
        "total_return": float(np.prod(1.0 + net) - 1.0),
        "max_drawdown": _max_drawdown(net),
        "hit_rate": float(np.mean(np.sign(p[active]) == np.sign(r[active])))
        if active.any()
        else None,
        "turnover_per_bar": float(trades.mean()) if n else 0.0,
        "exposure": float(np.mean(p != 0)) if n else 0.0,
    }
    return out, net


def _difference(net_model: np.ndarray, net_other: np.ndarray, horizon: int) -> dict:
    """One-sided EWC test that the model's strategy earns more per bar than the other."""
    r = mean_test(net_model - net_other, horizon=horizon, test="mean return difference (EWC)")
    return {
        "test": r.test,
        "mean_per_bar": r.estimate,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "p_value": r.p_better,
        "outcome": r.outcome,
        "detectable": r.detectable,
        "reason": r.reason,
    }


def _best(positions: dict[str, np.ndarray], loss: dict[str, float]) -> str:
    """The baseline with the lowest test loss among those whose rule changes its position
    (persistence forecasts no move and the training mean always the same sign: their rules
    are no trade and buy-and-hold or its mirror, which say nothing new); else among those
    that ever take a position; else any."""
    changing = [b for b in positions if np.unique(positions[b]).size > 1]
    trading = changing or [b for b in positions if np.any(positions[b] != 0)] or list(positions)
    return min(trading, key=lambda b: loss[b])


def _signals(test, pred, baselines, baseline_scores):
    """(target, model signals, {baseline: signals}, best baseline, rule) or None with a note."""
    names, task = list(test.targets.names), test.targets.task
    if task == "classification":
        model = class_positions(pred)
        signals = {b: class_positions(f) for b, f in baselines.items()}
        best = _best(signals, {b: -baseline_scores[b]["accuracy"] for b in baselines})
        return "class", model, signals, best, "long for 'up', flat for 'flat', short for 'down'"
    found = tradable_target(names)
    if found is None:
        return None
    k, target = found
    now = test.now()[:, k]
    key = f"mse_{target}" if len(names) > 1 else "mse"
    model = sign_positions(target, pred[:, k], now)
    signals = {b: sign_positions(target, f[:, k], now) for b, f in baselines.items()}
    best = _best(signals, {b: baseline_scores[b][key] for b in baselines})
    what = "change of " if target in PRICE_TARGETS else ""
    return target, model, signals, best, f"the sign of the predicted {what}{target}"


def trading_view(
    test,
    pred: np.ndarray,
    baselines: dict[str, np.ndarray],
    baseline_scores: dict[str, dict],
    *,
    cost_bps: float,
    periods: tuple[float, str],
) -> tuple[dict, pd.DataFrame | None]:
    """The ``trading`` block of promoted.json and the per-bar frame behind the equity plot.

    ``test``: the HoldoutRows (with ``open`` and ``close``); ``pred``: the chosen model's
    test outputs; ``baselines``: each baseline's outputs on the same rows,
    ``baseline_scores`` their test metrics (the best one that ever takes a position, by test
    MSE of the traded target or accuracy, is traded too).
    """
    found = _signals(test, pred, baselines, baseline_scores)
    if found is None:
        names = list(test.targets.names)
        return {
            "computed": False,
            "note": f"not computed: the target(s) {names} are neither prices "
            f"({', '.join(PRICE_TARGETS)}) nor returns ({', '.join(RETURN_TARGETS)}), so "
            "a forecast of them says nothing about a position",
        }, None
    target, model_sig, signals, best, rule = found
    h = int(test.targets.horizon)
    prices, price = (test.open, "open") if test.open is not None else (test.close, "close")
    returns, n = delayed_returns(prices, np.asarray(test.anchors) - test.first_row)
    per_year, how = periods
    common = dict(cost_bps=cost_bps, periods_per_year=per_year, horizon=h)
    model_pos, base_pos = held_positions(model_sig, h)[:n], held_positions(signals[best], h)[:n]
    model, net_model = strategy_figures(model_pos, returns, **common)
    hold, net_hold = strategy_figures(np.ones(n), returns, **common)
    base, net_base = strategy_figures(base_pos, returns, **common)
    held = "held one bar" if h == 1 else f"each forecast held {h} bars with 1/{h} of the capital"
    block = {
        "computed": True,
        "target": target,
        "rule": f"position = {rule}, decided at the anchor's close",
        "execution": f"one bar later: from the next bar's {price} to the {price} after ({held})",
        "price": price,
        "horizon": h,
        "cost_bps": cost_bps,
        "bars_per_year": per_year,
        "bars_per_year_from": how,
        "model": model,
        "buy_and_hold": hold,
        "best_baseline": {"name": best, **base},
        "model_vs_buy_and_hold": _difference(net_model, net_hold, h),
        "model_vs_best_baseline": _difference(net_model, net_base, h),
        "note": NOTE,
    }
    frame = pd.DataFrame(
        {
            "timestamp": test.timestamps[:n],
            "bar_return": returns,  # prices[t + 1] -> prices[t + 2], ``price`` in the block
            "position_model": model_pos,
            "net_model": net_model,
            "net_buy_and_hold": net_hold,
            "position_baseline": base_pos,
            "net_baseline": net_base,
        }
    )
    return block, frame


def _fig(f: dict) -> str:
    if f["sharpe"] is None:
        return "no position taken" if f["exposure"] == 0 else "no variation"
    interval = ""
    if f["sharpe_ci_low"] is not None:
        interval = f" [{f['sharpe_ci_low']:.2f}, {f['sharpe_ci_high']:.2f}]"
    lo = "" if f["sharpe_lo"] is None else f", Lo-corrected {f['sharpe_lo']:.2f}"
    return (
        f"Sharpe {f['sharpe']:.2f}{interval} a year{lo}, return {f['total_return']:+.2%}, "
        f"max drawdown {f['max_drawdown']:.2%}"
    )


def _diff(d: dict, other: str) -> str:
    if d["reason"]:
        return f"against {other}: no test possible ({d['reason']})"
    return (
        f"against {other}: {d['mean_per_bar']:+.4%} a bar [{d['ci_low']:+.4%}, "
        f"{d['ci_high']:+.4%}], one-sided p = {d['p_value']:.2g} ({d['outcome']}; "
        f"{d['test']})"
    )


def summary_line(block: dict) -> str:
    """The trading view in one line (console, report)."""
    if not block.get("computed"):
        return f"Trading view: {block.get('note', 'not computed')}"
    m, best = block["model"], block["best_baseline"]["name"]
    hit = "n/a" if m["hit_rate"] is None else f"{m['hit_rate']:.1%}"
    warning = f" ({m['warning']})" if m.get("warning") else ""
    vs_hold = _diff(block["model_vs_buy_and_hold"], "buy-and-hold")
    vs_best = _diff(block["model_vs_best_baseline"], f"the same rule on {best}")
    return (
        f"Trading the chosen model's forecast on the test part ({block['rule']}, traded "
        f"{block.get('execution', 'at the next bar')}; {block['cost_bps']:g} bp per unit of "
        f"turnover; {m['n_bars']:,} bars, {block['bars_per_year']:.0f} a year; "
        f"{LEVEL:.0%} intervals): {_fig(m)}{warning}, hit rate {hit}, turnover "
        f"{m['turnover_per_bar']:.2f} a bar; {vs_hold}; {vs_best}; buy-and-hold: "
        f"{_fig(block['buy_and_hold'])}; the same rule on {best}: "
        f"{_fig(block['best_baseline'])}. {block['note']}"
    )
