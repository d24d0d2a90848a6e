"""make_bars: deterministic, realistic OHLCV, and a signal a fitted model can learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from trainables.bars.files import validate_bars
from trainables.bars.synthetic import make_bars, simulate
from trainables.errors import ConfigError
from trainables.prep.features import build_features


def test_same_seed_gives_identical_bars():
    # A seed fixes the data: two calls give the identical frame.
    pd.testing.assert_frame_equal(make_bars(500, seed=3), make_bars(500, seed=3))


def test_other_seed_gives_other_bars():
    # A different seed gives different prices.
    assert not np.allclose(make_bars(500, seed=3)["close"], make_bars(500, seed=4)["close"])


def test_bar_format(bars):
    # The frame is in the load_bars format: timestamp index, float64 OHLCV, n_bars rows.
    assert len(bars) == 1500 and bars.index.name == "timestamp"
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert bars.index[1] - bars.index[0] == pd.Timedelta("1h")
    pd.testing.assert_frame_equal(validate_bars(bars, "synthetic"), bars)


def test_ohlc_consistency():
    # high >= max(open, close) >= min(open, close) >= low > 0 on every bar, volume > 0.
    b = make_bars(4000, seed=1)
    assert (b["high"] >= np.maximum(b["open"], b["close"])).all()
    assert (np.minimum(b["open"], b["close"]) >= b["low"]).all()
    assert (b["low"] > 0).all() and (b["volume"] > 0).all()


def test_volatility_clusters_and_volume_follows_it():
    # |returns| are autocorrelated (regimes) and volume rises with the size of moves.
    b = make_bars(4000, seed=0)
    size = np.abs(np.diff(np.log(b["close"].to_numpy())))
    assert np.corrcoef(size[1:], size[:-1])[0, 1] > 0.1
    assert np.corrcoef(size, np.log(b["volume"].to_numpy()[1:]))[0, 1] > 0.2


def test_documented_predictable_share():
    # About 52% of next-bar return variance is the generator's conditional mean (docs/data.md).
    sim = simulate(20_000, seed=5)
    r = np.diff(np.log(sim.bars["close"].to_numpy()))
    share = 1 - np.var(r - sim.expected_log_return[1:]) / np.var(r)
    assert 0.45 < share < 0.60


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_model_that_reads_volume_beats_ridge_on_returns_clearly(seed):
    # The built-in data's purpose (docs/data.md): volume-confirmed momentum is a product of
    # return and volume surprise that a linear fit of past returns cannot form, and it is
    # large enough to tell apart on one 4,000-bar series (the default sweep's data): ridge on
    # 10 lagged returns against the same plus volume ratios and return x volume products,
    # out of sample (last 30%).
    f = build_features(make_bars(4000, seed=seed), ["log_return", "volume_ratio"])
    r, v, lags = f["log_return"].to_numpy(), np.log(f["volume_ratio"].to_numpy()), 10
    past_r = np.stack([r[lags - 1 - k : len(r) - 1 - k] for k in range(lags)], axis=1)
    past_v = np.stack([v[lags - 1 - k : len(v) - 1 - k] for k in range(lags)], axis=1)
    y, cut = r[lags:], int(0.7 * (len(r) - lags))

    def r2(x):
        pred = Ridge(alpha=1e-6).fit(x[:cut], y[:cut]).predict(x[cut:])
        return 1 - np.mean((y[cut:] - pred) ** 2) / np.mean(y[cut:] ** 2)

    linear = r2(past_r)
    with_volume = r2(np.column_stack([past_r, past_v, past_r * np.tanh(2 * past_v)]))
    assert 0.10 < linear < 0.35
    assert with_volume - linear > 0.08


def test_signal_is_learnable_but_not_by_naive_models():
    # Ridge on the last 10 log returns + features beats zero clearly out of sample;
    # persistence and the historical mean do not beat zero.
    names = ["log_return", "log_volume", "hl_range", "volatility", "sma_gap", "volume_ratio"]
    f = build_features(make_bars(4000, seed=0), names)
    r, lags = f["log_return"].to_numpy(), 10
    past = np.stack([r[lags - 1 - k : len(r) - 1 - k] for k in range(lags)], axis=1)
    x = np.column_stack([past, f.iloc[lags - 1 : -1, 1:].to_numpy()])  # row j predicts r[j+lags]
    y = r[lags:]
    cut = int(0.7 * len(y))
    pred = Ridge(alpha=1e-6).fit(x[:cut], y[:cut]).predict(x[cut:])

    zero_mse = np.mean(y[cut:] ** 2)
    assert np.mean((y[cut:] - pred) ** 2) / zero_mse < 0.9
    assert np.mean((y[cut:] - past[cut:, 0]) ** 2) / zero_mse > 1.0  # persistence
    assert np.mean((y[cut:] - y[:cut].mean()) ** 2) / zero_mse > 0.99  # historical mean


@pytest.mark.parametrize("n_bars", [0, 2, 10.5, True])
def test_bad_n_bars(n_bars):
    # n_bars must be an integer >= 3.
    with pytest.raises(ConfigError, match=r"n_bars must be an integer >= 3"):
        make_bars(n_bars)


# ---------------------------------------------------------------------- sample files


def test_the_sample_command_writes_the_built_in_series(tmp_path, capsys):
    # Rule: `python -m trainables.synthetic --out bars.parquet --bars 4000` writes the
    # built-in data (what a sweep without --data trains on) as a file any command reads.
    from trainables.bars.files import load_bars
    from trainables.bars.synthetic import main

    out = tmp_path / "bars.parquet"
    assert main(["--out", str(out), "--bars", "4000"]) == 0
    assert capsys.readouterr().out.startswith("Wrote 4,000 bars (2020-01-01 00:00:00 .. ")
    read = load_bars(out)
    pd.testing.assert_frame_equal(read, make_bars(4000), check_freq=False, check_index_type=False)
    csv = tmp_path / "bars.csv"
    assert main(["--out", str(csv), "--bars", "500", "--seed", "3"]) == 0
    assert np.allclose(load_bars(csv).to_numpy(), make_bars(500, seed=3).to_numpy())


def test_a_universe_is_one_long_frame_of_learnable_tickers_with_their_own_seeds(tmp_path):
    # Rule: --tickers 4: a ticker column, SYN0..SYN3 on the same timestamps, each the
    # built-in series with seed + k; --ticker picks one back out.
    from trainables.bars.files import load_bars
    from trainables.bars.synthetic import main, make_universe

    frame = make_universe(4, 600, seed=5)
    assert list(frame.columns) == ["timestamp", "ticker", "open", "high", "low", "close", "volume"]
    assert frame.groupby("ticker")["timestamp"].apply(list).map(tuple).nunique() == 1
    out = tmp_path / "universe.parquet"
    assert main(["--out", str(out), "--tickers", "4", "--bars", "600", "--seed", "5"]) == 0
    for k in range(4):
        picked = load_bars(out, ticker=f"SYN{k}")
        assert np.allclose(picked.to_numpy(), make_bars(600, seed=5 + k).to_numpy())
    closes = [load_bars(out, ticker=f"SYN{k}")["close"].to_numpy() for k in range(2)]
    assert not np.allclose(closes[0], closes[1])


def test_the_sample_command_adds_random_walk_tickers(tmp_path, capsys):
    # --random-walks 2: RW0, RW1 beside the learnable tickers, each make_universe's.
    from trainables.bars.files import load_bars
    from trainables.bars.synthetic import main, make_universe

    out = tmp_path / "fdr.parquet"
    argv = ["--out", str(out), "--tickers", "2", "--random-walks", "2", "--bars", "300"]
    assert main(argv) == 0
    line = capsys.readouterr().out
    assert "2 tickers x 300 bars (SYN0..SYN1, seeds 0..1 and 2 random walks (RW0..RW1)" in line
    want = make_universe(2, 300, random_walks=2)
    for ticker in ("SYN1", "RW0", "RW1"):
        part = want[want.ticker == ticker].drop(columns="ticker").set_index("timestamp")
        assert np.allclose(load_bars(out, ticker=ticker).to_numpy(), part.to_numpy())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bars", "2"], "--bars must be >= 3, but got 2"),
        (["--tickers", "0"], "--tickers must be >= 1, but got 0"),
        (["--random-walks", "-1"], "--random-walks must be >= 0, but got -1"),
        (["--out", "x.xlsx"], "use a .parquet, .pq or .csv file name"),
    ],
)
def test_sample_command_refuses_bad_flags_in_one_line(tmp_path, capsys, args, needle):
    from trainables.bars.synthetic import main

    argv = ["--out", str(tmp_path / "b.parquet"), *args] if "--out" not in args else args
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert needle in line
    assert not list(tmp_path.iterdir())


def test_sample_command_never_overwrites_a_file(tmp_path, capsys):
    from trainables.bars.synthetic import main

    out = tmp_path / "bars.parquet"
    out.write_bytes(b"mine")
    assert main(["--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"mine"
