"""The universe's verdict across tickers (#22 §2): Benjamini-Yekutieli on the tickers'
intersection-union p-values, read from each promotion as it records them."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.stats.fdr import adjust, iu_p_of


def test_adjusted_p_values_are_benjamini_yekutieli():
    # BY = BH times sum(1/i), step-up, capped at 1: checked against the formula on a
    # universe where BH would name 3 winners and BY names 1.
    p = {"A": 0.001, "B": 0.02, "C": 0.03, "D": 0.2, "E": 0.5, "F": 0.9}
    got = adjust(p, level=0.10)
    m = len(p)
    order = sorted(p, key=p.get)
    bh = np.minimum.accumulate([p[t] * m / (k + 1) for k, t in enumerate(order)][::-1])[::-1]
    by = np.minimum(bh * sum(1 / i for i in range(1, m + 1)), 1.0)
    for t, want in zip(order, by, strict=True):
        assert got[t]["adjusted_p"] == pytest.approx(want)
    assert [t for t in order if got[t]["winner"]] == ["A"]
    assert sum(v < 0.10 for v in bh) == 3  # what Benjamini-Hochberg would have named


def test_a_ticker_without_a_p_value_counts_as_tested_and_never_wins():
    got = adjust({"A": 1e-6, "B": None, "C": float("nan")})
    assert got["A"]["winner"] and not got["B"]["winner"] and not got["C"]["winner"]
    assert got["B"]["adjusted_p"] == 1.0


def test_the_intersection_union_p_is_read_from_the_promotion():
    assert iu_p_of({"chosen": {"iu_p": 0.03, "comparisons": []}}) == 0.03
    # A promotion written before #20: two-sided deciding p-values made one-sided in the
    # model's favour, the largest taken; secondary comparisons do not count.
    older = {
        "chosen": {
            "comparisons": [
                {"decides": True, "p_value": 0.02, "estimate": 0.1},
                {"decides": True, "p_value": 0.04, "estimate": 0.05},
                {"decides": False, "p_value": 0.9, "estimate": -1.0},
            ]
        }
    }
    assert iu_p_of(older) == pytest.approx(0.02)
    worse = {"chosen": {"comparisons": [{"decides": True, "p_value": 0.02, "estimate": -0.1}]}}
    assert iu_p_of(worse) == pytest.approx(0.99)
