"""The bars a sweep reads, what ``sweep.json`` keeps of them, and reading the same rows again.

A database view keeps growing (new bars) and can be rewritten in place (split or dividend
adjustments); a file can be edited. So a sweep records, next to its settings:

* ``data``: the file, or the database URL *without its password* (``--data-env`` records only
  the variable's name, in ``data_env``); promote and predict get the password again from the
  URL they are given, ``PGPASSWORD``, ``~/.pgpass`` or the variable;
* ``end``: the last bar it read (``--end``, or the data's last bar at or before it);
* ``data_fingerprint``: ``trainables.bars.files.bars_fingerprint`` of the rows it read.

Promotion reads ``results/<name>/data.parquet`` when the sweep kept a snapshot
(``--snapshot``), else the source again up to ``end``, and refuses with one line when the
rows' fingerprint is not the recorded one (``reload_sweep_bars``: what a resumed sweep should
read too).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from orchestrator.sweep.prepare import BUILTIN, load_source
from orchestrator.sweep.spaces import SearchSpace
from trainables.bars.files import DEFAULT_MAX_JUMP, bars_fingerprint, load_bars
from trainables.bars.sources import BarSource, public_url, run_columns
from trainables.errors import ConfigError
from trainables.parameters.train_config import TrainConfig

__all__ = [
    "SNAPSHOT",
    "bar_source",
    "data_record",
    "load_sweep_bars",
    "reload_sweep_bars",
    "source_name",
    "sweep_columns",
    "write_snapshot",
]

SNAPSHOT = "data.parquet"  # in results/<name>/


def bar_source(spec, *, columns=None, data=None, data_env=None) -> BarSource | None:
    """The spec's source as a ``BarSource`` (None: the built-in data), with the spec's checks
    of timestamps and prices. ``data``/``data_env`` replace the recorded ones (the same
    database, given with its credentials)."""
    if data is None and data_env is None:
        data, data_env = spec.data, spec.data_env
    if data is None and data_env is None:
        given = [f"--{k}" for k in ("table", "query", "start", "end") if getattr(spec, k)]
        if given:
            raise ConfigError(
                f"{', '.join(given)}: these read your data; give --data or --data-env"
            )
        return None
    return BarSource(
        data=data,
        data_env=data_env,
        table=spec.table,
        query=spec.query,
        ticker=spec.ticker,
        start=spec.start,
        end=spec.end,
        columns=columns,
        **checks_of(spec),
    )


def checks_of(spec) -> dict:
    """How the sweep checks timestamps and prices (its --timezone, --dst, --max-jump)."""
    return {
        "timezone": getattr(spec, "timezone", None),
        "dst": getattr(spec, "dst", "raise"),
        "max_jump": getattr(spec, "max_jump", DEFAULT_MAX_JUMP),
    }


def source_name(spec) -> str:
    """The spec's source for logs and records: never with a password."""
    source = bar_source(spec)
    return BUILTIN if source is None else source.describe()


def sweep_columns(space: SearchSpace, base: TrainConfig) -> tuple[str, ...]:
    """Bar columns beyond OHLCV that any trial of the space may read."""
    configs = [base]
    for name in ("f_cols", "target_col"):
        dist = space.params.get(name)
        for choice in (dist or {}).get("choices", []):
            configs.append(TrainConfig.from_dict({**base.to_dict(), name: choice}))
    return run_columns(
        [c for cfg in configs for c in cfg.f_cols], [cfg.target_col for cfg in configs]
    )


def load_sweep_bars(spec, space: SearchSpace, base: TrainConfig) -> pd.DataFrame:
    """The bars a new sweep reads (its source, or the built-in generator's)."""
    source = bar_source(spec, columns=sweep_columns(space, base))
    return load_source(source, n_bars=spec.n_bars, seed=spec.seed)


def data_record(spec, bars: pd.DataFrame) -> dict:
    """What ``sweep.json`` keeps of the data (merged over the spec's own fields)."""
    user_data = spec.data is not None or spec.data_env is not None
    return {
        "data": public_url(spec.data, mask=False) if spec.data else spec.data,
        "end": bars.index[-1].isoformat() if user_data else spec.end,
        "data_fingerprint": bars_fingerprint(bars),
    }


def write_snapshot(bars: pd.DataFrame, out_dir: Path) -> Path:
    """``out_dir/data.parquet``: the rows read (their fingerprint is ``data_fingerprint``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SNAPSHOT
    partial = out_dir / f".{SNAPSHOT}.partial-{os.getpid()}"
    try:
        rows = bars.copy(deep=False)
        rows.attrs = {}  # the reader's BarsOrigin is no JSON: pyarrow would refuse the file
        rows.to_parquet(partial, engine="pyarrow")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def reload_sweep_bars(
    out_dir: Path,
    sweep: dict,
    spec,
    space: SearchSpace,
    base: TrainConfig,
    *,
    data: str | None = None,
    data_env: str | None = None,
    purpose: str = "promote",
) -> tuple[pd.DataFrame, str]:
    """(bars, where from) the sweep read: its snapshot if kept, else its source up to its
    ``end``; ConfigError if their fingerprint is not the recorded one (``purpose``: what
    needs them, for the message: promote or resume)."""
    snapshot = Path(out_dir) / SNAPSHOT
    source = bar_source(spec, columns=sweep_columns(space, base), data=data, data_env=data_env)
    if snapshot.is_file():
        bars = load_bars(snapshot, max_jump=checks_of(spec)["max_jump"])  # already in UTC
        name = f"{snapshot} (snapshot of {source_name(spec)})"
    else:
        bars = load_source(source, n_bars=spec.n_bars, seed=spec.seed)
        name = BUILTIN if source is None else source.describe()
    recorded = sweep.get("data_fingerprint")
    if recorded and bars_fingerprint(bars) != recorded:
        until = f" up to {spec.end}" if spec.end else ""
        if source is None and not snapshot.is_file():
            raise ConfigError(
                f"{name}: this version's generator makes other bars than the ones sweep "
                f"{sweep.get('name')!r} read (the generator changed since the sweep ran; "
                f"docs/data.md); {purpose} needs the sweep's rows: run the sweep again"
            )
        raise ConfigError(
            f"{name}: the rows{until} are not the ones sweep {sweep.get('name')!r} read (their "
            f"hash changed since it started: rewritten or removed bars, e.g. a split "
            f"adjustment); {purpose} needs the sweep's rows: run a new sweep, or keep them with "
            f"--snapshot next time"
        )
    return bars, name
