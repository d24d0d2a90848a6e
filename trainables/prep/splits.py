"""Purged, embargoed cross-validation splitters over anchor rows (sklearn style).

Vocabulary (docs/architecture.md): the sample at anchor row ``i`` reads rows
``[i - sequence_length + 1, i]`` and its label reaches row ``i + horizon``, so its span is
``[i - sequence_length + 1, i + horizon]``; valid anchors are ``sequence_length - 1 .. n - 1 - horizon``.
Two spans are disjoint exactly when their anchors are at least ``sequence_length + horizon`` apart,
so the purge needed on each side of an evaluation block is ``sequence_length + horizon - 1``.
A smaller user ``purge`` is raised to that (the audit shows both); ``embargo`` anchors more
are dropped after each evaluation block (default ``sequence_length + horizon``).

Every ``split(X)`` yields ``(train_idx, eval_idx)``: int64 anchor rows, sorted ascending.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd

from trainables.errors import ConfigError, DataError, shown

__all__ = [
    "CombinatorialPurgedCV",
    "FinalSplit",
    "FoldAudit",
    "InnerSplit",
    "PurgedKFold",
    "PurgedWalkForward",
    "audit_frame",
    "final_split",
    "inner_split",
]

_Blocks = list[tuple[int, int]]  # half-open [start, stop) ranges of anchor *positions*


@dataclass(frozen=True)
class FoldAudit:
    """What one fold keeps and drops. Rows are anchor rows; ``*_time`` only with an index."""

    fold: int
    n_train: int
    n_eval: int
    train_first: int
    train_last: int
    eval_first: int
    eval_last: int
    purged: int  # training candidates dropped because their span touches an evaluation span
    embargoed: int  # further candidates dropped after an evaluation block
    purge: int  # purge used (>= purge_required)
    purge_required: int  # sequence_length + horizon - 1
    embargo: int
    train_first_time: pd.Timestamp | None = None
    train_last_time: pd.Timestamp | None = None
    eval_first_time: pd.Timestamp | None = None
    eval_last_time: pd.Timestamp | None = None

    def to_dict(self) -> dict:
        """JSON-ready: Python ints, timestamps as ISO 8601 strings (None without an index)."""
        stamp = pd.Timestamp
        return {k: v.isoformat() if isinstance(v, stamp) else v for k, v in vars(self).items()}


def audit_frame(audits: Sequence[FoldAudit]) -> pd.DataFrame:
    """One row per fold; the ``*_time`` columns only when the audits carry timestamps."""
    rows = [dataclasses.asdict(a) for a in audits]
    frame = pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(FoldAudit)])
    times = [c for c in frame.columns if c.endswith("_time")]
    return frame.drop(columns=[c for c in times if frame[c].isna().all()])


def _check_int(name: str, value: object, low: int, *, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, but got {name}={shown(value)}")


def _check_window(
    sequence_length: int, horizon: int, purge: int | None, embargo: int | None
) -> None:
    _check_int("sequence_length", sequence_length, 1)
    _check_int("horizon", horizon, 1)
    _check_int("purge", purge, 0, none_ok=True)
    _check_int("embargo", embargo, 0, none_ok=True)


def _gaps(
    sequence_length: int, horizon: int, purge: int | None, embargo: int | None
) -> tuple[int, int, int]:
    """(purge used, purge required, embargo used); a too-small purge is raised, never kept."""
    required = sequence_length + horizon - 1
    used = required if purge is None else max(int(purge), required)
    return used, required, sequence_length + horizon if embargo is None else int(embargo)


def _valid(n: int, sequence_length: int, horizon: int) -> tuple[int, int]:
    """(first valid anchor row, number m of valid anchors); DataError when there is none."""
    m = n - sequence_length - horizon + 1
    if m < 1:
        raise DataError(
            f"{n} rows give no valid anchor for sequence_length={sequence_length} and horizon={horizon}; "
            f"need n >= sequence_length + horizon = {sequence_length + horizon} rows"
        )
    return sequence_length - 1, m


def _time_index(X: object, index: object, n: int) -> pd.DatetimeIndex | None:
    if index is None:
        index = getattr(X, "index", None)
        if not isinstance(index, pd.DatetimeIndex):
            return None
    if not isinstance(index, pd.DatetimeIndex):
        raise ConfigError(f"index must be a pandas DatetimeIndex, but got {type(index).__name__}")
    if len(index) != n:
        raise DataError(f"index has {len(index)} timestamps for {n} rows")
    return index


def _group_bounds(m: int, k: int) -> np.ndarray:
    """k contiguous groups over m positions, the first m % k one larger (as sklearn's KFold)."""
    sizes = np.full(k, m // k, dtype=np.int64)
    sizes[: m % k] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _masks(
    m: int, blocks: _Blocks, cand: tuple[int, int], purge: int, embargo: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(train mask, eval mask, n purged, n embargoed) over the m anchor positions.

    Candidates are positions in ``cand`` outside the eval blocks; a candidate within
    ``purge`` of a block (either side) is purged, else within ``purge + embargo`` after
    a block's end it is embargoed, else it trains. Touching blocks need no merging: the
    zones after the first lie inside the second block or its own zones.
    """
    ev, near, after = (np.zeros(m, dtype=bool) for _ in range(3))
    for start, stop in blocks:
        ev[start:stop] = True
        near[max(start - purge, 0) : stop + purge] = True
        after[stop : stop + purge + embargo] = True
    candidate = np.zeros(m, dtype=bool)
    candidate[cand[0] : cand[1]] = True
    candidate &= ~ev
    n_purged = int(np.count_nonzero(candidate & near))
    n_embargoed = int(np.count_nonzero(candidate & after & ~near))
    return candidate & ~near & ~after, ev, n_purged, n_embargoed


def _audit(
    fold: int,
    train: np.ndarray,
    ev: np.ndarray,
    purged: int,
    embargoed: int,
    gaps: tuple[int, int, int],
    index: pd.DatetimeIndex | None,
) -> FoldAudit:
    """FoldAudit of anchor-row arrays ``train`` and ``ev`` (both non-empty, sorted)."""
    rows = (int(train[0]), int(train[-1]), int(ev[0]), int(ev[-1]))
    times = (None,) * 4 if index is None else tuple(index[r] for r in rows)
    return FoldAudit(fold, len(train), len(ev), *rows, int(purged), int(embargoed), *gaps, *times)


class _PurgedSplitter:
    """Shared machinery: subclasses give the eval blocks and candidate range of each fold."""

    def __init__(
        self,
        n_splits: int,
        sequence_length: int,
        horizon: int,
        purge: int | None,
        embargo: int | None,
    ) -> None:
        _check_int("n_splits", n_splits, 2)
        _check_window(sequence_length, horizon, purge, embargo)
        self.n_splits, self.sequence_length, self.horizon = n_splits, sequence_length, horizon
        self.purge, self.embargo = purge, embargo

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        return self.n_splits

    @property
    def gaps(self) -> tuple[int, int, int]:
        """(purge used, purge required, embargo used) in anchors."""
        return _gaps(self.sequence_length, self.horizon, self.purge, self.embargo)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def _folds(self, m: int, n: int) -> list[tuple[_Blocks, tuple[int, int]]]:
        raise NotImplementedError

    def _fold_masks(self, n: int) -> tuple[int, list[tuple[np.ndarray, np.ndarray, int, int]]]:
        """All folds' masks, checked before the first fold is handed out."""
        first, m = _valid(n, self.sequence_length, self.horizon)
        purge, _, embargo = self.gaps
        out = []
        for k, (blocks, cand) in enumerate(self._folds(m, n)):
            masks = _masks(m, blocks, cand, purge, embargo)
            if not masks[0].any():
                spans = ", ".join(f"{first + a}..{first + b - 1}" for a, b in blocks)
                raise ConfigError(
                    f"purge={purge} + embargo={embargo} leaves no training anchors in fold {k} "
                    f"(eval anchors {spans} of {m} valid anchors {first}..{first + m - 1}); "
                    f"use fewer splits, a smaller embargo or more rows"
                )
            out.append(masks)
        return first, out

    def _too_many(self, m: int, n: int, need: int, detail: str = "") -> DataError:
        rows = need + self.sequence_length + self.horizon - 1
        return DataError(
            f"Too many splits: n_splits={self.n_splits} for {m} valid anchors{detail} "
            f"(n={n} rows, sequence_length={self.sequence_length}, horizon={self.horizon}); "
            f"need n >= {rows} rows or fewer splits"
        )

    def split(
        self, X: Sized, y: object = None, groups: object = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, eval_idx)`` int64 anchor rows per fold; y, groups are ignored."""
        first, folds = self._fold_masks(len(X))
        for train, ev, _, _ in folds:
            yield np.flatnonzero(train) + first, np.flatnonzero(ev) + first

    def audit(self, X: Sized, index: pd.DatetimeIndex | None = None) -> list[FoldAudit]:
        """One FoldAudit per fold; timestamps from ``index`` or from ``X.index`` if datetime."""
        n = len(X)
        index = _time_index(X, index, n)
        first, folds = self._fold_masks(n)
        out = []
        for k, (train, ev, n_purged, n_embargoed) in enumerate(folds):
            train, ev = np.flatnonzero(train) + first, np.flatnonzero(ev) + first
            out.append(_audit(k, train, ev, n_purged, n_embargoed, self.gaps, index))
        return out


class PurgedWalkForward(_PurgedSplitter):
    """Walk-forward: consecutive eval blocks, the last ending at the last valid anchor.

    Training is every valid anchor before the eval block minus the ``purge`` anchors just
    before it (expanding window), or the last ``max_train_size`` of those (rolling window).
    Nothing after the block trains, so the embargo never removes anything here.
    ``test_size`` (anchors per eval block) defaults to ``(m - purge) // (n_splits + 1)`` for
    ``m`` valid anchors, which leaves the first fold at least one block of training anchors.
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        sequence_length: int,
        horizon: int,
        purge: int | None = None,
        embargo: int | None = None,
        test_size: int | None = None,
        max_train_size: int | None = None,
    ) -> None:
        super().__init__(n_splits, sequence_length, horizon, purge, embargo)
        _check_int("test_size", test_size, 1, none_ok=True)
        _check_int("max_train_size", max_train_size, 1, none_ok=True)
        self.test_size, self.max_train_size = test_size, max_train_size

    def _folds(self, m: int, n: int) -> list[tuple[_Blocks, tuple[int, int]]]:
        purge = self.gaps[0]
        size = self.test_size or (m - purge) // (self.n_splits + 1)
        if size < 1 or self.n_splits * size >= m:
            need = self.n_splits * max(size, 1) + purge + 1
            raise self._too_many(m, n, need, f" with test_size={size}")
        if m - self.n_splits * size <= purge:
            raise ConfigError(
                f"purge={purge} leaves no training anchors in fold 0: only "
                f"{m - self.n_splits * size} valid anchors precede its evaluation block "
                f"(n_splits={self.n_splits}, test_size={size}); use a smaller test_size, "
                f"fewer splits or more rows"
            )
        out = []
        for k in range(self.n_splits):
            start = m - (self.n_splits - k) * size
            low = 0 if self.max_train_size is None else max(start - purge - self.max_train_size, 0)
            out.append(([(start, start + size)], (low, start)))
        return out


class PurgedKFold(_PurgedSplitter):
    """k contiguous folds over the valid anchors; each is evaluated once.

    Training is every other valid anchor minus ``purge`` anchors on both sides of the eval
    block and ``embargo`` more after it, so later data trains earlier folds (as in López de
    Prado's purged k-fold), but never data whose span touches the eval spans.
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        sequence_length: int,
        horizon: int,
        purge: int | None = None,
        embargo: int | None = None,
    ) -> None:
        super().__init__(n_splits, sequence_length, horizon, purge, embargo)

    def _folds(self, m: int, n: int) -> list[tuple[_Blocks, tuple[int, int]]]:
        if m < self.n_splits:
            raise self._too_many(m, n, self.n_splits)
        bounds = _group_bounds(m, self.n_splits)
        return [([(int(bounds[k]), int(bounds[k + 1]))], (0, m)) for k in range(self.n_splits)]


class CombinatorialPurgedCV(_PurgedSplitter):
    """Combinatorial purged CV (López de Prado, AFML ch. 12).

    The valid anchors form ``n_splits`` contiguous groups; each of the
    ``C(n_splits, n_test_groups)`` combinations of ``n_test_groups`` groups is one eval set,
    in ``itertools.combinations`` order. Adjacent eval groups form one block; purge and
    embargo apply around each block. Every group is evaluated in ``n_paths`` splits, which
    stitch into ``n_paths = C(n_splits - 1, n_test_groups - 1)`` full backtest paths.
    """

    def __init__(
        self,
        n_splits: int = 6,
        n_test_groups: int = 2,
        *,
        sequence_length: int,
        horizon: int,
        purge: int | None = None,
        embargo: int | None = None,
    ) -> None:
        super().__init__(n_splits, sequence_length, horizon, purge, embargo)
        _check_int("n_test_groups", n_test_groups, 1)
        if n_test_groups >= n_splits:
            raise ConfigError(
                f"n_test_groups must be < n_splits, but got n_test_groups={n_test_groups} "
                f"with n_splits={n_splits}"
            )
        self.n_test_groups = n_test_groups

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        return comb(self.n_splits, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        """Number of backtest paths: each group is tested in this many splits."""
        return comb(self.n_splits - 1, self.n_test_groups - 1)

    def _folds(self, m: int, n: int) -> list[tuple[_Blocks, tuple[int, int]]]:
        if m < self.n_splits:
            raise self._too_many(m, n, self.n_splits)
        b = _group_bounds(m, self.n_splits)
        return [
            ([(int(b[g]), int(b[g + 1])) for g in combo], (0, m))
            for combo in combinations(range(self.n_splits), self.n_test_groups)
        ]


@dataclass(frozen=True)
class FinalSplit:
    """Chronological train / val / test anchors, in that order, test last.

    Before val and before test lies a gap of ``purge + embargo`` valid anchors that belongs
    to no part: its ``purge`` anchors nearest the later part are the ones whose spans could
    touch it, the ``embargo`` before them guard against serial correlation. ``train_val``
    (for retraining once val is no longer evaluated) is every valid anchor before the test
    gap: train, the train/val gap, and val.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_val: np.ndarray
    n_rows: int
    purge: int
    purge_required: int
    embargo: int

    def audit(self, index: pd.DatetimeIndex | None = None) -> list[FoldAudit]:
        """fold 0: train against val; fold 1: train_val against test."""
        index = _time_index(None, index, self.n_rows)
        gaps = (self.purge, self.purge_required, self.embargo)
        return [
            _audit(k, tr, ev, self.purge, self.embargo, gaps, index)
            for k, (tr, ev) in enumerate([(self.train, self.val), (self.train_val, self.test)])
        ]


def _part_sizes(usable: int, train: float, val: float) -> tuple[int, int, int]:
    # The epsilon keeps 0.7 * 100 = 69.99999... from losing an anchor to float rounding.
    n_train, n_val = (int(np.floor(usable * f + 1e-9)) for f in (train, val))
    return n_train, n_val, usable - n_train - n_val


def final_split(
    n_rows: int,
    *,
    sequence_length: int,
    horizon: int,
    train: float = 0.70,
    val: float = 0.15,
    test: float = 0.15,
    purge: int | None = None,
    embargo: int | None = None,
) -> FinalSplit:
    """Split the valid anchors of ``n_rows`` bars into train / val / test (fractions of the
    anchors left after the two gaps of ``purge + embargo``; test takes the rounding rest)."""
    _check_int("n_rows", n_rows, 0)
    _check_window(sequence_length, horizon, purge, embargo)
    fractions = {"train": train, "val": val, "test": test}
    for name, value in fractions.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"{name} must be a fraction in (0, 1), but got {name}={shown(value)}")
    total = train + val + test
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(
            f"train + val + test must sum to 1, but got "
            f"train={train} + val={val} + test={test} = {total:g}"
        )
    used, required, emb = _gaps(sequence_length, horizon, purge, embargo)
    gap = used + emb
    first, m = sequence_length - 1, n_rows - sequence_length - horizon + 1
    usable = m - 2 * gap
    n_train, n_val, n_test = _part_sizes(usable, train, val)
    if min(n_train, n_val, n_test) < 1:
        least = 3  # fewest anchors after the gaps that give each part at least one
        while min(_part_sizes(least, train, val)) < 1:
            least += 1
        raise DataError(
            f"n_rows={n_rows} give {max(m, 0)} valid anchors, {max(usable, 0)} after two gaps of "
            f"purge={used} + embargo={emb}: too few for train={train}, val={val}, test={test}; "
            f"need n_rows >= {2 * gap + least + sequence_length + horizon - 1}"
        )
    val_start = first + n_train + gap
    test_start = val_start + n_val + gap
    return FinalSplit(
        train=np.arange(first, first + n_train, dtype=np.int64),
        val=np.arange(val_start, val_start + n_val, dtype=np.int64),
        test=np.arange(test_start, first + m, dtype=np.int64),
        train_val=np.arange(first, val_start + n_val, dtype=np.int64),
        n_rows=n_rows,
        purge=used,
        purge_required=required,
        embargo=emb,
    )


# ---------------------------------------------------------------------- inner early-stopping block


@dataclass(frozen=True)
class InnerSplit:
    """A fold's training anchors cut into the part the model trains on and the contiguous
    block it early-stops on (and is pruned on mid-fold), purged and embargoed like any other
    boundary. ``stop`` never touches the fold's evaluation anchors: they stay unseen until
    the restored best epoch predicts them once."""

    fit: np.ndarray
    stop: np.ndarray
    purged: int  # training anchors dropped because their span touches the stop block's
    embargoed: int  # further anchors dropped right after the stop block


def _runs(anchors: np.ndarray) -> list[np.ndarray]:
    """Maximal runs of consecutive anchors."""
    if len(anchors) == 0:
        return []
    cuts = np.flatnonzero(np.diff(anchors) != 1) + 1
    return np.split(anchors, cuts)


def inner_split(
    train_idx: np.ndarray,
    eval_idx: np.ndarray,
    *,
    sequence_length: int,
    horizon: int,
    fraction: float = 0.15,
    purge: int | None = None,
    embargo: int | None = None,
) -> InnerSplit:
    """Hold out ``fraction`` of a fold's training anchors as its early-stopping block.

    Where the block goes (docs/sweeps.md): the tail of the training stretch right before the
    fold's first evaluation anchor (for walk-forward: the tail of the training part); when
    that stretch is too short (the first fold of k-fold or CPCV has none), the head of the
    stretch right after its last evaluation anchor; else the tail of the longest stretch.
    Training anchors within ``purge`` of the block on either side, or within ``purge +
    embargo`` after it, are dropped, exactly as around an evaluation block.
    """
    _check_window(sequence_length, horizon, purge, embargo)
    if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not 0 < fraction < 1:
        raise ConfigError(f"fraction must be in (0, 1), but got fraction={fraction!r}")
    train = np.asarray(train_idx, dtype=np.int64)
    ev = np.asarray(eval_idx, dtype=np.int64)
    if len(train) < 2:
        raise DataError(f"{len(train)} training anchors cannot be split for early stopping")
    n_stop = max(1, int(round(fraction * len(train))))
    runs = _runs(train)
    first_eval = int(ev.min()) if len(ev) else int(train.max()) + 1
    last_eval = int(ev.max()) if len(ev) else int(train.max()) + 1
    before = [r for r in runs if r[-1] < first_eval]
    after = [r for r in runs if r[0] > last_eval]
    if before and len(before[-1]) >= n_stop:
        stop = before[-1][-n_stop:]
    elif after and len(after[0]) >= n_stop:
        stop = after[0][:n_stop]
    else:
        longest = max(runs, key=len)
        stop = longest[-min(n_stop, len(longest)) :]
    used, _, emb = _gaps(sequence_length, horizon, purge, embargo)
    lo, hi = int(stop[0]), int(stop[-1])
    rest = train[(train < lo) | (train > hi)]
    near = (rest >= lo - used) & (rest <= hi + used)
    after_block = (rest > hi + used) & (rest <= hi + used + emb)
    fit = rest[~near & ~after_block]
    if len(fit) == 0:
        raise ConfigError(
            f"purge={used} + embargo={emb} around an early-stopping block of {len(stop)} "
            f"anchors ({lo}..{hi}) leave no training anchors of {len(train)}; use fewer "
            f"splits, a smaller embargo or more rows"
        )
    return InnerSplit(
        fit=fit, stop=stop.copy(), purged=int(near.sum()), embargoed=int(after_block.sum())
    )
