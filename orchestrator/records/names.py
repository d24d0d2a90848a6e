"""Names that become folders: sweep names, and a reversible folder encoding for tickers.

A sweep's name is its folder in ``--results-dir``, so it must stay there. The rule for a
**new** name (``check_new_name``): one path component of ASCII letters, digits, ``-``,
``_`` and ``.``, starting with a letter, a digit or ``_`` (so it is neither hidden nor
mistaken for a flag when a printed command is pasted back), at most ``MAX_NAME``
characters, and not a name the results folder already uses for something else
(``RESERVED``: the MLflow store, trainables.train's runs). Anything else is refused before
any work.

A name **read back** (``--resume``, promotion, a ``sweep.json``'s ``name``) only has to stay
inside the folder (``check_existing_name``: one component, not ``.``/``..``, no separator,
NUL or control character), so sweeps made before the rule stay readable.

Tickers are not names (``BRK.B``, ``BTC/USD``, ``^GSPC``, ``7203.T``, lower case, unicode):
``encode_ticker`` turns one into a folder name that is one safe path component and that
``decode_ticker`` turns back exactly. Upper-case letters, digits and ``-`` (not first) stay
as they are; every other character is written as ``_`` and two lower-case hex digits per
UTF-8 byte (``BRK.B`` -> ``BRK_2eB``, ``btc`` -> ``_62_74_63``). The output holds no lower-case
letter outside an escape and an escape holds no upper-case letter, so two tickers never
share a folder, even on a case-insensitive file system (macOS, Windows); a Windows device
name (``CON``, ``LPT1``) gets its first letter escaped.
"""

from __future__ import annotations

import re
import unicodedata

from trainables.errors import ConfigError, shown

__all__ = [
    "MAX_NAME",
    "MAX_TICKER_FOLDER",
    "RESERVED",
    "check_existing_name",
    "check_new_name",
    "decode_ticker",
    "encode_ticker",
    "safe_stem",
]

MAX_NAME = 100
# Entries of a results folder that belong to something else than a sweep.
RESERVED = ("mlflow.db", "mlartifacts", "train")
_NEW_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# Most file systems allow 255 bytes per component; a ticker folder keeps well below.
MAX_TICKER_FOLDER = 200
_LITERAL = re.compile(r"[A-Z0-9-]")
_ESCAPE = re.compile(r"_([0-9a-f]{2})")
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in range(10)
}


def check_new_name(name: object, *, flag: str = "--name") -> str:
    """A new sweep's name, or ConfigError saying what the rule is."""
    check_existing_name(name, flag=flag)
    assert isinstance(name, str)
    if len(name) > MAX_NAME:
        raise ConfigError(
            f"{flag} is {len(name)} characters long; a sweep name has at most {MAX_NAME}"
        )
    if not _NEW_NAME.fullmatch(name):
        raise ConfigError(
            f"{flag} {shown(name)}: a sweep name is its folder, so it takes ASCII letters, "
            f"digits, '-', '_' and '.', starting with a letter, a digit or '_' "
            f"(e.g. aapl-daily_v2)"
        )
    if name.lower() in RESERVED or name.lower().startswith("mlflow.db"):
        raise ConfigError(
            f"{flag} {name!r}: the results folder keeps {', '.join(RESERVED)} for itself; "
            f"choose another name"
        )
    return name


def check_existing_name(name: object, *, flag: str = "--name") -> str:
    """A name that must only stay inside the results folder: one path component."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{flag} must be a non-empty name, but got {shown(name)}")
    bad = [c for c in name if c in "/\\\0" or unicodedata.category(c) in ("Cc", "Cf")]
    if bad or name in (".", ".."):
        raise ConfigError(
            f"{flag} {shown(name)} is not one folder name (no '/', '\\', '.', '..' or control "
            f"characters): a sweep lives in a folder of --results-dir, never outside it"
        )
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        raise ConfigError(f"{flag} is longer than a folder name may be (255 bytes)")
    return name


def safe_stem(text: str, *, limit: int = 60) -> str:
    """``text`` with every character a new name does not take replaced by '_' (the default
    name of a sweep comes from its space file's stem)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:limit]
    return stem if stem and _NEW_NAME.match(stem[0]) else f"_{stem}"


def encode_ticker(ticker: str) -> str:
    """The folder name of ``ticker``: one safe path component; ``decode_ticker`` inverts it."""
    if not isinstance(ticker, str) or not ticker:
        raise ConfigError(f"a ticker must be non-empty text, but got {shown(ticker)}")
    try:
        ticker.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"ticker {shown(ticker)} is not valid text") from None
    parts = []
    for k, char in enumerate(ticker):
        literal = _LITERAL.fullmatch(char) and not (k == 0 and char == "-")
        parts.append(char if literal else "".join(f"_{b:02x}" for b in char.encode("utf-8")))
    if ticker.upper() in _WINDOWS_DEVICES and parts[0] == ticker[0]:
        parts[0] = f"_{ord(ticker[0]):02x}"
    folder = "".join(parts)
    if len(folder) > MAX_TICKER_FOLDER:
        raise ConfigError(
            f"ticker {shown(ticker)} is too long for a folder name ({len(folder)} characters "
            f"encoded, at most {MAX_TICKER_FOLDER})"
        )
    return folder


def decode_ticker(folder: str) -> str:
    """The ticker whose folder is ``folder``; ConfigError for a name ``encode_ticker`` does
    not write."""
    out, k = bytearray(), 0
    while k < len(folder):
        escape = _ESCAPE.match(folder, k)
        if escape:
            out.append(int(escape.group(1), 16))
            k += 3
        elif _LITERAL.fullmatch(folder[k]):
            out += folder[k].encode()
            k += 1
        else:
            raise ConfigError(f"{shown(folder)} is not a ticker folder (character {k})")
    try:
        ticker = out.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{shown(folder)} is not a ticker folder (not UTF-8)") from None
    if not ticker or encode_ticker(ticker) != folder:  # one folder per ticker, no aliases
        raise ConfigError(f"{shown(folder)} is not a ticker folder (not canonical)")
    return ticker
