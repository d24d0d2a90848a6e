"""Everything a sweep computes once on the driver: data, holdout, CV folds and their audit.

The untouched test part is cut off here and never leaves the driver: trials receive only
the rows the train+validation anchors can reach (``SweepData.n_rows``), so no trial can read
a test row, whatever it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trainables.bars.files import DEFAULT_MAX_JUMP, check_enough_rows, release_memory
from trainables.bars.provenance import origin_of
from trainables.bars.sources import BarSource, read_bars
from trainables.bars.synthetic import make_bars
from trainables.errors import ConfigError, DataError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import Targets
from trainables.prep.labels import describe_targets
from trainables.prep.model_table import TableArrays, build_table, holdout_split
from trainables.prep.naive import naive_forecast, naive_kind
from trainables.prep.splits import (
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
    audit_frame,
    inner_split,
)

__all__ = ["CV_SCHEMES", "MIN_FIT", "MIN_STOP", "SweepData", "make_splitter", "prepare_sweep_data"]

CV_SCHEMES = ("walk-forward", "kfold", "cpcv")
# Fewest samples a fold may train on / early-stop on after the inner block is cut off.
MIN_FIT, MIN_STOP = 50, 20


@dataclass
class SweepData(TableArrays):
    """The arrays every trial shares through the Ray object store (read, never copied):
    the rows before the holdout only, and the CV folds over them."""

    # per fold (fit, stop, eval) anchors: the model trains on fit, early-stops on stop (the
    # inner block, purged from fit) and is scored once on eval
    folds: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    sequence_length_max: int
    test_first_row: int  # first row of the untouched test part (its anchors' spans start here)
    audit: pd.DataFrame = field(repr=False)
    summary: str = ""
    timestamps: str = ""  # how the data's times were read (UTC conversion), for sweep.json

    def compact(self) -> None:
        """Keep one contiguous copy of the sweep's rows in place of the view of the whole
        feature table: column-major (a fold reads columns), and contiguous so Ray's object
        store takes it as it is, without a pickled copy. Called once the bars are gone, so
        the copy never sits beside them (the driver's peak memory, #23)."""
        if not self.values.flags.f_contiguous:
            self.values = np.asfortranarray(self.values)


def make_splitter(
    cv: str, *, n_splits: int, sequence_length: int, horizon: int, purge=None, embargo=None
):
    common = dict(sequence_length=sequence_length, horizon=horizon, purge=purge, embargo=embargo)
    if cv == "walk-forward":
        return PurgedWalkForward(n_splits, **common)
    if cv == "kfold":
        return PurgedKFold(n_splits, **common)
    if cv == "cpcv":
        # n_splits groups, two of them evaluated at a time: C(n, 2) folds.
        return CombinatorialPurgedCV(n_splits, 2, **common)
    raise ConfigError(f"cv must be one of {list(CV_SCHEMES)}, but got cv={cv!r}")


BUILTIN = "built-in data"  # the source's name in messages when there is no --data
# The longest built-in series --bars makes: hourly bars from 2020-01-01 leave pandas'
# nanosecond dates (year 2262) after 2,123,760 bars.
MAX_BARS = 2_000_000


def load_source(source: BarSource | None, *, n_bars: int, seed: int) -> pd.DataFrame:
    """The user's bars (a file, or a database table/view/query: trainables.bars.sources, checked
    as ``source.checks`` say), or the built-in generator's when there is no source."""
    return make_bars(n_bars, seed=seed) if source is None else read_bars(source)


def prepare_sweep_data(
    base: TrainConfig,
    *,
    data: str | None,
    ticker: str | None,
    cv: str,
    n_splits: int,
    sequence_length_max: int,
    n_bars: int = 4000,
    data_seed: int = 0,
    inner_val: float = 0.15,
    bars: pd.DataFrame | None = None,
    source: str | None = None,
    timezone: str | None = None,
    dst: str = "raise",
    max_jump: float = DEFAULT_MAX_JUMP,
    window_set: bool = False,
) -> SweepData:
    """Load, featurise, cut the holdout off and compute the folds shared by every trial.

    Folds are computed once with the longest ``sequence_length`` any trial may use, so all
    trials are scored on the same evaluation samples and every purge is wide enough for all.
    ``bars``: already loaded (then ``source`` names them in messages). ``window_set``: the
    window length was fixed by ``--set`` (a smaller space would not shorten it).
    """
    source = source or data or BUILTIN  # the caller's name hides a URL's password
    if bars is None:  # else the caller loaded them (orchestrator.sweep.data_source)
        checks = {"timezone": timezone, "dst": dst, "max_jump": max_jump}
        files = None if data is None else BarSource(data=data, ticker=ticker, **checks)
        bars = load_source(files, n_bars=n_bars, seed=data_seed)
    features, targets = build_table(bars, base)
    shape = {"cv": cv, "n_splits": n_splits, "sequence_length": sequence_length_max}
    try:
        split, splitter, folds, inner = fold_geometry(
            len(features), base, inner_val=inner_val, source=source, **shape
        )
    except (ConfigError, DataError) as err:
        warmup = len(bars) - len(features)
        raise too_few_rows(
            err, len(features), warmup, base, inner_val, source, window_set=window_set, **shape
        ) from None
    n_rows, test_first_row = _sweep_rows(split, base.horizon, sequence_length_max)
    rows = np.arange(n_rows)
    index = features.index[:n_rows]
    audit = _with_inner(audit_frame(splitter.audit(rows, index=index)), inner, index)
    if base.task == "regression":
        # The one read of the test part's labels a sweep makes: per target, "is every label
        # equal to its naive forecast?". A yes stops the sweep; a no changes nothing, and
        # nothing of it reaches a trial, so it cannot choose anything (docs/sweeps.md).
        _check_naive_errors(folds, targets, features, source, split.test)
    cut = _cut_targets(targets, n_rows)
    summary = (
        f"{source}: {len(bars):,} bars -> {len(features):,} feature rows; "
        f"{n_rows:,} rows for the sweep ({cv}, {len(folds)} folds, each holding {inner_val:.0%} of "
        f"its training samples out for early stopping), "
        f"{len(split.test):,} test samples held out (their windows read bars from "
        f"{features.index[test_first_row]}, row {test_first_row}; their first anchor, the "
        f"first forecast, is {features.index[split.test[0]]})"
    )
    if base.task == "classification":
        summary += "; classes " + describe_targets(cut, split.train_val)
    release_memory()  # the features' and the checks' temporaries
    return SweepData(
        # A view of the features' float64 block, no copy yet (see SweepData.compact).
        values=features.iloc[:n_rows].to_numpy(dtype=np.float64),
        columns=list(features.columns),
        index=index.to_numpy(dtype="datetime64[ns]"),
        targets=cut,
        folds=folds,
        sequence_length_max=sequence_length_max,
        test_first_row=test_first_row,
        audit=audit,
        summary=summary,
        timestamps=origin.timestamps if (origin := origin_of(bars)) else "naive (built-in data)",
    )


def fold_geometry(
    n_features: int,
    base: TrainConfig,
    *,
    cv: str,
    n_splits: int,
    sequence_length: int,
    inner_val: float,
    source: str,
):
    """The holdout split, the splitter and each fold's (fit, stop, eval) anchors for
    ``n_features`` rows; DataError/ConfigError when the rows cannot hold them. Positions
    only: ``rows_needed`` searches with it."""
    check_enough_rows(
        n_features,
        sequence_length=sequence_length,
        horizon=base.horizon,
        n_splits=n_splits,
        source=source,
    )
    split = holdout_split(n_features, base, sequence_length=sequence_length)
    n_rows, _ = _sweep_rows(split, base.horizon, sequence_length)
    splitter = make_splitter(
        cv,
        n_splits=n_splits,
        sequence_length=sequence_length,
        horizon=base.horizon,
        purge=base.purge,
        embargo=base.embargo,
    )
    folds, inner = _inner_folds(
        splitter, np.arange(n_rows), base, sequence_length, inner_val, source
    )
    _check_fold_sizes(folds, source, sequence_length)
    return split, splitter, folds, inner


def rows_needed(
    base: TrainConfig, *, inner_val: float, limit: int = 10_000_000, **shape
) -> int | None:
    """The fewest feature rows ``fold_geometry`` accepts for ``shape`` (cv, n_splits,
    sequence_length); None above ``limit``. More rows never make folds smaller, so a
    doubling search then a bisection finds it."""

    def fits(n: int) -> bool:
        try:
            fold_geometry(n, base, inner_val=inner_val, source="", **shape)
        except (ConfigError, DataError, ValueError):
            return False
        return True

    low, high = 1, 64
    while not fits(high):
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def too_few_rows(
    err, n_features, warmup, base, inner_val, source, *, window_set=False, **shape
) -> Exception:
    """The error for rows too few for the folds: what is needed and what would fit (fewer
    folds, or the smoke space's shorter windows; a shorter --set when --set fixed the
    window), in bars; ``err`` itself when the rows are enough and something else is wrong."""
    need = rows_needed(base, inner_val=inner_val, **shape)
    if need is not None and n_features >= need:
        return err
    cv, folds, length = shape["cv"], shape["n_splits"], shape["sequence_length"]
    what = (
        f"{source}: {n_features + warmup:,} bars are too few for {folds} {cv} folds with "
        f"sequence_length={length} (each fold keeps {MIN_FIT} training and {MIN_STOP} "
        f"early-stopping samples behind its purge gaps, and the last {base.test_split:.0%} "
        f"is the test part): need at least "
        + (f"{need + warmup:,}" if need else "more than 10 million")
    )
    # The generator makes as many bars as asked for: with the built-in data, say how many.
    more_bars = ""
    if source == BUILTIN and need is not None and need + warmup <= MAX_BARS:
        more_bars = f"; --bars {need + warmup} makes enough"
    from orchestrator.sweep.spaces import load_space  # here only: spec.py imports this module
    from orchestrator.sweep.spec import longest_sequence

    # A window fixed by --set stays fixed in every space: only fewer folds can help then.
    smoke = length if window_set else longest_sequence(load_space("smoke"), base)
    tries = [(f"--folds {k}", length, k) for k in range(folds - 1, 1, -1)]
    if not window_set and (smoke < length or folds > 2):
        tries += [(f"--space smoke --folds {k}", smoke, k) for k in range(folds, 1, -1)]
    for flags, seq, k in tries:
        need_try = rows_needed(
            base, inner_val=inner_val, **{**shape, "n_splits": k, "sequence_length": seq}
        )
        if need_try is not None and n_features >= need_try:
            return DataError(f"{what}; try {flags} (needs {need_try + warmup:,}){more_bars}")
    smallest = rows_needed(
        base, inner_val=inner_val, **{**shape, "n_splits": 2, "sequence_length": min(smoke, length)}
    )
    tried_all = min(smoke, length) == length and folds == 2  # nothing smaller to offer
    smallest_flags = "--folds 2" if window_set else "--space smoke --folds 2"
    more = (
        "" if tried_all or not smallest else f"; even {smallest_flags} needs {smallest + warmup:,}"
    )
    if window_set:
        more += "; or --set a shorter sequence_length" if more else "; --set a shorter one"

    return DataError(f"{what}{more}{more_bars}")


def _cut_targets(targets: Targets, n_rows: int) -> Targets:
    """The targets of the sweep's rows only (the test part's labels never leave the driver)."""
    return Targets(
        task=targets.task,
        values=targets.values[:n_rows],
        names=list(targets.names),
        horizon=targets.horizon,
        threshold=targets.threshold,
    )


def _sweep_rows(split, horizon: int, sequence_length_max: int) -> tuple[int, int]:
    """(rows a train+val sample can reach: the sweep's rows, first row of the test part's
    spans); the test part's spans start after the sweep's rows, or the holdout leaks."""
    n_rows = int(split.train_val.max()) + horizon + 1
    test_first_row = int(split.test.min()) - sequence_length_max + 1
    if test_first_row < n_rows:
        raise ConfigError(
            f"the holdout gap is too small: test spans start at row {test_first_row} but "
            f"train+validation spans reach row {n_rows - 1}"
        )
    return n_rows, test_first_row


def _inner_folds(
    splitter, rows, base: TrainConfig, sequence_length: int, inner_val: float, source: str
):
    """Each CV fold as (fit, stop, eval): its training part cut by ``inner_split``."""
    folds, inner = [], []
    for k, (tr, ev) in enumerate(splitter.split(rows)):
        try:
            cut = inner_split(
                tr,
                ev,
                sequence_length=sequence_length,
                horizon=base.horizon,
                fraction=inner_val,
                purge=base.purge,
                embargo=base.embargo,
            )
        except (ConfigError, DataError) as err:
            raise DataError(
                f"{source}: fold {k} keeps {len(tr):,} training samples: too few to hold "
                f"{inner_val:.0%} out for early stopping behind its purge gap ({err}); use "
                f"fewer --folds, shorter windows or more bars"
            ) from None
        folds.append((cut.fit, cut.stop, np.asarray(ev)))
        inner.append(cut)
    return folds, inner


def _check_fold_sizes(folds, source: str, sequence_length: int) -> None:
    """Every fold keeps enough samples to train and to early-stop on (before Ray starts)."""
    for k, (fit, stop, _ev) in enumerate(folds):
        if len(fit) < MIN_FIT or len(stop) < MIN_STOP:
            raise DataError(
                f"{source}: fold {k} keeps {len(fit):,} training and {len(stop):,} "
                f"early-stopping samples (need at least {MIN_FIT} and {MIN_STOP}) after the "
                f"purge gaps of sequence_length={sequence_length}; use fewer --folds, shorter windows "
                f"or more bars"
            )


def _with_inner(audit: pd.DataFrame, inner, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The fold audit plus each fold's early-stopping block and what it cost."""
    audit = audit.copy()
    audit["n_fit"] = [len(c.fit) for c in inner]
    audit["n_stop"] = [len(c.stop) for c in inner]
    audit["stop_first"] = [int(c.stop[0]) for c in inner]
    audit["stop_last"] = [int(c.stop[-1]) for c in inner]
    audit["stop_purged"] = [c.purged for c in inner]
    audit["stop_embargoed"] = [c.embargoed for c in inner]
    audit["stop_first_time"] = [index[int(c.stop[0])] for c in inner]
    audit["stop_last_time"] = [index[int(c.stop[-1])] for c in inner]
    return audit


def _check_naive_errors(folds, targets: Targets, features: pd.DataFrame, source: str, test):
    """A part whose naive forecast is exact (a flat stretch of prices) cannot be scored as a
    ratio to it: say so before any trial runs, naming the rows."""
    names = list(targets.names)
    now = features[names].to_numpy(dtype=np.float64)
    truth = np.asarray(targets.values, dtype=np.float64).reshape(len(features), -1)
    parts = []
    for k, (fit, stop, ev) in enumerate(folds):
        mean = truth[fit].mean(axis=0)
        parts += [(f"fold {k}'s evaluation", ev, mean), (f"fold {k}'s early-stopping", stop, mean)]
    parts.append(("the test part", np.asarray(test), truth[folds[-1][0]].mean(axis=0)))
    for what, anchors, mean in parts:
        naive = naive_forecast(names, now[anchors], mean)
        exact = np.mean((naive - truth[anchors]) ** 2, axis=0) == 0
        if exact.any():
            t = int(np.flatnonzero(exact)[0])
            first, last = features.index[anchors[0]], features.index[anchors[-1]]
            raise DataError(
                f"{source}: {names[t]!r} never changes over {what} samples (rows "
                f"{int(anchors[0])}..{int(anchors[-1])}, {first} .. {last}), so its naive "
                f"forecast ({naive_kind(names[t])}) has zero error and no model can be scored "
                f"against it; check the data there (a constant stretch of prices?)"
            )
