"""orchestrator: decides and records. Sweeps on Ray Tune, promotion, verdicts, tracking.

The commands (``python -m orchestrator.X``) sit at the top: ``tune``, ``promote``,
``predict``, ``show``, ``cluster``, ``report``. Their work lives in rooms
(docs/architecture.md is the map, with the rule of which room may import which):

* ``sweep``: one sweep, from its spec to its results (``run_sweep``);
* ``universe``: many tickers in one Tune experiment (``run_universe``);
* ``promotion``: the best configs retrained and judged once on the test part (``promote``);
* ``models``: a promoted model afterwards: registered, loaded, predicting new bars;
* ``stats``: the objective, significance tests, verdicts, overfitting, trading, FDR;
* ``records``: ``results/<name>/`` on disk (sweep.json, leaderboards, names, the lock);
* ``tracking``: MLflow runs and store;
* ``runtime``: Ray's processes (starting, attaching, the head, auth, the compat shim).

Old module paths (``orchestrator.schedulers``, ...) stay importable for Tune's pickled
experiment state and other stored things (``trainables/old_paths.py``).
"""

from trainables.old_paths import install as _install

_install(
    "orchestrator",
    {
        "spec": "sweep.spec",
        "spaces": "sweep.spaces",
        "prepare": "sweep.prepare",
        "sweep_data": "sweep.data_source",
        "preflight": "sweep.preflight",
        "trial": "sweep.trial",
        "trial_reports": "sweep.trial_reports",
        "tuner": "sweep.tuner",
        "schedulers": "sweep.schedulers",
        "study_search": "sweep.study_search",
        "progress": "sweep.progress",
        "outcome": "sweep.results",
        "distributed": "sweep.distributed",
        "cv_baselines": "sweep.cv_baselines",
        "jobs": "sweep.jobs",
        "universe_members": "universe.members",
        "universe_search": "universe.search",
        "universe_scheduler": "universe.scheduler",
        "universe_trial": "universe.trial",
        "universe_progress": "universe.progress",
        "universe_summary": "universe.summary",
        "show_universe": "universe.show",
        "promote_spec": "promotion.spec",
        "holdout": "promotion.holdout",
        "retrain": "promotion.retrain",
        "evaluation": "promotion.evaluation",
        "baselines": "promotion.baselines",
        "ridge": "promotion.ridge",
        "report_layout": "promotion.report_layout",
        "plots": "promotion.plots",
        "universe_promote": "promotion.universe",
        "universe_report": "promotion.universe_report",
        "pyfunc_model": "models.pyfunc_model",
        "registry": "models.registry",
        "universe_registry": "models.universe_registry",
        "universe_predict": "models.universe_predict",
        "significance": "stats.significance",
        "verdicts": "stats.verdicts",
        "overfitting": "stats.overfitting",
        "trading": "stats.trading",
        "fdr": "stats.fdr",
        "objective": "stats.objective",
        "record": "records.sweep_record",
        "leaderboard": "records.leaderboard",
        "names": "records.names",
        "folder_lock": "records.folder_lock",
        "universe_record": "records.universe_record",
        "tickers": "records.tickers",
        "state_seal": "records.state_seal",
        "mlflow_store": "tracking.store",
        "tracking_thread": "tracking.writer_thread",
        "ray_session": "runtime.ray_session",
        "ray_start": "runtime.ray_start",
        "ray_compat": "runtime.ray_compat",
        "ray_auth": "runtime.ray_auth",
        "head": "runtime.head",
    },
)
# Not listed: orchestrator.sweep, .universe and .tracking are packages now (their
# __init__ forwards the old modules' names); promote, predict and report are still
# modules, the commands, forwarding to their code in promotion/ and models/.
