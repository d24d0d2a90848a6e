"""What a promotion starts from: the sweep's record, its data rebuilt, and the holdout guard.

``top_configs`` turns the leaderboard's best trials into full training configs (the sweep's
base config + the trial's params + promotion settings, which may not touch the data
settings in ``DATA_SETTINGS``).

``load_holdout(out_dir)`` rebuilds the bar table exactly as the sweep did (the data, ticker,
n_bars, seed and settings recorded in ``sweep.json``) and cuts it with ``final_split`` at the
sweep's longest ``sequence_length``, so the test part is the one the sweep never saw. It
refuses to go on when the rebuilt holdout does not start at the sweep's ``test_first_row``
(the data file or the search space changed since).

``HoldoutGuard`` hands the table out in two phases:

1. ``training_table()``: rows ``< test_first_row`` only. The arrays are sliced, so the test
   rows are physically absent from whatever trains (models, scalers, baselines).
   Models first train on the final split's train part and early-stop on its val part
   (after the ``purge + embargo`` gap); then the final models are refit on train+validation
   (every anchor before the test gap) for the best epoch count.
2. ``test_part()``: the test rows, once ``finish_training()`` was called. Training after
   that is refused.

The guard records the highest row it handed to training, the last row the final models'
labels reach, and the order of both phases; ``promoted.json`` keeps that record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.records.sweep_record import checked_record
from orchestrator.sweep.data_source import reload_sweep_bars
from orchestrator.sweep.spaces import load_space, space_from_dict
from orchestrator.sweep.spec import SweepSpec, base_config, longest_sequence
from trainables.errors import ConfigError, shown
from trainables.parameters.train_config import ALIASES, DATA_SETTINGS, TrainConfig
from trainables.prep.dataset import Targets
from trainables.prep.model_table import TableArrays, build_table, holdout_split
from trainables.prep.splits import FinalSplit, audit_frame

__all__ = [
    "DATA_SETTINGS",
    "HoldoutData",
    "HoldoutGuard",
    "Pick",
    "HoldoutRows",
    "TrainingTable",
    "check_settings",
    "jsonable",
    "load_holdout",
    "read_sweep",
    "sweep_spec",
    "top_configs",
    "write_json",
]


def check_settings(settings: dict) -> None:
    """Refuse training settings that would change how the data is built or cut.

    ``DATA_SETTINGS`` are the TrainConfig fields marked ``data=True``: promotion must use
    the sweep's, or the test part would not be the one the sweep never saw."""
    fixed = sorted(k for k in settings if ALIASES.get(k, k) in DATA_SETTINGS)
    if fixed:
        key = fixed[0] if fixed[0] in DATA_SETTINGS else f"{fixed[0]} ({ALIASES[fixed[0]]})"
        raise ConfigError(
            f"--set {key}: promotion keeps the sweep's data settings "
            f"({', '.join(DATA_SETTINGS)}), so its test part stays the one the sweep held "
            f"out; run a new sweep to change them"
        )


def read_sweep(out_dir: Path) -> dict:
    """``sweep.json`` of a finished sweep; ConfigError naming the folder when there is none."""
    path = Path(out_dir) / "sweep.json"
    if not path.is_file():
        raise ConfigError(
            f"no sweep at {out_dir}: {path.name} is missing (run python -m orchestrator.tune "
            f"--name {Path(out_dir).name} first, or check --results-dir)"
        )
    try:
        return checked_record(json.loads(path.read_text()), path)
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


def sweep_spec(sweep: dict) -> SweepSpec:
    """The SweepSpec a ``sweep.json`` was written from."""
    names = {f.name for f in fields(SweepSpec)}
    try:
        spec = SweepSpec(**{k: v for k, v in sweep.items() if k in names})
        if not isinstance(spec.space, str):
            raise TypeError(f"space is {shown(spec.space, 40)}, not a space's name")
        return spec
    except (TypeError, ValueError, AttributeError) as err:  # an edited record: one line
        raise ConfigError(
            f"sweep.json of {sweep.get('name')!r}: a setting has a value of the wrong type "
            f"({shown(str(err), 120)[1:-1]}); the record was edited or is damaged"
        ) from None


@dataclass
class TrainingTable(TableArrays):
    """Everything training may read: rows before the holdout only (shipped to Ray workers)."""

    fit_idx: np.ndarray  # anchors the models train on (final split's train part)
    stop_idx: np.ndarray  # anchors they early-stop on (its val part, after the gap)
    refit_idx: np.ndarray  # anchors the final models are refit on: train+validation


@dataclass
class HoldoutRows:
    """The untouched test rows and their anchors, in absolute row numbers of the table."""

    features: pd.DataFrame  # rows test_first_row .. end, the only rows any test window reads
    anchors: np.ndarray  # [n_test] absolute anchor rows
    first_row: int  # absolute row of features' first row (= test_first_row)
    targets: Targets  # full length; only values[anchors] are read
    close: np.ndarray | None = None  # the bars' close on the rows of ``features`` (trading)
    open: np.ndarray | None = None  # the bars' open on the same rows (trading executes there)

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        return self.features.index[self.anchors - self.first_row]

    @property
    def target_timestamps(self) -> pd.DatetimeIndex:
        return self.features.index[self.anchors - self.first_row + self.targets.horizon]

    def truth(self) -> np.ndarray:
        """Regression: ``[n, T]`` targets in original units; classification: ``[n]`` labels."""
        values = self.targets.values[self.anchors]
        return values.astype(np.int64) if self.targets.task == "classification" else values

    def now(self) -> np.ndarray | None:
        """Regression: ``[n, T]`` the target columns at the anchor row (persistence)."""
        if self.targets.task == "classification":
            return None
        local = self.anchors - self.first_row
        return self.features[list(self.targets.names)].to_numpy(dtype=np.float64)[local]


@dataclass
class HoldoutData:
    """The rebuilt table of a sweep; reach it through ``HoldoutGuard``, not directly."""

    features: pd.DataFrame = field(repr=False)
    targets: Targets = field(repr=False)
    split: FinalSplit
    base: TrainConfig
    sequence_length_max: int
    test_first_row: int
    n_train_rows: int  # rows the train+val spans reach: the sweep's rows
    source: str
    close: np.ndarray | None = field(default=None, repr=False)  # the bars' close per row
    open: np.ndarray | None = field(default=None, repr=False)  # the bars' open per row

    def audit(self) -> pd.DataFrame:
        """Two rows: the early-stopping cut (train vs val) and the holdout (train+val vs test)."""
        frame = audit_frame(self.split.audit(index=self.features.index))
        frame.insert(0, "part", ["promotion: train vs early-stopping tail", "holdout: test"])
        return frame.drop(columns=["fold"])

    def summary(self) -> dict:
        """Sizes and dates of the parts (timestamps only: no test value is read)."""
        index, test = self.features.index, self.split.test
        return {
            "source": self.source,
            "n_rows": len(self.features),
            "test_first_row": self.test_first_row,
            "n_fit": len(self.split.train),
            "n_early_stopping": len(self.split.val),
            "n_test": len(test),
            "horizon": self.base.horizon,
            # Two names for where the test part starts: its first anchor (first forecast)
            # and the first bar its windows read (the sweep's "held out from").
            "test_first_time": str(index[test[0]]),
            "test_last_time": str(index[test[-1]]),
            "test_windows_first_time": str(index[self.test_first_row]),
        }


def load_holdout(
    out_dir: Path,
    *,
    sweep: dict | None = None,
    data: str | None = None,
    data_env: str | None = None,
) -> HoldoutData:
    """Rebuild the sweep's table from its ``sweep.json`` and check the holdout is the same.

    The bars are the sweep's snapshot, or its source read up to its ``end`` (``data`` /
    ``data_env``: the same database given with credentials); their fingerprint must be the
    recorded one (orchestrator.sweep.data_source)."""
    sweep = read_sweep(out_dir) if sweep is None else sweep
    spec = sweep_spec(sweep)
    # The space as the sweep loaded it (an edited YAML file must not move the test part).
    recorded = sweep.get("space_definition")
    where = str(Path(out_dir) / "sweep.json")
    space = space_from_dict(recorded, source=where) if recorded else load_space(spec.space)
    base = base_config(spec, space)
    sequence_length_max = longest_sequence(space, base)
    bars, source = reload_sweep_bars(
        out_dir, sweep, spec, space, base, data=data, data_env=data_env
    )
    features, targets = build_table(bars, base)  # as prepare_sweep_data builds it
    split = holdout_split(len(features), base, sequence_length=sequence_length_max)
    # The same arithmetic as prepare_sweep_data: the sweep saw rows < n_train_rows.
    n_train_rows = int(split.train_val.max()) + base.horizon + 1
    test_first_row = int(split.test.min()) - sequence_length_max + 1
    recorded = sweep.get("test_first_row")
    if recorded is not None and int(recorded) != test_first_row:
        raise ConfigError(
            f"{source} rebuilt for sweep {sweep.get('name')!r} puts the test part at row "
            f"{test_first_row}, but the sweep held it out from row {recorded}: the data or the "
            f"search space {spec.space!r} changed since the sweep; promote needs the same ones"
        )
    return HoldoutData(
        features=features,
        targets=targets,
        split=split,
        base=base,
        sequence_length_max=sequence_length_max,
        test_first_row=test_first_row,
        n_train_rows=n_train_rows,
        source=source,
        close=bars["close"].reindex(features.index).to_numpy(dtype=np.float64),
        open=bars["open"].reindex(features.index).to_numpy(dtype=np.float64),
    )


@dataclass
class Pick:
    """One leaderboard trial chosen for promotion."""

    rank: int
    trial_id: str
    objective: float
    params: dict
    cfg: TrainConfig


def top_configs(
    board: pd.DataFrame, base: TrainConfig, *, top_k: int, settings: dict | None = None
) -> list[Pick]:
    """The ``top_k`` ranked trials as full training configs: the sweep's base config, the
    trial's params, then ``settings`` (e.g. more epochs) on top."""
    ranked = board[board["rank"].notna()].sort_values("rank").head(top_k)
    picks = []
    for _, row in ranked.iterrows():
        params = {
            c.removeprefix("param_"): _param_value(row[c])
            for c in board.columns
            if c.startswith("param_") and not _missing(row[c])
        }
        cfg = TrainConfig.from_dict({**base.to_dict(), **params}).replace(**(settings or {}))
        picks.append(
            Pick(int(row["rank"]), str(row["trial_id"]), float(row["objective"]), params, cfg)
        )
    return picks


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _param_value(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) and v[:1] in "[{":
        return json.loads(v)  # lists and dicts are stored as JSON text (leaderboard._plain)
    return v


class HoldoutGuard:
    """Training sees rows ``< test_first_row`` only; the test part opens once, after training.

    Misuse is a bug in the caller, so it raises RuntimeError (a traceback), not a user error.
    """

    def __init__(self, data: HoldoutData) -> None:
        self._data = data
        self.test_first_row = data.test_first_row
        self.max_training_row = -1  # highest row index handed to anything that trains
        self.training_done = False
        self.test_reads = 0
        self.events: list[str] = []  # 'training' / 'test', in the order they happened

    def training_table(self) -> TrainingTable:
        if self.training_done:
            raise RuntimeError("training was asked for data after the test part was opened")
        d, n = self._data, self._data.n_train_rows
        if n > d.test_first_row:  # load_holdout's arithmetic guarantees this; a bug otherwise
            raise RuntimeError(f"training rows reach {n - 1} >= test_first_row {d.test_first_row}")
        table = TrainingTable(
            values=d.features.to_numpy(dtype=np.float64)[:n].copy(),
            columns=list(d.features.columns),
            index=d.features.index[:n].to_numpy(dtype="datetime64[ns]"),
            targets=Targets(
                task=d.targets.task,
                values=d.targets.values[:n].copy(),
                names=list(d.targets.names),
                horizon=d.targets.horizon,
                threshold=d.targets.threshold,
            ),
            fit_idx=d.split.train.copy(),
            stop_idx=d.split.val.copy(),
            refit_idx=d.split.train_val.copy(),
        )
        self.max_training_row = max(self.max_training_row, table.n_rows - 1)
        self.events.append("training")
        return table

    def finish_training(self) -> None:
        """Every model and baseline is trained; from now on only the test part is handed out."""
        self.training_done = True

    def test_part(self) -> HoldoutRows:
        if not self.training_done:
            raise RuntimeError("the test part was asked for before training finished")
        d = self._data
        self.test_reads += 1
        self.events.append("test")
        return HoldoutRows(
            features=d.features.iloc[d.test_first_row :],
            anchors=d.split.test.copy(),
            first_row=d.test_first_row,
            targets=d.targets,
            close=None if d.close is None else d.close[d.test_first_row :],
            open=None if d.open is None else d.open[d.test_first_row :],
        )

    def to_dict(self) -> dict:
        """The record written to promoted.json (and checked by the tests)."""
        first_test = self.events.index("test") if "test" in self.events else None
        split, h = self._data.split, self._data.base.horizon
        return {
            "test_first_row": self.test_first_row,
            "max_training_row": self.max_training_row,
            "training_rows": self.max_training_row + 1,
            # The final models are refit on train+validation: their last sample's label
            # reaches into the validation part, never past it.
            "final_models_train_on": "train+validation",
            "validation_anchors": [int(split.val[0]), int(split.val[-1])],
            "last_training_anchor": int(split.train_val[-1]),
            "last_training_label_row": int(split.train_val[-1]) + h,
            "test_reads": self.test_reads,
            "test_read_after_training": first_test is not None
            and "training" not in self.events[first_test:],
            "events": list(self.events),
        }


def write_json(path: Path, obj) -> None:
    """Strict JSON: numpy scalars become Python numbers, NaN/inf become null."""
    Path(path).write_text(json.dumps(jsonable(obj), indent=2))


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
