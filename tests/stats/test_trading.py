"""The trading view: figures on hand-made price paths with known positions, computed by hand,
with the one-bar execution delay (decided at anchor t, earning open[t+1] -> open[t+2])."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from orchestrator.promotion.holdout import HoldoutRows
from orchestrator.stats.trading import (
    NOTE,
    bars_per_year,
    class_positions,
    delayed_returns,
    held_positions,
    sharpe,
    sign_positions,
    strategy_figures,
    summary_line,
    trading_view,
)
from tests.simulated_errors import ar_errors
from trainables.prep.dataset import Targets

RETURNS = [2 / 100, -1 / 102, 0.0, 3 / 101, -4 / 104]
POSITIONS = [1.0, -1.0, -1.0, 0.0, 1.0]  # held over the bars of RETURNS


def test_figures_on_a_hand_made_path_match_hand_computed_ones():
    # Bar by bar, at 10 bp per unit of turnover (flat before the first bar):
    #   long  100 -> 102: +2/100,    enter long (1 unit):      cost 0.001
    #   short 102 -> 101: +1/102,    long to short (2 units):  cost 0.002
    #   short 101 -> 101:  0,        no trade
    #   flat  101 -> 104:  0,        short to flat (1 unit):   cost 0.001
    #   long  104 -> 100: -4/104,    flat to long (1 unit):    cost 0.001
    net = [2 / 100 - 0.001, 1 / 102 - 0.002, 0.0, -0.001, -4 / 104 - 0.001]
    figures, per_bar = strategy_figures(
        np.array(POSITIONS), np.array(RETURNS), cost_bps=10, periods_per_year=252
    )
    assert per_bar == pytest.approx(net)
    per_bar_sharpe = statistics.mean(net) / statistics.stdev(net)
    assert figures["sharpe_per_bar"] == pytest.approx(per_bar_sharpe)
    assert figures["sharpe"] == pytest.approx(per_bar_sharpe * math.sqrt(252))
    assert figures["n_bars"] == 5 and figures["years"] == pytest.approx(5 / 252)
    # Five bars: no interval (too short for a test), and the annual figure carries a warning.
    assert figures["sharpe_ci_low"] is None and "holds 5 samples" in figures["sharpe_note"]
    assert "annualised from 5 bars" in figures["warning"]
    assert figures["total_return"] == pytest.approx(math.prod(1 + x for x in net) - 1)
    peak = (1 + net[0]) * (1 + net[1])  # equity is highest after bar 1
    trough = peak * (1 + net[2]) * (1 + net[3]) * (1 + net[4])
    assert figures["max_drawdown"] == pytest.approx(1 - trough / peak)
    # Bars in the market with a move: 0 (right), 1 (right), 4 (wrong); bar 2 did not move.
    assert figures["hit_rate"] == pytest.approx(2 / 3)
    assert figures["turnover_per_bar"] == pytest.approx((1 + 2 + 0 + 1 + 1) / 5)
    assert figures["exposure"] == pytest.approx(4 / 5)


def test_sharpe_interval_agrees_with_the_iid_formula_and_lo_corrects_for_autocorrelation():
    # iid returns: the 90% interval's half-width is close to Lo's (2002) iid one,
    # 1.645 sqrt((1 + SR^2 / 2) / n), per bar.
    rng = np.random.default_rng(0)
    returns = 0.0005 + 0.01 * rng.standard_normal(2000)
    s = sharpe(returns, periods_per_year=252)
    sr = returns.mean() / returns.std(ddof=1)
    half = 1.645 * math.sqrt((1 + sr**2 / 2) / 2000)
    low, high = s["sharpe_per_bar_ci_low"], s["sharpe_per_bar_ci_high"]
    assert low < s["sharpe_per_bar"] < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.2)
    assert s["sharpe_ci_low"] == pytest.approx(low * math.sqrt(252))
    assert s["warning"] == ""  # 2,000 bars at 252 a year: no extrapolation
    # AR(0.5) returns: the long-run variance is (1 + rho) / (1 - rho) = 3 times the variance,
    # so Lo's annual Sharpe is the plain one over sqrt(3).
    ar = 0.2 + ar_errors(rng, 100_000, 0.5)
    s = sharpe(ar, periods_per_year=252)
    assert s["sharpe_lo"] == pytest.approx(s["sharpe"] / math.sqrt(3), rel=0.1)


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


def test_overlapping_positions_of_longer_horizons():
    # h = 3: each forecast holds a third of the capital for three bars.
    signals = np.array([1.0, 1.0, -1.0, -1.0, -1.0, 0.0])
    assert held_positions(signals, 3) == pytest.approx([1 / 3, 2 / 3, 1 / 3, -1 / 3, -1, -2 / 3])
    assert list(held_positions(signals, 1)) == list(signals)


def test_delayed_returns_earn_the_bar_after_the_next():
    prices = np.array([100.0, 101.0, 103.0, 102.0])
    returns, n = delayed_returns(prices, np.array([0, 1, 2]))
    # anchor 0: 101 -> 103; anchor 1: 103 -> 102; anchor 2's trade would end past the data.
    assert n == 2 and returns == pytest.approx([103 / 101 - 1, 102 / 103 - 1])


def test_bars_per_year_from_the_observed_count_per_calendar_year():
    # Business days from mid-2018 to mid-2022: the full years 2019-2021 have 261, 262, 261.
    days = pd.bdate_range("2018-06-01", "2022-06-30")
    per_year, how = bars_per_year(days)
    assert per_year == 261 and "full calendar year" in how
    hourly = pd.date_range("2020-01-01", periods=2401, freq="h")  # 100 days, no full year
    assert bars_per_year(hourly)[0] == pytest.approx(24 * 365.25)


OPEN = [100.0, 101.0, 103.0, 102.0, 104.0, 103.0, 105.0]
CLOSE = [100.5, 102.0, 102.5, 103.0, 103.5, 104.5, 104.0]


def _holdout(names: list[str], close: list[float], opens=None, horizon: int = 1) -> HoldoutRows:
    index = pd.date_range("2024-01-01", periods=len(close), freq="D")
    features = pd.DataFrame({"close": close, "volume": 1000.0}, index=index)
    values = features[names].to_numpy()
    values = np.vstack([values[horizon:], np.full((horizon, len(names)), np.nan)])
    targets = Targets(task="regression", values=values, names=names, horizon=horizon)
    return HoldoutRows(
        features=features,
        anchors=np.arange(len(close) - horizon),
        first_row=0,
        targets=targets,
        close=np.array(close),
        open=None if opens is None else np.array(opens),
    )


def test_trading_view_executes_one_bar_later_at_the_open_computed_by_hand():
    # Anchors 0..5 (horizon 1). The forecast made at anchor t (with close[t]) is traded from
    # open[t + 1] to open[t + 2]; anchor 5 would need open[7], so 5 bars are traded.
    test = _holdout(["close"], CLOSE, OPEN)
    now = np.array(CLOSE[:-1])[:, None]
    signals = np.array([1.0, -1.0, -1.0, 0.0, 1.0, 1.0])
    pred = now + signals[:, None]
    ridge = now - 1.0  # always predicts a fall
    scores = {"persistence": {"mse": 3.0}, "ridge": {"mse": 4.0}}
    block, frame = trading_view(
        test, pred, {"persistence": now, "ridge": ridge}, scores, cost_bps=10, periods=(252, "x")
    )
    # By hand, 10 bp per unit of turnover:
    #   anchor 0 long   101 -> 103: +2/101 - 0.001 (enter long)
    #   anchor 1 short  103 -> 102: +1/103 - 0.002 (long to short)
    #   anchor 2 short  102 -> 104: -2/102
    #   anchor 3 flat   104 -> 103:  0     - 0.001 (short to flat)
    #   anchor 4 long   103 -> 105: +2/103 - 0.001 (flat to long)
    net = [2 / 101 - 0.001, 1 / 103 - 0.002, -2 / 102, -0.001, 2 / 103 - 0.001]
    assert list(frame["net_model"]) == pytest.approx(net)
    assert list(frame["position_model"]) == [1.0, -1.0, -1.0, 0.0, 1.0]
    assert block["price"] == "open" and block["model"]["n_bars"] == 5
    assert block["model"]["total_return"] == pytest.approx(math.prod(1 + x for x in net) - 1)
    hold = [103 / 101 - 1 - 0.001, 102 / 103 - 1, 104 / 102 - 1, 103 / 104 - 1]
    assert list(frame["net_buy_and_hold"])[:4] == pytest.approx(hold)
    # Persistence forecasts no move, so the best baseline that trades (ridge) is traded.
    assert block["best_baseline"]["name"] == "ridge"
    assert list(frame["position_baseline"]) == [-1.0] * 5
    assert block["note"] == NOTE and "not a backtester" in summary_line(block)
    assert "one bar later" in block["execution"] and "one bar later" in summary_line(block)
    # Five bars are too few for the return-difference tests: they say so.
    assert "a test needs at least 30" in block["model_vs_buy_and_hold"]["reason"]


def test_a_baseline_whose_rule_never_changes_position_is_not_the_one_traded():
    # The training mean of a return target has one sign: its rule is buy-and-hold (or its
    # mirror), already in the view, so the best baseline that changes position is traded.
    test = _holdout(["close"], CLOSE, OPEN)
    now = np.array(CLOSE[:-1])[:, None]
    wiggle = now + np.array([1.0, -1, 1, -1, 1, -1])[:, None]
    block, _ = trading_view(
        test,
        now + 1.0,
        {"training mean": now + 0.5, "ridge": wiggle},
        {"training mean": {"mse": 1.0}, "ridge": {"mse": 2.0}},
        cost_bps=0,
        periods=(252, "x"),
    )
    assert block["best_baseline"]["name"] == "ridge"


def test_without_an_open_the_view_trades_close_to_close_one_bar_later():
    test = _holdout(["close"], CLOSE)
    now = np.array(CLOSE[:-1])[:, None]
    block, frame = trading_view(
        test,
        now + 1.0,
        {"persistence": now},
        {"persistence": {"mse": 1.0}},
        cost_bps=0,
        periods=(252, "x"),
    )
    expected = [CLOSE[t + 2] / CLOSE[t + 1] - 1 for t in range(5)]
    assert block["price"] == "close" and list(frame["net_model"]) == pytest.approx(expected)


def test_a_long_test_part_compares_the_strategies_by_a_test_on_return_differences():
    rng = np.random.default_rng(7)
    n = 400
    close = list(100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n + 1))))
    opens = [close[0], *close[:-1]]
    test = _holdout(["close"], close, opens)
    now = np.array(close[:-1])[:, None]
    block, frame = trading_view(
        test,
        now + rng.normal(size=(n, 1)),  # random signs: no edge
        {"persistence": now, "ridge": now + rng.normal(size=(n, 1))},
        {"persistence": {"mse": 1.0}, "ridge": {"mse": 2.0}},
        cost_bps=0,
        periods=(252, "x"),
    )
    diff = block["model_vs_buy_and_hold"]
    excess = frame["net_model"] - frame["net_buy_and_hold"]
    assert diff["mean_per_bar"] == pytest.approx(excess.mean())
    assert diff["ci_low"] < diff["mean_per_bar"] < diff["ci_high"]
    assert diff["outcome"] in ("no_difference", "worse", "better") and not diff["reason"]
    assert block["model"]["sharpe_ci_low"] is not None


def test_a_target_that_is_no_price_or_return_gets_a_note_not_figures():
    test = _holdout(["volume"], CLOSE)
    pred = np.full((6, 1), 1000.0)
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
