"""The trainer's numbers do not drift: fixed-seed fits equal their recorded golden outputs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fit_golden import CASES, arrays, assert_near_golden, golden_path, platform, run_case

_RUNS: dict[str, dict[str, np.ndarray]] = {}


def _run(name: str) -> dict[str, np.ndarray]:
    if name not in _RUNS:  # both tests of a case read one fit
        _RUNS[name] = arrays(*run_case(name))
    return _RUNS[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_equals_its_golden_output(name):
    # Rule: a fixed-seed CPU fit gives the recorded weights, predictions and curves on any
    # machine, within GOLDEN_RTOL of each array's scale (float noise stays far below it, the
    # smallest real change tried far above: tests/fit_golden.py). `python -m tests.fit_golden`
    # rewrites the files, in a commit that says why the numbers changed.
    golden = np.load(golden_path(name))
    got = _run(name)
    assert sorted(got) == sorted(k for k in golden if k != "platform")
    for key in ("fold/x", "fold/y", "fold/anchors"):
        # The data pipeline, not the trainer: say so instead of blaming the trainer.
        assert np.array_equal(got[key], golden[key]), f"{key}: the fold's inputs changed"
    for key, want in golden.items():
        if key == "platform" or key.startswith("fold/"):
            continue
        assert_near_golden(got[key], want, f"{name}: {key} moved from the golden run")


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_equals_its_golden_output_bit_for_bit_where_it_was_recorded(name):
    # Rule: on a machine whose fingerprint (tests/fit_golden.py: platform) equals the
    # recording's, every bit is the same; elsewhere this says why it cannot be asked.
    golden = np.load(golden_path(name))
    if str(golden["platform"]) != platform():
        pytest.skip(f"recorded on [{golden['platform']}], this is [{platform()}]")
    got = _run(name)
    for key, want in golden.items():
        if key != "platform":
            assert np.array_equal(got[key], want), f"{name}: {key} differs from the golden run"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_golden_tolerance_catches_the_smallest_real_change(name):
    # Rule: the tolerance is not so loose that a behaviour change hides in it: the learning
    # rate times 1.0001 moves the fit out of it.
    from dataclasses import replace

    import torch

    from tests.fit_golden import case_config, case_fold
    from trainables.training.trainer import fit

    golden = np.load(golden_path(name))
    cfg = case_config(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fold = case_fold(name)
        changed = arrays(fold, fit(replace(cfg, learning_rate=cfg.learning_rate * 1.0001), fold))
    finally:
        torch.set_num_threads(threads)
    moved = []
    for key, want in golden.items():
        if key == "platform" or key.startswith("fold/"):
            continue
        try:
            assert_near_golden(changed[key], want, key)
        except AssertionError:
            moved.append(key)
    assert moved, "a changed learning rate stayed within the golden tolerance"
