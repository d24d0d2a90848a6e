"""From bars to what the model reads: features, targets, folds, scalers, windows.

Entry points: ``features.build_features``, ``labels.make_targets``,
``model_table.build_table`` (one config's features + targets + final split),
``splits`` (``PurgedWalkForward``, ``PurgedKFold``, ``CombinatorialPurgedCV``,
``final_split``: the leakage rule), ``dataset.prepare_fold`` (the one place a fold's scaler
is fit), ``scaling``, ``windows``, ``fold_checks.check_fold``, ``naive`` (the forecast each
target is judged against). Never imports ``trainables.training``.
"""
