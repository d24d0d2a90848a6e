"""A universe's tickers: ``--tickers`` as typed, each ticker's seed and folder.

``--tickers all`` (every ticker the data holds), ``--tickers AAPL,MSFT,NVDA`` or
``--tickers @tickers.txt`` (one ticker per line; blank lines and ``#`` comments skipped).
A ticker's folder is ``results/<universe>/tickers/<encode_ticker(T)>`` (orchestrator/records/names.py:
``BRK.B``, ``BTC/USD`` and ``^GSPC`` are real tickers, and each folder name turns back into
its ticker exactly).

A ticker's seed is derived from the universe's ``--seed`` and the ticker itself (not its
position), so adding or removing other tickers leaves it unchanged, and one ticker of a
universe repeats as a single-ticker sweep run with ``--seed <its seed>`` (recorded in
``universe.json`` and in the ticker's ``sweep.json``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.records.names import decode_ticker, encode_ticker
from trainables.errors import ConfigError, shown

__all__ = [
    "ALL",
    "TICKERS_DIR",
    "parse_tickers",
    "ticker_dir",
    "ticker_from_dir",
    "ticker_seed",
]

ALL = "all"
TICKERS_DIR = "tickers"  # results/<universe>/tickers/<folder>/


def parse_tickers(text: str) -> list[str] | None:
    """The tickers ``--tickers`` names (None: every ticker in the data); ConfigError naming
    the flag, the file or the line when they cannot be read."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--tickers needs 'all', a list such as AAPL,MSFT or @file")
    text = text.strip()
    if text.lower() == ALL:
        return None
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--tickers {text}: cannot read {path} ({err})") from None
        names = [line.split("#", 1)[0].strip() for line in lines]
        where = f"--tickers {text}"
    else:
        names = [part.strip() for part in text.split(",")]
        where = "--tickers"
    tickers = [n for n in names if n]
    if not tickers:
        raise ConfigError(f"{where}: no ticker in it")
    seen: set[str] = set()
    for ticker in tickers:
        if ticker in seen:
            raise ConfigError(f"{where}: ticker {shown(ticker)} is listed twice")
        seen.add(ticker)
        encode_ticker(ticker)  # too long for a folder, or not text: refused here
    return tickers


def ticker_seed(seed: int, ticker: str) -> int:
    """The ticker's seed: the first 31 bits of sha256("<universe seed>:<ticker>")."""
    digest = hashlib.sha256(f"{int(seed)}:{ticker}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def member_ticker(members, ticker: str, *, universe: str) -> str:
    """``--ticker`` as universe ``universe`` stored it: exact, or its one case-insensitive
    match (as ``--ticker`` picks from data); ConfigError naming its tickers otherwise."""
    if ticker in members:
        return ticker
    folded = [t for t in members if t.lower() == ticker.lower()]
    if len(folded) == 1:
        return folded[0]
    known = ", ".join(list(members)[:20])
    raise ConfigError(f"--ticker {ticker!r} is not a ticker of {universe!r} (its tickers: {known})")


def ticker_dir(universe_dir: Path, ticker: str) -> Path:
    return Path(universe_dir) / TICKERS_DIR / encode_ticker(ticker)


def ticker_from_dir(folder: Path) -> str:
    return decode_ticker(Path(folder).name)
