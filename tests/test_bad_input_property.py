"""Bad input, by generation: valid bar files corrupted at random, then loaded and featurised.

Every outcome must be a valid bar table (whose features are finite) or a DataError of one
line that names the file; any other exception is a bug. DataWarnings must be one line
naming the file too. The corruptions: drop or rename columns; NaN, inf, huge, negative,
zero or text values; duplicated, shuffled or deleted rows; truncated bytes; UTF-16,
Latin-1 or BOM encodings; timestamps with UTC offsets (fixed or New York's), epochs,
half-aware, day-first or garbage; Parquet columns of other dtypes.

The last property is about places instead of files: any sweep name in a results folder
that is fine, missing, read-only or full passes the checks made before any work exactly
when both are usable, and otherwise fails in one line, exit 2, writing nothing.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import warnings
from datetime import timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.records.names import RESERVED
from trainables.bars.checks import MAX_ABS
from trainables.bars.files import REQUIRED_COLUMNS, load_bars
from trainables.bars.synthetic import make_bars
from trainables.errors import DataError, DataWarning
from trainables.prep.features import build_features

F_COLS = ["open", "high", "low", "close", "volume", "log_return", "hl_range", "volume_ratio"]
EXTRA = ["rsi", "sma_gap", "volatility", "log_volume"]
COLUMNS = ["timestamp", *REQUIRED_COLUMNS]


@cache
def _valid(seed: int) -> pd.DataFrame:
    return make_bars(80, seed=seed).reset_index()


# --- corruptions ----------------------------------------------------------------------------

_values = st.sampled_from(
    [np.nan, np.inf, -np.inf, 1e300, 1e30, -5.0, 0.0, "abc", "", "1,5", 1e-320, True]
)
_ops = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(COLUMNS)),
    st.tuples(
        st.just("rename"),
        st.sampled_from(COLUMNS),
        st.sampled_from(["Close", "clsoe", "x", " open "]),
    ),
    st.tuples(st.just("set"), st.sampled_from(COLUMNS[1:]), st.integers(0, 79), _values),
    st.tuples(
        st.just("set_time"),
        st.integers(0, 79),
        st.sampled_from(["", "yesterday", "2020-13-45", 1e300, "2020-01-01T00:00:00+99:00"]),
    ),
    st.tuples(st.just("duplicate"), st.integers(0, 79)),
    st.tuples(st.just("shuffle"), st.integers(0, 2**16)),
    st.tuples(st.just("delete"), st.integers(0, 79), st.integers(1, 80)),
    st.tuples(st.just("extra"), st.sampled_from(["text", "numbers", "nan"])),
)
_times = st.sampled_from(
    ["naive", "utc_z", "new_york", "fixed_offset", "epoch_s", "epoch_ms", "half_aware", "us_dates"]
)


def _apply(frame: pd.DataFrame, op: tuple) -> pd.DataFrame:
    kind, *args = op
    frame = frame.copy()
    if kind == "drop" and args[0] in frame.columns:
        return frame.drop(columns=args[0])
    if kind == "rename" and args[0] in frame.columns and args[1] not in frame.columns:
        return frame.rename(columns={args[0]: args[1]})
    if kind == "set" and args[0] in frame.columns and args[1] < len(frame):
        frame[args[0]] = frame[args[0]].astype(object)
        frame.iloc[args[1], frame.columns.get_loc(args[0])] = args[2]
    if kind == "set_time" and "timestamp" in frame.columns and args[0] < len(frame):
        frame["timestamp"] = frame["timestamp"].astype(object)
        frame.iloc[args[0], frame.columns.get_loc("timestamp")] = args[1]
    if kind == "duplicate" and args[0] < len(frame):
        frame = pd.concat([frame.iloc[: args[0] + 1], frame.iloc[args[0] :]], ignore_index=True)
    if kind == "shuffle":
        frame = frame.sample(frac=1.0, random_state=args[0]).reset_index(drop=True)
    if kind == "delete":
        frame = frame.drop(index=frame.index[args[0] : args[0] + args[1]]).reset_index(drop=True)
    if kind == "extra":
        frame["note"] = {"text": "x", "numbers": 1.5, "nan": np.nan}[args[0]]
    return frame


def _retime(frame: pd.DataFrame, style: str) -> pd.DataFrame:
    if "timestamp" not in frame.columns:
        return frame
    stamps = pd.to_datetime(frame["timestamp"], errors="coerce")
    ok = stamps.notna()
    out = frame["timestamp"].astype(object).copy()
    utc = stamps[ok].dt.tz_localize("UTC")
    if style == "utc_z":
        out[ok] = utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif style == "new_york":
        out[ok] = [t.isoformat() for t in utc.dt.tz_convert("America/New_York")]
    elif style == "fixed_offset":
        out[ok] = [t.isoformat() for t in utc.dt.tz_convert("Asia/Kolkata")]
    elif style in ("epoch_s", "epoch_ms"):
        scale = 10**9 if style == "epoch_s" else 10**6
        out[ok] = stamps[ok].astype("datetime64[ns]").astype("int64") // scale
    elif style == "half_aware":
        out[ok] = [t.isoformat() if k % 2 else str(t.tz_localize(None)) for k, t in enumerate(utc)]
    elif style == "us_dates":
        out[ok] = stamps[ok].dt.strftime("%m/%d/%Y %H:%M")
    return frame.assign(timestamp=out)


@st.composite
def corrupted_files(draw) -> tuple[str, bytes]:
    frame = _valid(draw(st.integers(0, 2)))
    frame = _retime(frame, draw(_times))
    for op in draw(st.lists(_ops, max_size=3)):
        frame = _apply(frame, op)
    form = draw(st.sampled_from(["csv", "csv", "parquet"]))
    if form == "parquet":
        data = _parquet_bytes(frame, draw(st.sampled_from(["as is", "bool", "category", "str"])))
        name = "bars.parquet"
    else:
        text = frame.to_csv(index=False)
        encoding = draw(
            st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"])
        )
        if encoding == "latin-1":
            text = text.replace("volume", "volumé", 1)
        data, name = text.encode(encoding), "bars.csv"
    if draw(st.sampled_from([False, False, False, True])) and len(data) > 1:
        data = data[: draw(st.integers(1, len(data) - 1))]  # truncated
    return name, data


def _parquet_bytes(frame: pd.DataFrame, retype: str) -> bytes:
    frame = frame.copy()
    for col in frame.columns:  # Parquet needs one type per column
        if frame[col].dtype == object:
            numbers = pd.to_numeric(frame[col], errors="coerce")
            frame[col] = (
                numbers
                if numbers.notna().sum() == frame[col].notna().sum()
                else frame[col].astype(str)
            )
    if "close" in frame.columns and retype != "as is":
        close = pd.to_numeric(frame["close"], errors="coerce")
        frame["close"] = {
            "bool": close > close.median(),
            "category": close.round(0).astype(str).astype("category"),
            "str": close.astype(str),
        }[retype]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.parquet"
        frame.to_parquet(path, index=False)
        return path.read_bytes()


# --- the property ---------------------------------------------------------------------------


def _csv(frame: pd.DataFrame, encoding: str = "utf-8") -> tuple[str, bytes]:
    return "bars.csv", frame.to_csv(index=False).encode(encoding)


# Cases that broke before, always run on top of the generated ones.
_HUGE = _csv(_apply(_valid(0), ("set", "close", 60, 1e300)))
_NEW_YORK = _csv(_retime(_valid(0), "new_york"))
_HALF_AWARE = _csv(_retime(_valid(0), "half_aware"))
_BOOL = ("bars.parquet", _parquet_bytes(_valid(0), "bool"))
_UTF16 = _csv(_valid(1), "utf-16")
_CUT = ("bars.parquet", _parquet_bytes(_valid(2), "as is")[:-100])


@example(_HUGE)
@example(_NEW_YORK)
@example(_HALF_AWARE)
@example(_BOOL)
@example(_UTF16)
@example(_CUT)
@settings(
    max_examples=60,
    deadline=timedelta(seconds=10),  # a shared 2-core machine; typical examples take ~30 ms
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(corrupted_files())
def test_corrupted_files_load_or_fail_with_one_line_naming_the_file(case):
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            try:
                bars = load_bars(path)
                features = build_features(bars, F_COLS, extra=EXTRA)
            except DataError as err:
                _one_line_naming(str(err), path)
                return
        for w in caught:
            if issubclass(w.category, DataWarning):
                _one_line_naming(str(w.message), path)
    _valid_table(bars, features)


def _one_line_naming(text: str, path: Path) -> None:
    assert "\n" not in text, text
    assert text.startswith(f"{path}: "), text


def _valid_table(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert list(bars.columns[:5]) == list(REQUIRED_COLUMNS)
    values = bars.to_numpy()
    assert bars.dtypes.eq(np.float64).all() and np.isfinite(values).all()
    assert (bars[["open", "high", "low", "close"]].to_numpy() > 0).all()
    assert (bars["volume"].to_numpy() >= 0).all()
    assert np.isfinite(features.to_numpy()).all()
    assert (np.abs(features.to_numpy()) <= MAX_ABS).all()


# --- bad places: sweep names, read-only and full folders (#21) ------------------------------

_NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_names = st.one_of(
    st.text(max_size=120),
    st.text(alphabet="abcXYZ019._-/\\ \n", max_size=12),
    st.sampled_from(
        ["../x", "..", ".", "a/b", "/abs", "-x", ".h", "mlflow.db", "ok_1.b", "x" * 101]
    ),
)
_places = st.sampled_from(["ok", "missing", "read-only", "under read-only", "full"])


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_names_and_output_folders_pass_or_fail_in_one_line_before_any_work(tmp_path):
    # Any name in any kind of results folder: the checks a sweep makes before any work pass
    # exactly when the name is a valid new name and the folder can take a sweep; otherwise
    # the CLI says why in one line (naming --name or the folder), exits 2, writes nothing.
    from orchestrator.sweep.preflight import check_request
    from orchestrator.sweep.spec import SweepSpec
    from orchestrator.tune import main as tune_main
    from tests.mounts import fill, read_only, small_fs
    from trainables.errors import UserError

    (tmp_path / "ok").mkdir()
    with small_fs(tmp_path / "full", size_kb=512) as full, read_only(tmp_path / "ro") as ro:
        fill(full)
        folders = {
            "ok": tmp_path / "ok",
            "missing": tmp_path / "ok" / "new" / "deeper",
            "read-only": ro,
            "under read-only": ro / "new",
            "full": full,
        }

        @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(_names, _places)
        def check(name, place):
            results = folders[place]
            before = _listing(tmp_path)
            valid = bool(_NAME_RULE.fullmatch(name)) and name.lower() not in RESERVED
            valid = valid and not name.lower().startswith("mlflow.db")
            fits = place in ("ok", "missing")
            spec = SweepSpec(space="smoke", name=name, results_dir=str(results), num_cpus=2)
            try:
                check_request(spec, results / name if name not in ("", ".", "..") else results)
                passed = True
            except UserError as err:
                passed, message = False, str(err)
            assert passed == (valid and fits), (name, place)
            if not passed:
                assert "\n" not in message
                assert message.startswith("--name") if not valid else str(results) in message
                with contextlib.redirect_stderr(io.StringIO()) as err:
                    code = tune_main([f"--name={name}", "--results-dir", str(results)])
                assert code == 2 and err.getvalue().count("\n") == 1, err.getvalue()
            assert _listing(tmp_path) == before

        check()
