"""A universe: many tickers tuned by one command, in one Tune experiment on one Ray.

Entry points: ``run.run_universe``, ``members`` (each ticker prepared as its own sweep),
``search.UniverseSearch`` (one Optuna study per ticker), ``scheduler.TickerScheduler``,
``trial`` (the trainable reading its ticker's data from the object store), ``progress``
(the callbacks), ``summary`` (the last lines), ``show`` (``python -m orchestrator.show`` of
a universe). A universe's promotion lives in ``orchestrator.promotion.universe``.
"""

from trainables.old_paths import forward_to

# orchestrator.universe was the module universe/run.py: its names stay readable here.
__getattr__ = forward_to("orchestrator.universe.run")
