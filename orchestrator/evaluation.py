"""The promoted runs on the test part: their outputs, scores, ensembles and verdicts.

Each saved run predicts the test anchors through ``artifacts.predict`` (the path
``python -m orchestrator.predict`` takes); each rank's seeds are averaged into its seed
ensemble, the ranks' ensembles into the top-k ensemble; each ensemble is scored, compared
with every baseline (``orchestrator.verdicts``) and given its verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.baselines import score
from orchestrator.holdout import HoldoutRows, Pick, write_json
from orchestrator.verdicts import (
    Comparison,
    classification_comparisons,
    regression_comparisons,
    verdict,
)
from trainables.artifacts import load_run, predict
from trainables.metrics import CLASS_NAMES

__all__ = [
    "add_test_results",
    "evaluate_runs",
    "judge",
    "mean_outputs",
    "output_columns",
    "outputs_on_test",
    "prediction_frame",
    "seed_stats",
]


def mean_outputs(outputs: list[np.ndarray]) -> np.ndarray:
    """Average of model outputs: regression predictions, or class probabilities (soft vote)."""
    return np.mean(np.stack(outputs), axis=0)


def seed_stats(per_seed: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """(mean, std) over seeds of every scalar metric; std is the sample std (0 for one seed)."""
    keys = [k for k, v in per_seed[0].items() if isinstance(v, (int, float))]
    mean, std = {}, {}
    for k in keys:
        values = np.array([m[k] for m in per_seed], dtype=np.float64)
        mean[k] = float(values.mean())
        std[k] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def judge(
    pred: np.ndarray, test: HoldoutRows, baselines: dict[str, np.ndarray], *, seed: int = 0
) -> list[Comparison]:
    """Every comparison of ``pred`` with the baselines on the test part (the first baseline
    is the naive forecast, or the majority class)."""
    truth, horizon = test.truth(), test.targets.horizon
    if test.targets.task == "classification":
        return classification_comparisons(truth, pred, baselines, horizon=horizon, seed=seed)
    return regression_comparisons(
        truth,
        pred,
        baselines,
        names=list(test.targets.names),
        now=test.now(),
        naive=next(iter(baselines)),
        horizon=horizon,
        seed=seed,
    )


def outputs_on_test(run_dir: Path, test: HoldoutRows) -> np.ndarray:
    """A saved run's outputs on the test anchors, through ``artifacts.predict`` (the same path
    ``python -m orchestrator.predict`` takes): ``[n, T]`` original units or ``[n, 3]``."""
    run = load_run(run_dir)
    frame = predict(run, test.features)
    frame = frame.loc[test.timestamps]
    return frame[output_columns(run.task, run.target_names)].to_numpy(dtype=np.float64)


def output_columns(task: str, target_names: list[str]) -> list[str]:
    if task == "classification":
        return [f"p_{name}" for name in CLASS_NAMES]
    return [f"predicted_{name}" for name in target_names]


def prediction_frame(test: HoldoutRows, pred: np.ndarray) -> pd.DataFrame:
    """Test rows in the layout of ``predictions.parquet`` (split 'test')."""
    task, names = test.targets.task, list(test.targets.names)
    cols: dict = {
        "timestamp": test.timestamps,
        "target_timestamp": test.target_timestamps,
        "anchor": test.anchors,
        "split": "test",
    }
    truth = test.truth()
    if task == "classification":
        cols["actual"] = truth
    else:
        cols.update({f"actual_{name}": truth[:, k] for k, name in enumerate(names)})
    cols.update(dict(zip(output_columns(task, names), pred.T, strict=True)))
    if task == "classification":
        cols["predicted"] = pred.argmax(axis=1).astype(np.int64)
    return pd.DataFrame(cols)


def add_test_results(run_dir: Path, test: HoldoutRows, pred: np.ndarray, metrics: dict) -> None:
    """Append the test rows to a run's ``predictions.parquet`` and its test metrics to
    ``training_metrics.json`` (the training step wrote neither: it never had the rows)."""
    path = Path(run_dir) / "predictions.parquet"
    saved = pd.read_parquet(path)
    saved = saved[saved["split"] != "test"]
    frame = prediction_frame(test, pred)
    pd.concat([saved, frame], ignore_index=True).to_parquet(path, index=False)
    metrics_path = Path(run_dir) / "training_metrics.json"
    info = json.loads(metrics_path.read_text())
    info["test_metrics"] = metrics
    write_json(metrics_path, info)


def _judged(label: str, pred: np.ndarray, test: HoldoutRows, baselines: dict) -> dict:
    """Test metrics, comparisons and verdict of one ensemble."""
    naive = None if test.targets.task == "classification" else next(iter(baselines.values()))
    comparisons = judge(pred, test, baselines)
    return {
        "test": score(pred, test, naive),
        "comparisons": [c.to_dict() for c in comparisons],
        "verdict": verdict(label, comparisons),
    }


def evaluate_runs(
    picks: list[Pick],
    jobs: list[dict],
    models_dir: Path,
    test: HoldoutRows,
    baselines: dict[str, np.ndarray],
) -> tuple[dict, dict[int, np.ndarray]]:
    """Score every saved run, each rank's seed ensemble and the top-k ensemble on the test part.

    ``jobs``: the training summaries (``rank``, ``k``, ``status``, ...); ``baselines``: each
    baseline's test outputs, the naive forecast (or majority class) first. Each run
    directory gets its test rows and metrics; ``models_dir/<rank>/predictions.parquet`` the
    seed ensemble's. Returns (``{"models": [...], "ensemble": {...}}`` for promoted.json,
    each rank's seed-ensemble outputs).
    """
    naive = None if test.targets.task == "classification" else next(iter(baselines.values()))
    outputs_by_rank: dict[int, np.ndarray] = {}
    models = []
    for p in picks:
        rank = p.rank
        model = {
            "rank": rank,
            "trial_id": p.trial_id,
            "cv_objective": p.objective,
            "params": p.params,
            "epochs": p.cfg.epochs,
            "path": f"models/{rank}",
        }
        models.append(model)
        mine = sorted((j for j in jobs if j["rank"] == rank), key=lambda j: j["k"])
        seeds, outputs = [], []
        for job in mine:
            entry = {k: v for k, v in job.items() if k not in ("dir", "rank")}
            if job["status"] == "ok":
                run_dir = models_dir / str(rank) / f"seed{job['k']}"
                pred = outputs_on_test(run_dir, test)
                entry["test"] = score(pred, test, naive)
                entry["path"] = f"models/{rank}/seed{job['k']}"
                add_test_results(run_dir, test, pred, entry["test"])
                outputs.append(pred)
            seeds.append(entry)
        model["seeds"] = seeds
        if not outputs:
            continue
        model["test_mean"], model["test_std"] = seed_stats(
            [s["test"] for s in seeds if "test" in s]
        )
        ensemble = mean_outputs(outputs)
        label = f"rank {rank} (trial {model['trial_id']}, {len(outputs)}-seed ensemble)"
        judged = _judged(label, ensemble, test, baselines)
        model["ensemble_test"] = judged["test"]
        model["comparisons"], model["verdict"] = judged["comparisons"], judged["verdict"]
        prediction_frame(test, ensemble).to_parquet(models_dir / str(rank) / "predictions.parquet")
        outputs_by_rank[rank] = ensemble
    out: dict = {"models": models}
    if len(outputs_by_rank) > 1:
        ranks = list(outputs_by_rank)
        label = f"the top-{len(ranks)} ensemble"
        judged = _judged(label, mean_outputs(list(outputs_by_rank.values())), test, baselines)
        out["ensemble"] = {"ranks": ranks, **judged}
    return out, outputs_by_rank
