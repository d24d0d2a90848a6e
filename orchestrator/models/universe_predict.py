"""``python -m orchestrator.predict --name <universe>``: a universe's models on new bars.

    python -m orchestrator.predict --name u1 --data new.parquet --out p.parquet   # every ticker
    python -m orchestrator.predict --name u1 --ticker BRK.B --data new.parquet    # one ticker

Each ticker's promoted model (``tickers/<folder>/models/<rank>``, the seed ensemble) forecasts
that ticker's bars, read from a long file or a database relation once
(trainables/bars/universe.py). The output is one long table: ``ticker`` then the columns a
single model's ``predict`` writes, indexed by the bar's timestamp. Tickers of the data
without a promoted model, and promoted tickers absent from the data, are named in one line
each (on stderr) and left out; none at all is an error.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator.records.tickers import member_ticker, ticker_dir
from orchestrator.records.universe_record import read_universe_record
from trainables.bars.sources import BarSource
from trainables.bars.universe import read_universe
from trainables.errors import ConfigError, DataError

__all__ = ["universe_models", "universe_predictions"]


def universe_models(out_dir: Path, *, rank: int, ticker: str | None) -> dict[str, Path]:
    """ticker -> its promoted model folder (``models/<rank>``), for the tickers promoted."""
    record = read_universe_record(out_dir)
    members = record["members"]
    if ticker is not None:
        ticker = member_ticker(members, ticker, universe=out_dir.name)
    wanted = [ticker] if ticker is not None else list(members)
    models = {t: ticker_dir(out_dir, t) / "models" / str(rank) for t in wanted}
    models = {t: m for t, m in models.items() if m.is_dir()}
    if not models:
        which = f"ticker {ticker!r} of universe" if ticker else "no ticker of universe"
        raise ConfigError(
            f"{which} {out_dir.name!r} has no promoted model at models/{rank}: run python -m "
            f"orchestrator.promote --name {out_dir.name} first"
        )
    return models


def universe_predictions(runs: dict, source: BarSource, *, predict_one, log) -> pd.DataFrame:
    """Every ticker's forecasts as one long frame: ``predict_one(runs[ticker], its bars)``."""
    read = read_universe(source, list(runs))
    for ticker, reason in read.refused.items():
        log(f"{ticker}: no forecasts: {reason}")
    frames = []
    for ticker, bars in read.bars.items():
        preds = predict_one(runs[ticker], bars)
        preds.insert(0, "ticker", ticker)
        frames.append(preds)
    if not frames:
        raise DataError(f"{read.source}: no bars of any promoted ticker ({', '.join(runs)})")
    others = sorted(set(read.present) - set(runs))
    if others:
        log(f"{len(others)} ticker(s) of the data have no promoted model: {', '.join(others[:20])}")
    return pd.concat(frames)
