"""Purged splitters: exact folds on tiny series, leakage-rule properties, audits, errors."""

from __future__ import annotations

import json
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from trainables.errors import ConfigError, DataError
from trainables.prep.scaling import rows_covered
from trainables.prep.splits import (
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
    audit_frame,
    final_split,
)


def _folds(splitter, n):
    return [(tr.tolist(), ev.tolist()) for tr, ev in splitter.split(np.zeros(n))]


def _r(a, b):
    return list(range(a, b + 1))


# ----------------------------------------------------------------------------- golden folds
# n=20, sequence_length=2, horizon=1: valid anchors 1..18, required purge 2, default embargo 3.


def test_walk_forward_expanding_golden():
    # test_size = (18 - 2) // 4 = 4; training ends purge=2 anchors before each eval block
    got = _folds(PurgedWalkForward(3, sequence_length=2, horizon=1), 20)
    assert got == [(_r(1, 4), _r(7, 10)), (_r(1, 8), _r(11, 14)), (_r(1, 12), _r(15, 18))]


def test_walk_forward_rolling_golden():
    # max_train_size keeps only the last anchors before the purge
    splitter = PurgedWalkForward(3, sequence_length=2, horizon=1, test_size=2, max_train_size=2)
    got = _folds(splitter, 20)
    assert got == [([9, 10], [13, 14]), ([11, 12], [15, 16]), ([13, 14], [17, 18])]


def test_kfold_golden():
    # groups 1-6, 7-12, 13-18; purge 2 both sides, embargo 1 more after each block
    got = _folds(PurgedKFold(3, sequence_length=2, horizon=1, embargo=1), 20)
    assert got == [
        (_r(10, 18), _r(1, 6)),
        (_r(1, 4) + _r(16, 18), _r(7, 12)),
        (_r(1, 10), _r(13, 18)),
    ]


def test_kfold_golden_seq_len_3():
    # n=16, sequence_length=3: valid 2..14, purge 3, groups 2-8 and 9-14; embargo=2 leaves anchor 14
    got = _folds(PurgedKFold(2, sequence_length=3, horizon=1, embargo=2), 16)
    assert got == [([14], _r(2, 8)), (_r(2, 5), _r(9, 14))]


def test_cpcv_golden():
    # groups 1-5, 6-10, 11-14, 15-18; adjacent eval groups purge as one block
    got = _folds(CombinatorialPurgedCV(4, 2, sequence_length=2, horizon=1, embargo=0), 20)
    assert got == [
        (_r(13, 18), _r(1, 10)),
        ([8, 17, 18], _r(1, 5) + _r(11, 14)),
        (_r(8, 12), _r(1, 5) + _r(15, 18)),
        (_r(1, 3) + [17, 18], _r(6, 14)),
        (_r(1, 3), _r(6, 10) + _r(15, 18)),
        (_r(1, 8), _r(11, 18)),
    ]


def test_final_split_golden():
    # n=60, sequence_length=3, horizon=2: valid 2..57, gap = purge 4 + embargo 5; 38 anchors -> 26/5/7
    fs = final_split(60, sequence_length=3, horizon=2)
    assert fs.train.tolist() == _r(2, 27)
    assert fs.val.tolist() == _r(37, 41)
    assert fs.test.tolist() == _r(51, 57)
    assert fs.train_val.tolist() == _r(2, 41)
    # audit: each gap counts purge=4 purged and embargo=5 embargoed anchors
    assert [(a.n_train, a.n_eval, a.purged, a.embargoed) for a in fs.audit()] == [
        (26, 5, 4, 5),
        (40, 7, 4, 5),
    ]


# ----------------------------------------------------------------------------- properties


def _purge_used(sequence_length, horizon, purge):
    required = sequence_length + horizon - 1
    return required if purge is None else max(purge, required)


def _embargo_used(sequence_length, horizon, embargo):
    return sequence_length + horizon if embargo is None else embargo


def _blocks(ev):
    """(first, last) of each run of consecutive eval anchors."""
    cuts = np.flatnonzero(np.diff(ev) > 1)
    return list(zip(ev[np.r_[0, cuts + 1]], ev[np.r_[cuts, len(ev) - 1]], strict=True))


def _allowed(valid, ev, purge, embargo):
    """The leakage rule written naively: valid anchors a fold may train on."""
    keep = ~np.isin(valid, ev) & (np.abs(valid[:, None] - ev[None, :]) > purge).all(axis=1)
    for _, last in _blocks(ev):
        keep &= ~((valid > last) & (valid <= last + purge + embargo))
    return valid[keep]


params = st.fixed_dictionaries(
    {
        "n": st.integers(1, 260),
        "sequence_length": st.integers(1, 6),
        "horizon": st.integers(1, 4),
        "purge": st.none() | st.integers(0, 12),
        "embargo": st.none() | st.integers(0, 12),
    }
)


def p_without_n(p):
    return {x: p[x] for x in ("sequence_length", "horizon", "purge", "embargo")}


def _check_fold(tr, ev, p, n, audit, splitter_purge):
    """Properties (a), (b), (c), (e) shared by every splitter."""
    s, h = p["sequence_length"], p["horizon"]
    purge, embargo = _purge_used(s, h, p["purge"]), _embargo_used(s, h, p["embargo"])
    # (c) int64 valid anchors, sorted, train and eval disjoint, neither empty
    for a in (tr, ev):
        assert a.dtype == np.int64 and len(a) > 0
        assert (np.diff(a) > 0).all() and a[0] >= s - 1 and a[-1] <= n - 1 - h
    assert not np.isin(tr, ev).any()
    # (a) no training span shares a row with any evaluation span
    assert not (rows_covered(tr, s, h, n) & rows_covered(ev, s, h, n)).any()
    # (b) no training anchor within purge + embargo anchors after an eval block
    for _, last in _blocks(ev):
        assert not ((tr > last) & (tr <= last + purge + embargo)).any()
    # (e) the audit matches the arrays and records the purge actually used
    assert (audit.n_train, audit.n_eval) == (len(tr), len(ev))
    assert (audit.train_first, audit.train_last) == (tr[0], tr[-1])
    assert (audit.eval_first, audit.eval_last) == (ev[0], ev[-1])
    assert (audit.purge, audit.purge_required, audit.embargo) == (purge, s + h - 1, embargo)
    assert splitter_purge == p["purge"]  # the user's value stays visible on the splitter
    return purge, embargo


def _run(splitter, n):
    """Folds and audits, or None when the splitter refuses with a typed error."""
    try:
        return list(splitter.split(np.zeros(n))), splitter.audit(np.zeros(n))
    except (ConfigError, DataError):
        event("refused")
        return None


@settings(max_examples=150, deadline=None)
@given(p=params, k=st.integers(2, 5), data=st.data())
def test_walk_forward_properties(p, k, data):
    test_size = data.draw(st.none() | st.integers(1, 40))
    max_train = data.draw(st.none() | st.integers(1, 60))
    wf = PurgedWalkForward(k, **p_without_n(p), test_size=test_size, max_train_size=max_train)
    n, s, h = p["n"], p["sequence_length"], p["horizon"]
    m, purge = n - s - h + 1, _purge_used(s, h, p["purge"])
    size = test_size or (m - purge) // (k + 1)
    out = _run(wf, n)
    # it refuses exactly when the first fold would have no training anchor
    assert (out is None) == (m < 1 or size < 1 or m - k * size <= purge)
    if out is None:
        return
    folds, audits = out
    assert len(folds) == wf.get_n_splits() == k
    assert folds[-1][1][-1] == n - 1 - h  # the last block ends at the last valid anchor
    for (tr, ev), audit in zip(folds, audits, strict=True):
        _check_fold(tr, ev, p, n, audit, wf.purge)
        # (d) every training anchor precedes every eval anchor; blocks have test_size anchors
        assert tr[-1] < ev[0] and len(ev) == size
        assert tr[-1] == ev[0] - purge - 1
        assert max_train is None or len(tr) <= max_train
        # (e) candidates: the anchors from the window start up to the eval block
        assert audit.purged + audit.embargoed + audit.n_train == ev[0] - tr[0]
    evals = np.concatenate([ev for _, ev in folds])
    assert (np.diff(evals) == 1).all()  # eval blocks are consecutive


@settings(max_examples=150, deadline=None)
@given(p=params, k=st.integers(2, 5))
def test_kfold_properties(p, k):
    kf = PurgedKFold(k, **p_without_n(p))
    n, s, h = p["n"], p["sequence_length"], p["horizon"]
    valid = np.arange(s - 1, n - h, dtype=np.int64)
    purge, embargo = _purge_used(s, h, p["purge"]), _embargo_used(s, h, p["embargo"])
    groups = np.array_split(valid, k) if len(valid) >= k else None
    expect_ok = groups is not None and all(
        len(_allowed(valid, g, purge, embargo)) > 0 for g in groups
    )
    out = _run(kf, n)
    # it refuses exactly when a fold would have no group or no training anchor
    assert (out is None) == (not expect_ok)
    if out is None:
        return
    folds, audits = out
    assert len(folds) == kf.get_n_splits() == k
    for (tr, ev), audit, group in zip(folds, audits, groups, strict=True):
        _check_fold(tr, ev, p, n, audit, kf.purge)
        assert ev.tolist() == group.tolist()
        # nothing allowed by the rule is dropped
        assert tr.tolist() == _allowed(valid, ev, purge, embargo).tolist()
        assert audit.purged + audit.embargoed + audit.n_train == len(valid) - len(ev)
    # (d) every valid anchor is evaluated exactly once
    assert sorted(np.concatenate([ev for _, ev in folds]).tolist()) == valid.tolist()


@settings(max_examples=150, deadline=None)
@given(p=params, k=st.integers(2, 6), data=st.data())
def test_cpcv_properties(p, k, data):
    n_test = data.draw(st.integers(1, k - 1))
    cv = CombinatorialPurgedCV(k, n_test, **p_without_n(p))
    n, s, h = p["n"], p["sequence_length"], p["horizon"]
    valid = np.arange(s - 1, n - h, dtype=np.int64)
    purge, embargo = _purge_used(s, h, p["purge"]), _embargo_used(s, h, p["embargo"])
    out = _run(cv, n)
    if len(valid) < k:
        assert out is None  # too few anchors for the groups
        return
    groups = np.array_split(valid, k)
    evals = [np.concatenate([groups[g] for g in c]) for c in combinations(range(k), n_test)]
    # it refuses exactly when some combination leaves no training anchor
    assert (out is None) == any(len(_allowed(valid, ev, purge, embargo)) == 0 for ev in evals)
    if out is None:
        return
    folds, audits = out
    assert len(folds) == cv.get_n_splits() == comb(k, n_test)
    for (tr, ev), audit, expected in zip(folds, audits, evals, strict=True):
        _check_fold(tr, ev, p, n, audit, cv.purge)
        assert ev.tolist() == expected.tolist()
        assert tr.tolist() == _allowed(valid, ev, purge, embargo).tolist()
        assert audit.purged + audit.embargoed + audit.n_train == len(valid) - len(ev)
    # (d) every valid anchor is evaluated in exactly C(k - 1, n_test - 1) = n_paths splits
    counts = np.bincount(np.concatenate([ev for _, ev in folds]), minlength=n)[valid]
    assert (counts == comb(k - 1, n_test - 1)).all() and cv.n_paths == comb(k - 1, n_test - 1)


@settings(max_examples=150, deadline=None)
@given(
    p=params,
    n_big=st.integers(0, 400),
    fractions=st.sampled_from(
        [(0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.5, 0.3, 0.2), (0.8, 0.1, 0.1)]
    ),
)
def test_final_split_properties(p, n_big, fractions):
    n = p["n"] + n_big
    s, h = p["sequence_length"], p["horizon"]
    train, val, test = fractions
    gap = _purge_used(s, h, p["purge"]) + _embargo_used(s, h, p["embargo"])
    usable = n - s - h + 1 - 2 * gap
    n_train, n_val = int(usable * train + 1e-9), int(usable * val + 1e-9)
    try:
        fs = final_split(n, **p_without_n(p), train=train, val=val, test=test)
    except DataError:
        # refused only when some part would be empty
        assert min(n_train, n_val, usable - n_train - n_val) < 1
        return
    purge, embargo = fs.purge, fs.embargo
    assert purge == _purge_used(s, h, p["purge"]) and embargo == _embargo_used(s, h, p["embargo"])
    # (f) parts in order, test last at the last valid anchor, gaps of purge + embargo between
    assert fs.train[0] == s - 1 and fs.test[-1] == n - 1 - h
    assert fs.val[0] - fs.train[-1] - 1 == purge + embargo
    assert fs.test[0] - fs.val[-1] - 1 == purge + embargo
    parts = [fs.train, fs.val, fs.test]
    for i, a in enumerate(parts):
        assert len(a) > 0 and a.dtype == np.int64 and (np.diff(a) == 1).all()
        for b in parts[i + 1 :]:
            # spans of different parts never share a row
            assert not (rows_covered(a, s, h, n) & rows_covered(b, s, h, n)).any()
    assert not (rows_covered(fs.train_val, s, h, n) & rows_covered(fs.test, s, h, n)).any()
    # the fractions hold up to rounding, test taking the rest
    total = len(fs.train) + len(fs.val) + len(fs.test)
    assert abs(len(fs.train) - train * total) < 1 and abs(len(fs.val) - val * total) < 1
    # audit: fold 0 train vs val, fold 1 train_val vs test; candidates = anchors before eval
    pairs = [(fs.train, fs.val), (fs.train_val, fs.test)]
    for audit, (tr, ev) in zip(fs.audit(), pairs, strict=True):
        assert (audit.n_train, audit.n_eval) == (len(tr), len(ev))
        assert audit.purged + audit.embargoed + audit.n_train == ev[0] - tr[0]


# ----------------------------------------------------------------------------- audit


def test_small_purge_is_raised_to_required_and_audited():
    # purge=0 would leak; the folds use sequence_length + horizon - 1 and the audit says so
    kf = PurgedKFold(3, sequence_length=3, horizon=2, purge=0)
    audits = kf.audit(np.zeros(40))
    assert {(a.purge, a.purge_required) for a in audits} == {(4, 4)}
    assert _folds(kf, 40) == _folds(PurgedKFold(3, sequence_length=3, horizon=2), 40)


def test_larger_purge_is_kept():
    # a purge above the requirement is used as given
    audits = PurgedKFold(3, sequence_length=2, horizon=1, purge=5, embargo=0).audit(np.zeros(60))
    assert audits[1].purge == 5 and audits[1].purged == 10


def test_audit_timestamps_from_datetime_index():
    # with a DatetimeIndex the audit names the first/last timestamps of each part
    index = pd.date_range("2024-01-01", periods=20, freq="1h", name="timestamp")
    bars = pd.DataFrame({"close": np.arange(20.0)}, index=index)
    audit = PurgedKFold(3, sequence_length=2, horizon=1, embargo=1).audit(bars)[1]
    assert audit.eval_first_time == index[7] and audit.eval_last_time == index[12]
    assert audit.train_first_time == index[1] and audit.train_last_time == index[18]
    assert json.loads(json.dumps(audit.to_dict()))["eval_first_time"] == "2024-01-01T07:00:00"


def test_audit_frame_one_row_per_fold():
    # audit_frame lists every fold; time columns appear only with timestamps
    kf = PurgedKFold(3, sequence_length=2, horizon=1)
    frame = audit_frame(kf.audit(np.zeros(30)))
    assert frame["fold"].tolist() == [0, 1, 2] and "eval_first_time" not in frame
    index = pd.date_range("2024-01-01", periods=30, freq="5min")
    assert "eval_first_time" in audit_frame(kf.audit(np.zeros(30), index=index))


def test_audit_index_length_must_match():
    # an index of the wrong length is a DataError naming both counts
    index = pd.date_range("2024-01-01", periods=10, freq="1h")
    with pytest.raises(DataError, match="10 timestamps for 20 rows"):
        PurgedKFold(3, sequence_length=2, horizon=1).audit(np.zeros(20), index=index)


def test_split_on_a_million_rows():
    # vectorised: 1M rows split into CPCV folds whose eval sets cover each anchor n_paths times
    cv = CombinatorialPurgedCV(6, 2, sequence_length=60, horizon=12, embargo=1440)
    n_eval = sum(len(ev) for _, ev in cv.split(np.empty(1_000_000)))
    assert n_eval == cv.n_paths * (1_000_000 - 60 - 12 + 1)


# ----------------------------------------------------------------------------- errors

KW = {"sequence_length": 2, "horizon": 1}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PurgedKFold(1, **KW), r"n_splits must be an integer >= 2, but got n_splits=1"),
        (lambda: PurgedKFold(2.5, **KW), r"n_splits=2.5"),
        (lambda: PurgedKFold(3, sequence_length=0, horizon=1), r"sequence_length=0"),
        (lambda: PurgedKFold(3, sequence_length=2, horizon=0), r"horizon=0"),
        (
            lambda: PurgedKFold(3, **KW, purge=-1),
            r"purge must be an integer >= 0, but got purge=-1",
        ),
        (lambda: PurgedWalkForward(3, **KW, embargo=-5), r"embargo=-5"),
        (lambda: PurgedWalkForward(3, **KW, test_size=0), r"test_size=0"),
        (lambda: PurgedWalkForward(3, **KW, max_train_size=0), r"max_train_size=0"),
        (lambda: CombinatorialPurgedCV(6, 6, **KW), r"n_test_groups=6 with n_splits=6"),
        (lambda: final_split(100, **KW, train=0.7, val=0.2, test=0.15), r"= 1.05"),
        (lambda: final_split(100, **KW, train=1.2, val=0.1, test=0.1), r"train=1.2"),
        (lambda: final_split(100, **KW, train=0.7, val=0.3, test=0), r"test=0"),
    ],
)
def test_bad_parameters_raise_config_error(make, message):
    # a bad setting fails at construction with its name and value
    with pytest.raises(ConfigError, match=message):
        make()


def test_too_many_walk_forward_splits():
    # 5 blocks of 10 do not fit in 40 anchors
    wf = PurgedWalkForward(5, sequence_length=1, horizon=1, test_size=10)
    with pytest.raises(
        DataError, match=r"n_splits=5 for 40 valid anchors with test_size=10.*n >= 53"
    ):
        list(wf.split(np.zeros(41)))
    assert len(list(wf.split(np.zeros(53)))) == 5  # the row count the message names is enough


@pytest.mark.parametrize("splitter", [PurgedKFold(5, **KW), CombinatorialPurgedCV(5, 2, **KW)])
def test_too_many_splits_names_the_rows_needed(splitter):
    # fewer valid anchors than groups is a DataError naming the rows that give one per group
    with pytest.raises(DataError, match=r"n_splits=5 for 3 valid anchors .* need n >= 7 rows"):
        list(splitter.split(np.zeros(5)))
    # with 7 rows every group exists; the purge is what then leaves a fold without training
    with pytest.raises(ConfigError, match="leaves no training anchors"):
        list(splitter.split(np.zeros(7)))


def test_too_few_rows_for_window():
    # fewer rows than sequence_length + horizon give no sample at all
    with pytest.raises(
        DataError, match="3 rows give no valid anchor for sequence_length=3 and horizon=1"
    ):
        list(PurgedKFold(2, sequence_length=3, horizon=1).split(np.zeros(3)))


def test_purge_plus_embargo_larger_than_fold():
    # 200 anchors in two folds cannot afford 120 + 61 anchors after the first block
    kf = PurgedKFold(2, sequence_length=60, horizon=1, purge=120, embargo=61)
    with pytest.raises(
        ConfigError, match="purge=120 \\+ embargo=61 leaves no training anchors in fold 0"
    ):
        list(kf.split(np.zeros(260)))


def test_walk_forward_purge_larger_than_history():
    # the first block starts 4 anchors in; purge 10 leaves it nothing to train on
    wf = PurgedWalkForward(2, sequence_length=1, horizon=1, test_size=8, purge=10)
    with pytest.raises(ConfigError, match="purge=10 leaves no training anchors in fold 0: only 4"):
        list(wf.split(np.zeros(21)))


def test_final_split_too_few_rows_names_the_minimum():
    # 18 rows cannot hold two gaps of 5 and three parts; the 19 rows it asks for can
    with pytest.raises(DataError, match="need n_rows >= 19"):
        final_split(18, **KW)
    assert len(final_split(19, **KW).val) == 1


def test_usable_as_sklearn_cv():
    # any splitter plugs into scikit-learn's cv= (split(X, y, groups) and get_n_splits)
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score

    x = np.random.default_rng(0).random((120, 3))
    scores = cross_val_score(
        Ridge(), x, x.sum(axis=1), cv=PurgedKFold(4, sequence_length=3, horizon=2)
    )
    assert len(scores) == 4


# ----------------------------------------------------------------------------- inner block


def test_inner_split_walk_forward_golden():
    # training anchors 1..40, sequence_length=2, horizon=1 (purge 2, embargo 3): the last 6 anchors
    # (15% of 40) are the stop block; the 2 before them are purged, nothing trains after it
    from trainables.prep.splits import inner_split

    out = inner_split(
        np.arange(1, 41), np.arange(43, 60), sequence_length=2, horizon=1, fraction=0.15
    )
    assert out.stop.tolist() == _r(35, 40)
    assert out.fit.tolist() == _r(1, 32)
    assert (out.purged, out.embargoed) == (2, 0)


def test_inner_split_first_kfold_fold_uses_the_stretch_after_the_eval_block():
    # eval block first: no training precedes it, so the block is the head of what follows
    from trainables.prep.splits import inner_split

    out = inner_split(
        np.arange(10, 50), np.arange(1, 7), sequence_length=2, horizon=1, fraction=0.1
    )
    assert out.stop.tolist() == _r(10, 13)
    # purge 2 after the block, then embargo 3
    assert out.fit.tolist() == _r(19, 49) and (out.purged, out.embargoed) == (2, 3)


def _check_inner(tr, ev, out, p, n):
    s, h = p["sequence_length"], p["horizon"]
    purge, embargo = _purge_used(s, h, p["purge"]), _embargo_used(s, h, p["embargo"])
    fit, stop = out.fit, out.stop
    # the stop block is a contiguous run of training anchors; fit is the rest of training
    assert len(stop) > 0 and (np.diff(stop) == 1).all() and np.isin(stop, tr).all()
    assert len(fit) > 0 and np.isin(fit, tr).all() and not np.isin(fit, stop).any()
    # no span of what trains shares a row with a stop span or an evaluation span
    fit_rows = rows_covered(fit, s, h, n)
    assert not (fit_rows & rows_covered(stop, s, h, n)).any()
    assert not (fit_rows & rows_covered(ev, s, h, n)).any()
    assert not (rows_covered(stop, s, h, n) & rows_covered(ev, s, h, n)).any()
    # no fit anchor within purge + embargo after the stop block
    assert not ((fit > stop[-1]) & (fit <= stop[-1] + purge + embargo)).any()
    # nothing allowed by the rule is dropped: fit = training anchors far enough from the block
    allowed = tr[(tr < stop[0] - purge) | (tr > stop[-1] + purge + embargo)]
    assert fit.tolist() == allowed.tolist()
    assert out.purged + out.embargoed + len(fit) + len(stop) == len(tr)


@settings(max_examples=150, deadline=None)
@given(
    p=params, k=st.integers(2, 5), scheme=st.sampled_from(["wf", "kfold", "cpcv"]), data=st.data()
)
def test_inner_split_properties(p, k, scheme, data):
    # (g) the early-stopping block obeys the leakage rule against fit and eval, in every scheme
    from trainables.prep.splits import inner_split

    fraction = data.draw(st.floats(0.05, 0.5))
    common = p_without_n(p)
    if scheme == "wf":
        splitter = PurgedWalkForward(k, **common)
    elif scheme == "kfold":
        splitter = PurgedKFold(k, **common)
    else:
        splitter = CombinatorialPurgedCV(k + 1, 2, **common)
    out = _run(splitter, p["n"])
    if out is None:
        return
    for tr, ev in out[0]:
        try:
            inner = inner_split(
                tr,
                ev,
                sequence_length=p["sequence_length"],
                horizon=p["horizon"],
                fraction=fraction,
                purge=p["purge"],
                embargo=p["embargo"],
            )
        except (ConfigError, DataError):
            event("inner refused")
            continue
        _check_inner(tr, ev, inner, p, p["n"])
        if scheme == "wf":
            # walk-forward: the block is the tail of the training part
            assert inner.stop[-1] == tr[-1]
