"""MLflow: a sweep's parent and child runs, the store helpers, the tracker's own thread.

Entry points: ``sweep_runs.SweepTracker`` (and ``default_tracking_uri``,
``find_child_runs``), ``store`` (finding runs, quoting, failing fast), ``writer_thread``
(each trial's run written off Tune's event loop). No Ray; imports no other orchestrator room.
"""

from trainables.old_paths import forward_to

# orchestrator.tracking was the module tracking/sweep_runs.py: its names stay readable here.
__getattr__ = forward_to("orchestrator.tracking.sweep_runs")
