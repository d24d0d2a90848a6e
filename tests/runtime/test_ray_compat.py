"""The one shim past Ray's public API: pinned to the Ray it was written for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import ray

from orchestrator.runtime.ray_compat import TESTED_RAY, use_callbacks_after_restore


def test_the_installed_ray_is_the_one_the_shim_was_written_for():
    # pyproject pins ray to 2.60.x; a newer Ray must come with a re-checked shim
    assert ray.__version__.startswith(TESTED_RAY)


def test_a_tuner_without_the_private_run_config_fails_with_a_clear_message():
    with pytest.raises(RuntimeError, match="no longer exposes its run config"):
        use_callbacks_after_restore(SimpleNamespace(), [])


def test_the_callbacks_are_replaced_on_the_run_config():
    config = SimpleNamespace(callbacks=["pickled"])
    tuner = SimpleNamespace(_local_tuner=SimpleNamespace(get_run_config=lambda: config))
    use_callbacks_after_restore(tuner, ["ours"])
    assert config.callbacks == ["ours"]
