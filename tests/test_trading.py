"""The trading view: figures on a hand-made price path with known positions, computed by hand."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from orchestrator.holdout import HoldoutRows
from orchestrator.trading import (
    NOTE,
    bars_per_year,
    class_positions,
    next_bar_returns,
    sign_positions,
    strategy_figures,
    summary_line,
    trading_view,
)
from trainables.dataset import Targets

CLOSE = [100.0, 102.0, 101.0, 101.0, 104.0, 100.0]
POSITIONS = [1.0, -1.0, -1.0, 0.0, 1.0]  # held over bars 0->1, 1->2, ..., 4->5


def test_figures_on_a_hand_made_path_match_hand_computed_ones():
    # Bar by bar, at 10 bp per unit of turnover (flat before the first bar):
    #   long  100 -> 102: +2/100,    enter long (1 unit):      cost 0.001
    #   short 102 -> 101: +1/102,    long to short (2 units):  cost 0.002
    #   short 101 -> 101:  0,        no trade
    #   flat  101 -> 104:  0,        short to flat (1 unit):   cost 0.001
    #   long  104 -> 100: -4/104,    flat to long (1 unit):    cost 0.001
    net = [2 / 100 - 0.001, 1 / 102 - 0.002, 0.0, -0.001, -4 / 104 - 0.001]
    returns = next_bar_returns(np.array(CLOSE))
    assert returns == pytest.approx([2 / 100, -1 / 102, 0.0, 3 / 101, -4 / 104])
    figures, per_bar = strategy_figures(
        np.array(POSITIONS), returns, cost_bps=10, periods_per_year=252
    )
    assert per_bar == pytest.approx(net)
    assert figures["sharpe"] == pytest.approx(
        statistics.mean(net) / statistics.stdev(net) * math.sqrt(252)
    )
    assert figures["total_return"] == pytest.approx(math.prod(1 + x for x in net) - 1)
    peak = (1 + net[0]) * (1 + net[1])  # equity is highest after bar 1
    trough = peak * (1 + net[2]) * (1 + net[3]) * (1 + net[4])
    assert figures["max_drawdown"] == pytest.approx(1 - trough / peak)
    # Bars in the market with a move: 0 (right), 1 (right), 4 (wrong); bar 2 did not move.
    assert figures["hit_rate"] == pytest.approx(2 / 3)
    assert figures["turnover_per_bar"] == pytest.approx((1 + 2 + 0 + 1 + 1) / 5)
    assert figures["exposure"] == pytest.approx(4 / 5)
    assert figures["n_bars"] == 5


def test_sharpe_interval_brackets_the_estimate_and_agrees_with_the_iid_formula():
    # On iid returns the block bootstrap interval is close to the textbook one,
    # SR +- 1.96 sqrt((1 + SR^2 / 2) / n) (per bar, then annualised).
    rng = np.random.default_rng(0)
    returns = 0.0005 + 0.01 * rng.standard_normal(2000)
    figures, _ = strategy_figures(np.ones(2000), returns, cost_bps=0, periods_per_year=252)
    sr = returns.mean() / returns.std(ddof=1)
    half = 1.96 * math.sqrt((1 + sr**2 / 2) / 2000) * math.sqrt(252)
    low, high = figures["sharpe_ci_low"], figures["sharpe_ci_high"]
    assert low < figures["sharpe"] < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)


def test_no_position_means_no_sharpe():
    figures, net = strategy_figures(
        np.zeros(4), np.array([0.01, -0.02, 0.0, 0.01]), cost_bps=1, periods_per_year=252
    )
    assert figures["sharpe"] is None and figures["exposure"] == 0 and not net.any()
    assert figures["hit_rate"] is None


def test_positions_from_forecasts():
    # Price targets trade the predicted change, return targets the forecast's sign,
    # classes go short / flat / long.
    now = np.array([10.0, 10.0, 10.0])
    assert list(sign_positions("close", np.array([11.0, 10.0, 9.0]), now)) == [1, 0, -1]
    assert list(sign_positions("log_return", np.array([0.01, -0.02, 0.0]), now)) == [1, -1, 0]
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    assert list(class_positions(proba)) == [-1, 0, 1]


def test_bars_per_year_from_the_observed_count_per_calendar_year():
    # Business days from mid-2018 to mid-2022: the full years 2019-2021 have 261, 262, 261.
    days = pd.bdate_range("2018-06-01", "2022-06-30")
    per_year, how = bars_per_year(days)
    assert per_year == 261 and "full calendar year" in how
    hourly = pd.date_range("2020-01-01", periods=2401, freq="h")  # 100 days, no full year
    assert bars_per_year(hourly)[0] == pytest.approx(24 * 365.25)


def _holdout(names: list[str], close: list[float]) -> HoldoutRows:
    index = pd.date_range("2024-01-01", periods=len(close), freq="D")
    features = pd.DataFrame({"close": close, "volume": 1000.0}, index=index)
    values = features[names].to_numpy()
    values = np.vstack([values[1:], np.full((1, len(names)), np.nan)])  # horizon 1
    targets = Targets(task="regression", values=values, names=names, horizon=1)
    return HoldoutRows(
        features=features,
        anchors=np.arange(len(close) - 1),
        first_row=0,
        targets=targets,
        close=np.array(close),
    )


def test_trading_view_trades_the_model_buy_and_hold_and_the_best_baseline():
    test = _holdout(["close"], CLOSE)
    now = np.array(CLOSE[:-1])[:, None]
    pred = now + np.array(POSITIONS)[:, None]  # predicted change = the hand positions
    ridge = now - 1.0  # always predicts a fall
    # Persistence has the lower MSE but forecasts no move: the rule on it never trades, so
    # the best baseline that does (ridge) is traded instead.
    scores = {"persistence": {"mse": 3.0}, "ridge": {"mse": 4.0}}
    block, frame = trading_view(
        test, pred, {"persistence": now, "ridge": ridge}, scores, cost_bps=10, periods=(252, "x")
    )
    expected, _ = strategy_figures(
        np.array(POSITIONS), next_bar_returns(np.array(CLOSE)), cost_bps=10, periods_per_year=252
    )
    assert block["model"] == expected
    assert block["best_baseline"]["name"] == "ridge"
    assert list(frame["position_baseline"]) == [-1.0] * 5
    assert list(frame["position_model"]) == POSITIONS
    assert block["buy_and_hold"]["exposure"] == 1.0
    assert block["note"] == NOTE and "not a backtester" in summary_line(block)


def test_a_target_that_is_no_price_or_return_gets_a_note_not_figures():
    test = _holdout(["volume"], CLOSE)
    pred = np.full((5, 1), 1000.0)
    block, frame = trading_view(
        test,
        pred,
        {"persistence": pred},
        {"persistence": {"mse": 1.0}},
        cost_bps=1,
        periods=(252, "x"),
    )
    assert frame is None and not block["computed"]
    assert "not computed" in block["note"] and "'volume'" in block["note"]
    assert summary_line(block).startswith("Trading view: not computed")
