"""The probability of backtest overfitting (CSCV) from out-of-fold predictions, and CV vs test.

The oof.parquet frames here are built in the sweep's format (one row per trial, fold and
anchor: pred_/true_/naive_<target>, or p_down/p_flat/p_up and true).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from scipy.stats import rankdata

from orchestrator.stats.overfitting import (
    MIN_TRIALS,
    block_statistics,
    cscv,
    cv_vs_test,
    fold_set,
    pbo,
    pbo_of_sweep,
)


def _regression_oof(preds: dict[str, np.ndarray], true: np.ndarray, naive: np.ndarray):
    n = len(true)
    folds = np.repeat(np.arange(4), int(np.ceil(n / 4)))[:n]
    rows = [
        pd.DataFrame(
            {
                "trial_id": tid,
                "fold": folds,
                "anchor": np.arange(100, 100 + n),
                "timestamp": pd.date_range("2024-01-01", periods=n, freq="h"),
                "pred_close": pred,
                "true_close": true,
                "naive_close": naive,
            }
        )
        for tid, pred in preds.items()
    ]
    return pd.concat(rows, ignore_index=True)


def _stats(sse_rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """[S, N, 1] sums of squared errors (trials given as rows) and a naive sum of 4 each."""
    sse = np.array(sse_rows, dtype=float).T[:, :, None]
    return sse, np.full_like(sse, 4.0)


def test_cscv_on_a_hand_made_case_where_the_in_sample_winner_always_loses():
    # 4 blocks, 6 splits. Squared errors per block (lower is better):
    #   A 1 1 3 3 | B 3 3 1 1 | C 1.5 2.6 2.4 1.5
    # Worked by hand: {0,1} picks A, worst on {2,3}; {2,3} picks B, worst on {0,1};
    # {0,2} picks C, worst on {1,3}; {0,3} picks C, worst on {1,2}; {1,3} and {1,2} pick A
    # (tied with B), which ties B for last out of sample (rank 1.5 of 3). PBO = 6/6.
    stats = _stats([[1, 1, 3, 3], [3, 3, 1, 1], [1.5, 2.6, 2.4, 1.5]])
    logits = cscv(stats, "regression")
    assert len(logits) == 6
    assert np.all(logits < 0)
    # Add D, best in every block: it wins every half and is best out of sample (rank 4 of 4).
    stats = _stats([[1, 1, 3, 3], [3, 3, 1, 1], [1.5, 2.6, 2.4, 1.5], [0.5, 0.5, 0.5, 0.5]])
    logits = cscv(stats, "regression")
    assert logits == pytest.approx(np.full(6, logit(4 / 5)))


def _cscv_by_loop(perf_blocks: np.ndarray) -> np.ndarray:
    """Independent CSCV: per split, concatenate blocks, score each trial, rank (as pypbo)."""
    s, n = perf_blocks.shape[:2]
    out = []
    for half in combinations(range(s), s // 2):
        rest = [b for b in range(s) if b not in half]
        sse_in = perf_blocks[list(half), :, 0].sum(axis=0)
        nse_in = perf_blocks[list(half), :, 1].sum(axis=0)
        sse_out = perf_blocks[rest, :, 0].sum(axis=0)
        nse_out = perf_blocks[rest, :, 1].sum(axis=0)
        best = int(np.argmax(1 - sse_in / nse_in))
        rank = rankdata(1 - sse_out / nse_out)[best]
        out.append(logit(rank / (n + 1)))
    return np.array(out)


def test_cscv_matches_a_plain_loop_over_splits():
    rng = np.random.default_rng(0)
    sse = rng.gamma(2.0, size=(8, 12, 1))
    nse = rng.gamma(2.5, size=(8, 12, 1))
    fast = cscv((sse, nse), "regression")
    slow = _cscv_by_loop(np.concatenate([sse, nse], axis=2))
    assert fast == pytest.approx(slow)


def test_block_statistics_sum_each_blocks_squared_errors():
    true = np.arange(8, dtype=float)
    oof = _regression_oof({"a": true + 1, "b": true - 2}, true, true + 0.5)
    ids, (sse, nse) = block_statistics(oof, "regression", 2)
    assert ids == ["a", "b"]
    assert sse[:, :, 0].tolist() == [[4.0, 16.0], [4.0, 16.0]]  # 4 samples per block
    assert nse[:, :, 0].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_pbo_is_about_one_half_when_no_config_is_better_than_another():
    # 20 configs, each the truth plus its own noise of the same size: picking the best in
    # one half says nothing about the other half.
    rng = np.random.default_rng(1)
    true = rng.normal(size=1600)
    preds = {f"t{k:02d}": true + rng.normal(size=1600) for k in range(20)}
    result = pbo(_regression_oof(preds, true, np.zeros(1600)), "regression")
    assert result["computed"] and result["n_trials"] == 20 and result["n_blocks"] == 16
    assert result["n_splits"] == 12870
    assert 0.3 <= result["pbo"] <= 0.7
    assert "not a bound" in result["note"] and "lower bound" not in result["note"]
    assert result["folds"] == [0, 1, 2, 3] and result["n_pruned"] == 0


def test_pbo_is_near_zero_when_one_config_is_truly_better():
    rng = np.random.default_rng(2)
    true = rng.normal(size=1600)
    preds = {f"t{k:02d}": true + rng.normal(size=1600) for k in range(9)}
    preds["best"] = true + 0.5 * rng.normal(size=1600)
    result = pbo(_regression_oof(preds, true, np.zeros(1600)), "regression")
    assert result["pbo"] < 0.05


def test_pbo_of_classification_trials_uses_macro_f1():
    rng = np.random.default_rng(3)
    n = 800
    true = rng.integers(0, 3, n)
    frames = []
    for k in range(10):
        proba = rng.dirichlet(np.ones(3), size=n)
        if k == 0:  # the one config that sees the truth half the time
            hit = rng.random(n) < 0.5
            proba[hit] = np.eye(3)[true[hit]]
        frames.append(
            pd.DataFrame(
                {
                    "trial_id": f"c{k}",
                    "fold": 0,
                    "anchor": np.arange(n),
                    "timestamp": pd.date_range("2024-01-01", periods=n, freq="h"),
                    "p_down": proba[:, 0],
                    "p_flat": proba[:, 1],
                    "p_up": proba[:, 2],
                    "true": true,
                }
            )
        )
    result = pbo(pd.concat(frames, ignore_index=True), "classification")
    assert result["computed"] and result["measure"] == "macro F1"
    assert result["pbo"] < 0.05


def test_too_few_trials_sharing_folds_say_why():
    rng = np.random.default_rng(4)
    true = rng.normal(size=400)
    preds = {f"t{k}": true + rng.normal(size=400) for k in range(MIN_TRIALS - 1)}
    oof = _regression_oof(preds, true, np.zeros(400))
    result = pbo(oof, "regression")
    assert not result["computed"] and result["n_trials"] == MIN_TRIALS - 1
    assert f"PBO needs at least {MIN_TRIALS}" in result["note"]


def _asha_like(rng, n_full: int, n_fold1: int, n_fold2: int):
    """An oof frame as an ASHA sweep leaves it: ``n_full`` trials finished all 4 folds, the
    pruned ones only the first or the first two."""
    true = rng.normal(size=800)
    preds = {f"c{k}": true + rng.normal(size=800) for k in range(n_full + n_fold1 + n_fold2)}
    oof = _regression_oof(preds, true, np.zeros(800))
    keep = {f"c{k}": 4 for k in range(n_full)}
    keep |= {f"c{k}": 1 for k in range(n_full, n_full + n_fold1)}
    keep |= {f"c{k}": 2 for k in range(n_full + n_fold1, n_full + n_fold1 + n_fold2)}
    oof = oof[oof["fold"] < oof["trial_id"].map(keep)].copy()
    oof["status"] = np.where(oof["trial_id"].map(keep) == 4, "completed", "pruned")
    return oof


def test_pbo_of_an_asha_sweep_uses_pruned_trials_on_the_folds_they_all_finished():
    # 3 trials finished every fold, 9 more were pruned after fold 1 or 2: PBO is computed on
    # fold 1, shared by all 12 (it was 'not computed: 3 trials completed every fold' before).
    oof = _asha_like(np.random.default_rng(8), 3, 5, 4)
    assert fold_set(oof) == ([0], sorted(oof.trial_id.unique()))
    result = pbo(oof, "regression")
    assert result["computed"] and result["n_trials"] == 12 and result["n_pruned"] == 9
    assert result["folds"] == [0] and result["n_samples"] == 200  # fold 1's samples
    assert "12 trials (9 pruned later) that finished CV fold(s) 1" in result["computed_on"]
    # With enough trials on two folds and as many on one, the two folds are used.
    two = _asha_like(np.random.default_rng(9), 3, 0, 6)
    assert fold_set(two)[0] == [0, 1]


def test_few_samples_use_fewer_blocks():
    rng = np.random.default_rng(5)
    true = rng.normal(size=100)
    preds = {f"t{k}": true + rng.normal(size=100) for k in range(8)}
    result = pbo(_regression_oof(preds, true, np.zeros(100)), "regression")
    assert result["n_blocks"] == 10 and result["n_splits"] == 252  # C(10, 5)


def test_a_sweep_without_out_of_fold_predictions_says_so(tmp_path):
    result = pbo_of_sweep(tmp_path, "regression")
    assert not result["computed"]
    assert result["note"].startswith("not computed: no out-of-fold predictions")


def test_cv_and_test_scores_side_by_side_in_the_same_units():
    board = pd.DataFrame(
        {
            "rank": [1, 2],
            "trial_id": ["ab", "cd"],
            "objective": [0.8, 0.9],
            "skill": [0.2, 0.1],
            "fold0_skill": [0.25, 0.1],
            "fold1_skill": [0.15, 0.1],
        }
    )
    chosen = {
        "rank": 1,
        "trial_id": "ab",
        "ensemble_test": {"skill": 0.05},
        "test_mean": {"skill": 0.04},
        "test_std": {"skill": 0.01},
    }
    block = cv_vs_test(board, chosen, "regression")
    assert block["measure"] == "skill vs the naive forecast"
    assert (block["cv"], block["cv_folds"]) == (0.2, [0.25, 0.15])
    assert (block["test_seed_ensemble"], block["test_seed_mean"]) == (0.05, 0.04)


def test_oof_frame_keeps_the_folds_pruned_trials_finished(tmp_path):
    # A pruned trial checkpoints every fold it finished: oof.parquet keeps those folds (so
    # PBO can use them); a trial pruned inside its first fold, or a failed one, adds nothing.
    from ray import tune

    from orchestrator.records.leaderboard import TrialRecord
    from orchestrator.sweep.prepare import prepare_sweep_data
    from orchestrator.sweep.results import oof_frame
    from orchestrator.sweep.trial import oof_file
    from trainables.parameters.train_config import TrainConfig

    base = TrainConfig()
    data = prepare_sweep_data(
        base,
        data=None,
        ticker=None,
        cv="walk-forward",
        n_splits=3,
        sequence_length_max=base.sequence_length,
        n_bars=1500,
    )

    def checkpoint(name: str, folds: int):
        d = tmp_path / name
        d.mkdir()
        for k in range(folds):
            n_eval = len(data.folds[k][2])
            np.save(d / oof_file(k), np.full((n_eval, 1), float(k)), allow_pickle=False)
        return tune.Checkpoint.from_directory(str(d))

    records = [
        TrialRecord("a", {}, folds=[{}, {}, {}], status="completed"),
        TrialRecord("b", {}, folds=[{}], status="pruned"),
        TrialRecord("c", {}, folds=[], status="pruned", stopped_mid_fold=True),
        TrialRecord("d", {}, folds=[{}], status="failed"),
    ]
    checkpoints = {"a": checkpoint("a", 3), "b": checkpoint("b", 1), "d": checkpoint("d", 1)}
    oof = oof_frame(records, checkpoints, data)
    by_trial = oof.groupby("trial_id")["fold"].unique().to_dict()
    assert sorted(by_trial) == ["a", "b"]
    assert list(by_trial["a"]) == [0, 1, 2] and list(by_trial["b"]) == [0]
    assert set(oof[oof.trial_id == "b"].status) == {"pruned"}
    assert len(oof[oof.trial_id == "b"]) == len(data.folds[0][2])
    assert fold_set(oof) == ([0], ["a", "b"])
