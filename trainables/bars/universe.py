"""Many tickers' bars from one source, read once: a long file or a database relation.

``read_universe(source, tickers)`` reads a file once (``trainables.bars.files.split_tickers`` cuts
it by ticker in one pass) or a database relation with one read-only query (the tickers
present with ``SELECT DISTINCT``, then the rows of the requested ones, the list and the time
range as bound parameters), and checks each ticker's bars exactly as a single-ticker read of
that ticker checks them (``load_bars(path, ticker=T)`` / ``read_bars(BarSource(ticker=T))``:
the same code on the same rows, so the same bars and the same fingerprint).

A ticker whose bars are refused (too few, a gap, a bad value, absent from the source) does
not stop the others: it is returned in ``refused`` with its one-line reason.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import pandas as pd

from trainables.bars.database import Request, read_database_tickers
from trainables.bars.files import bars_from_frame, read_table, split_tickers
from trainables.bars.sources import (
    BarSource,
    cut_range,
    range_text,
    strict_numbers,
    time_of,
)
from trainables.errors import ConfigError, DataError

__all__ = ["UniverseBars", "match_tickers", "read_universe"]


@dataclass
class UniverseBars:
    """Each ticker's checked bars, keyed by the ticker as the source writes it, in the order
    asked for, and the tickers refused."""

    bars: dict[str, pd.DataFrame] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # ticker -> one-line reason
    present: list[str] = field(default_factory=list)  # every ticker the source holds
    source: str = ""


def match_tickers(
    wanted: list[str] | None, present: list[str], *, column: str, source: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(asked -> stored ticker, asked -> why it is missing). ``None`` asks for every ticker
    present; a ticker is present as written or as its unique case-insensitive match, as
    ``--ticker`` picks one."""
    if wanted is None:
        return {t: t for t in present}, {}
    found, missing = {}, {}
    have = set(present)
    for ticker in wanted:
        if ticker in have:
            found[ticker] = ticker
            continue
        folded = [t for t in present if t.lower() == ticker.lower()]
        if len(folded) == 1:
            found[ticker] = folded[0]
            continue
        close = difflib.get_close_matches(ticker, present, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        missing[ticker] = f"{source}: ticker {ticker!r} is not in column {column!r}{hint}"
    return found, missing


def read_universe(source: BarSource, tickers: list[str] | None) -> UniverseBars:
    """The bars of ``tickers`` (None: every ticker the source holds); see the module doc."""
    if source.ticker is not None:
        raise ConfigError("give --ticker (one ticker) or --tickers (a universe), not both")
    location = source.location
    if location is None:
        raise ConfigError("--tickers reads your data: give --data (a file or a database URL)")
    if source.is_database:
        return _from_database(source, location, tickers)
    return _from_file(source, str(location), tickers)


def _from_file(source: BarSource, path: str, tickers: list[str] | None) -> UniverseBars:
    frame = read_table(path)
    column, parts = split_tickers(frame, path)
    present = list(parts)
    found, missing = match_tickers(tickers, present, column=column, source=path)
    out = UniverseBars(refused=dict(missing), present=sorted(present), source=path)
    start, end = time_of("--start", source.start), time_of("--end", source.end)
    for stored in found.values():
        part, rows = parts[stored]
        try:
            bars = bars_from_frame(part, path, ticker=stored, rows=rows, **source.checks)
            out.bars[stored] = cut_range(bars, start, end, path)
        except DataError as err:
            out.refused[stored] = str(err)
    return _in_order(out, tickers, found)


def _from_database(source: BarSource, location: str, tickers: list[str] | None) -> UniverseBars:
    url = source.database_url(location)
    name = source.describe()
    start, end = time_of("--start", source.start), time_of("--end", source.end)
    request = Request(source.table, source.query, None, start, end, source.columns)
    matched: dict = {}

    def choose(present: list[str]) -> list[str] | None:
        # A ticker asked for in another case is read as stored ("aapl" for "AAPL").
        matched["found"], matched["missing"] = match_tickers(
            tickers, present, column="ticker", source=name
        )
        return None if tickers is None else sorted(set(matched["found"].values()))

    result = read_database_tickers(url, request, name, choose)
    out = UniverseBars(refused=dict(matched["missing"]), present=result.present, source=name)
    frame, parts = result.frame, {}
    if not frame.empty:  # the rows come ordered by ticker, then time: one group per ticker
        parts = frame.groupby(frame[result.ticker_col].astype(str), sort=False).indices
    for stored in matched["found"].values():
        try:
            if stored not in parts:
                raise DataError(f"{name}: no rows for ticker {stored!r}{range_text(start, end)}")
            rows = frame.iloc[parts[stored]].drop(columns=result.ticker_col)
            rows = rows.reset_index(drop=True)
            rows = strict_numbers(rows, name, result.timestamp_col, source.columns or ())
            bars = bars_from_frame(rows, name, timestamp_col=result.timestamp_col, **source.checks)
            out.bars[stored] = bars if result.time_filtered else cut_range(bars, start, end, name)
        except DataError as err:
            out.refused[stored] = str(err)
    return _in_order(out, tickers, matched["found"])


def _in_order(out: UniverseBars, tickers: list[str] | None, found: dict) -> UniverseBars:
    """Bars and refusals keyed by the ticker as stored, in the order asked for (all: sorted)."""
    order = [found.get(t, t) for t in tickers] if tickers is not None else out.present
    out.bars = {t: out.bars[t] for t in order if t in out.bars}
    out.refused = {t: out.refused[t] for t in order if t in out.refused}
    return out
