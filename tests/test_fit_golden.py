"""The trainer's numbers do not drift: fixed-seed fits equal their recorded golden outputs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fit_golden import CASES, arrays, golden_path, platform, run_case


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_equals_its_golden_output(name):
    # Rule: a fixed-seed CPU fit gives the recorded weights, predictions and curves, bit for
    # bit on the platform that recorded them (python -m tests.fit_golden rewrites them, in a
    # commit that says why the numbers changed).
    golden = np.load(golden_path(name))
    got = arrays(*run_case(name))
    assert sorted(got) == sorted(k for k in golden if k != "platform")
    for key in ("fold/x", "fold/y", "fold/anchors"):
        # The data pipeline, not the trainer: say so instead of blaming the trainer.
        assert np.array_equal(got[key], golden[key]), f"{key}: the fold's inputs changed"
    exact = str(golden["platform"]) == platform()
    for key, want in golden.items():
        if key == "platform" or key.startswith("fold/"):
            continue
        if exact:
            assert np.array_equal(got[key], want), f"{name}: {key} differs from the golden run"
        else:
            # Another CPU instruction set or torch build rounds its kernels differently, so
            # bits may differ. This tolerance is a judgement, not yet tried on a second
            # platform: if it fails there, compare with `python -m tests.fit_golden` output.
            np.testing.assert_allclose(got[key], want, rtol=1e-3, atol=1e-5, err_msg=key)
