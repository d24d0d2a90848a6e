"""The promoted runs on the test part: their outputs, scores, ensembles and verdicts.

Each saved run predicts the test anchors through ``artifacts.predict`` (the path
``python -m orchestrator.predict`` takes); each rank's seeds are averaged into its seed
ensemble, the ranks' ensembles into the top-k ensemble; each ensemble is scored, compared
with every baseline (``orchestrator.stats.verdicts``) and given its verdict. The chosen model's
(the lowest rank with a model: picked by CV rank before the test part opened) is the answer;
the other ranks' and the top-k ensemble's are labelled descriptive.

A forecast (the model's or a baseline's) that is NaN or infinite on a test row stops the
promotion (``TrainingError``: one line naming the model and the row) before any verdict is
formed: a test statistic built on it would be meaningless.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.promotion.baselines import score
from orchestrator.promotion.holdout import HoldoutRows, Pick, write_json
from orchestrator.stats.verdicts import (
    Comparison,
    classification_comparisons,
    regression_comparisons,
    verdict,
)
from trainables.artifacts import load_run, predict
from trainables.errors import TrainingError
from trainables.training.metrics import CLASS_NAMES

__all__ = [
    "add_test_results",
    "check_finite",
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
    pred: np.ndarray, test: HoldoutRows, baselines: dict[str, np.ndarray]
) -> list[Comparison]:
    """Every comparison of ``pred`` with the baselines on the test part (the first baseline
    is the naive forecast, or the majority class)."""
    truth, horizon = test.truth(), test.targets.horizon
    if test.targets.task == "classification":
        return classification_comparisons(truth, pred, baselines, horizon=horizon)
    return regression_comparisons(
        truth,
        pred,
        baselines,
        names=list(test.targets.names),
        now=test.now(),
        naive=next(iter(baselines)),
        horizon=horizon,
    )


def check_finite(pred: np.ndarray, test: HoldoutRows, who: str) -> None:
    """TrainingError naming ``who``, the first test row and its time when ``pred`` holds a
    NaN or an infinity: no verdict may rest on it."""
    bad = ~np.isfinite(np.asarray(pred, dtype=np.float64).reshape(len(pred), -1))
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    first = int(rows[0])
    value = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)[first]
    raise TrainingError(
        f"{who}: {len(rows):,} of {len(pred):,} test forecasts are NaN/inf, the first for "
        f"table row {int(test.anchors[first])} ({test.timestamps[first]}): {value.tolist()}; "
        "no verdict can rest on them, so promotion stopped before writing or registering "
        "anything (are the model's weights, or the bars there, broken?)"
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


def _judged(
    label: str, pred: np.ndarray, test: HoldoutRows, baselines: dict, *, descriptive: bool
) -> dict:
    """Test metrics, comparisons and verdict of one ensemble (``verdict``: the sentence;
    ``iu_p``: its intersection-union p-value; ``descriptive``: not the chosen model)."""
    naive = None if test.targets.task == "classification" else next(iter(baselines.values()))
    comparisons = judge(pred, test, baselines)
    said = verdict(label, comparisons, descriptive=descriptive)
    return {
        "test": score(pred, test, naive),
        "comparisons": [c.to_dict() for c in comparisons],
        "verdict": said.text,
        "iu_p": said.iu_p,
        "descriptive": said.descriptive,
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
    for name, forecast in baselines.items():
        check_finite(forecast, test, f"baseline {name}")
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
                check_finite(pred, test, f"rank {rank} seed {job['k']} (trial {p.trial_id})")
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
        # The first rank with a model is the chosen one (promote picks it the same way).
        judged = _judged(label, ensemble, test, baselines, descriptive=bool(outputs_by_rank))
        model["ensemble_test"] = judged["test"]
        for key in ("comparisons", "verdict", "iu_p", "descriptive"):
            model[key] = judged[key]
        prediction_frame(test, ensemble).to_parquet(models_dir / str(rank) / "predictions.parquet")
        outputs_by_rank[rank] = ensemble
    out: dict = {"models": models}
    if len(outputs_by_rank) > 1:
        ranks = list(outputs_by_rank)
        label = f"the top-{len(ranks)} ensemble"
        ensemble = mean_outputs(list(outputs_by_rank.values()))
        judged = _judged(label, ensemble, test, baselines, descriptive=True)
        out["ensemble"] = {"ranks": ranks, **judged}
    return out, outputs_by_rank
