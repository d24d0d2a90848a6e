"""One sweep: its spec and space, the data and folds, the Tune run, its trials and results.

Entry points: ``run.run_sweep`` (the steps, in order), ``spec.SweepSpec`` (every setting),
``spaces.load_space``, ``prepare.prepare_sweep_data`` (data, holdout cut, CV folds, checked
before Ray starts), ``trial.run_trial`` (the trainable), ``tuner`` (the Tuner, new or
restored), ``schedulers.FoldRaceASHA``, ``study_search`` (Optuna behind Tune; fenced),
``progress`` (driver callbacks), ``results`` (after the run), ``jobs`` (a sweep as a Ray job).
"""

from trainables.old_paths import forward_to

# orchestrator.sweep was the module sweep/run.py: its names stay readable here, imported
# on first use only (a pickle or an old import naming orchestrator.sweep.run_sweep).
__getattr__ = forward_to("orchestrator.sweep.run")
