"""The numbers that decide: the objective, significance tests, verdicts, overfitting, FDR.

Entry points: ``objective`` (mse_ratio pooled over folds or macro-F1, and the running
estimate ASHA sees), ``significance`` (one-sided tests with the EWC variance),
``verdicts`` (one comparison per baseline, the verdict in words), ``overfitting`` (CV vs
test, probability of backtest overfitting), ``trading``, ``fdr`` (Benjamini-Yekutieli).
Pure computation: no Ray, no MLflow, no files; imports no other orchestrator room.
"""
