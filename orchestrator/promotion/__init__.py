"""Promotion: the best configs retrained and judged once on the untouched test part.

Entry points: ``run.promote`` and ``run.main`` (``python -m orchestrator.promote``),
``spec.PromoteSpec`` (its settings, readable without loading the rest), ``holdout`` (the
sweep's record and data rebuilt, the holdout guard), ``retrain`` (early stopping, then a
refit on train+val on Ray Train), ``baselines`` and ``ridge``, ``evaluation`` (test scores,
ensembles, verdicts), ``report`` (report.html / .md, ``python -m orchestrator.report``),
``plots``, ``universe`` (a universe's promotion) and ``universe_report``.
"""
