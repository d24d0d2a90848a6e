"""The one place that reaches past Ray's public API, with a check of the Ray it was written for.

``tune.Tuner.restore(path, trainable, ...)`` brings back the callbacks pickled by the
interrupted run (its progress printer and MLflow tracker, bound to a dead process's files
and clients), and has no argument to pass this run's own. Until Ray offers one, the restored
tuner's run config gets them here.
"""

from __future__ import annotations

import ray

__all__ = ["TESTED_RAY", "use_callbacks_after_restore"]

TESTED_RAY = "2.60"  # tests/sweep/test_resume.py exercises this shim on it


def use_callbacks_after_restore(tuner, callbacks: list) -> None:
    """Make a ``Tuner.restore``-d tuner report to ``callbacks`` instead of the pickled ones."""
    local = getattr(tuner, "_local_tuner", None)
    get_run_config = getattr(local, "get_run_config", None)
    if get_run_config is None:
        raise RuntimeError(
            f"Ray {ray.__version__}: a restored Tuner no longer exposes its run config "
            f"(orchestrator/runtime/ray_compat.py was written for Ray {TESTED_RAY}); --resume needs "
            "an update for this Ray"
        )
    get_run_config().callbacks = callbacks
