"""The promoted model in MLflow: its own run beside the sweep's, a pyfunc model, the registry.

Promotion logs one run, ``promoted-<time>``, in the sweep's experiment, nested under the
sweep's parent run by the ``mlflow.parentRunId`` tag; the parent itself is never reopened,
so it keeps the start and end times of the sweep. The run holds the test metrics, the
verdict (tag and description), ``promoted.json`` and the model: an MLflow pyfunc model
logged from code (``orchestrator/models/pyfunc_model.py``; no pickle), whose artifact ``model`` is
the rank folder (every seed's ``model.pt``, ``scaler.json``, ``config.json``).

It is then registered as a new version of ``lstm-<sweep>``, with tags and a description
that say what the test part said, and one MLflow alias: ``champion`` when the chosen model
beats every baseline (the alias moves from the previous champion), ``candidate`` otherwise.
``mlflow.pyfunc.load_model("models:/lstm-<sweep>@champion")`` loads it.

Tracking problems print one line; they never fail a promotion.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from orchestrator.stats.verdicts import fmt_p
from orchestrator.tracking.store import (
    artifact_location,
    as_text,
    fast_fail_http,
    find_parent,
    now_ms,
    short_reason,
    sqlite_path,
    truncate,
)
from orchestrator.tracking.sweep_runs import TRACKING_ERRORS

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "PYFUNC_FILE",
    "beats_every_baseline",
    "log_final_model",
    "registry_line",
    "signature_of",
    "version_tags",
]

CHAMPION, CANDIDATE = "champion", "candidate"
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def beats_every_baseline(chosen: dict) -> bool:
    """The chosen model's verdict: better than every baseline in its deciding comparisons
    (an intersection-union test). A verdict that says so explicitly wins."""
    if "beats_baselines" in chosen:
        return bool(chosen["beats_baselines"])
    deciding = [c for c in chosen.get("comparisons", []) if c.get("decides")]
    return bool(deciding) and all(c["outcome"] == "better" for c in deciding)


def _not_beaten(chosen: dict) -> list[dict]:
    """The deciding comparisons the chosen model did not win."""
    return [
        c for c in chosen.get("comparisons", []) if c.get("decides") and c["outcome"] != "better"
    ]


def _why_not(c: dict) -> str:
    """'ridge (no significant difference, skill +0.1069, p = 0.061)'."""
    words = {
        "worse": "significantly worse",
        "no_difference": "no significant difference",
        "no_test": "no test possible",
    }
    return (
        f"{c['baseline']} ({words.get(c['outcome'], c['outcome'])}, {c['effect']}, "
        f"{fmt_p(c['p_value'])})"
    )


def _tag_key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", name).strip("_")


def _cv_score(index: dict, sweep: dict) -> str:
    model = next((m for m in index["models"] if m["rank"] == index["chosen"]["rank"]), {})
    objective = index.get("objective") or sweep.get("objective") or "objective"
    value = model.get("cv_objective")
    if not isinstance(value, (int, float)):
        return "n/a"
    text = f"{objective} {value:.5g}"
    if objective == "mse_ratio":
        text += f" (skill {1 - value:+.4f})"
    return text + f" over {sweep.get('folds', '?')} {sweep.get('cv', '')} folds".replace("  ", " ")


def version_tags(index: dict, sweep: dict, *, alias: str) -> dict[str, str]:
    """What a registered version says about itself: the verdict, each deciding comparison,
    the sweep, its data and the test part."""
    chosen, data = index["chosen"], index["data"]
    model = next((m for m in index["models"] if m["rank"] == chosen["rank"]), {})
    tags = {
        "verdict": chosen["verdict"],
        "beats_baselines": str(beats_every_baseline(chosen)).lower(),
        # the intersection-union p-value of "better than every baseline" (orchestrator.stats.verdicts)
        "iu_p": fmt_p(chosen["iu_p"]) if isinstance(chosen.get("iu_p"), float) else "",
        "alias_at_registration": alias,
        "sweep": index["sweep"],
        "rank": str(chosen["rank"]),
        "trial_id": str(model.get("trial_id", "")),
        "kind": chosen["kind"],
        "seeds": str(index["seeds"]),
        "task": index["task"],
        "data_source": str(sweep.get("data_source") or data.get("source")),
        "data_fingerprint": str(sweep.get("data_fingerprint", "")),
        "test_range": f"{data['test_first_time']} .. {data['test_last_time']}",
        "test_samples": str(data["n_test"]),
        "cv_score": _cv_score(index, sweep),
    }
    for c in chosen.get("comparisons", []):
        if c.get("decides"):
            tags[f"vs_{_tag_key(c['baseline'])}"] = (
                f"{c['outcome']}: {c['effect']}, {fmt_p(c['p_value'])} ({c['test']})"
            )
    return {k: truncate(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items() if v}


def _description(index: dict, sweep: dict, alias: str) -> str:
    tags = version_tags(index, sweep, alias=alias)
    why = (
        "it beats every baseline"
        if alias == CHAMPION
        else "it does not beat "
        + ("; ".join(map(_why_not, _not_beaten(index["chosen"]))) or "every baseline")
    )
    return (
        f"Rank {tags['rank']} of sweep '{tags['sweep']}' (trial {tags.get('trial_id', '?')}, "
        f"{tags['kind']}, {tags['seeds']} seed(s)), trained on {tags['data_source']} "
        f"(fingerprint {tags.get('data_fingerprint', 'n/a')}); CV {tags['cv_score']}. On the "
        f"test part ({tags['test_samples']} samples, {tags['test_range']}), never seen by the "
        f"sweep or by training: {tags['verdict']}. Registered as {alias}: {why}. Load it with "
        f"mlflow.pyfunc.load_model('models:/<name>@{alias}').predict(bars) (bars with a "
        "timestamp column; docs/promotion.md)."
    )


def signature_of(model_dir: Path) -> ModelSignature:
    """Inputs: the timestamp as a column (a signature has no index) and the bar columns the
    model reads; outputs: what ``orchestrator.models.predict.predict_bars`` returns."""
    from orchestrator.models.predict import load_model, needed_columns

    runs = load_model(model_dir)
    inputs = [ColSpec("datetime", "timestamp")]
    inputs += [ColSpec("double", c) for c in needed_columns(runs)]
    outputs = [ColSpec("datetime", "timestamp"), ColSpec("datetime", "target_timestamp")]
    if runs[0].task == "classification":
        outputs += [ColSpec("double", f"p_{c}") for c in ("down", "flat", "up")]
        outputs.append(ColSpec("long", "predicted"))
    else:
        for name in runs[0].target_names:
            outputs.append(ColSpec("double", f"predicted_{name}"))
            if len(runs) > 1:
                outputs.append(ColSpec("double", f"predicted_{name}_std"))
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _requirements() -> list[str]:
    """What the serving environment needs besides this project (pinned as trained)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow", "torch", "numpy", "pandas", "pyarrow", "scipy"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{name}=={version(name).split('+')[0]}")
    return out


@contextlib.contextmanager
def _fluent_store(uri: str) -> Iterator[None]:
    """MLflow's fluent API (what log_model and a ``models:/`` source use) on the store
    ``uri``; the process-wide tracking URI and MLflow's notes are restored afterwards."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no bar for a few KB
    mlflow.set_tracking_uri(uri)
    try:
        with warnings.catch_warnings():
            # The signature is given explicitly (a timestamp column, the bar columns), and an
            # input example would have to be a window's worth of bars: MLflow's advice to
            # add type hints or an example does not apply.
            for note in ("Add type hints to the `predict` method", "An input example was not"):
                warnings.filterwarnings("ignore", f".*{re.escape(note)}", UserWarning)
            yield
    finally:
        mlflow.set_tracking_uri(previous)
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


def _experiment(client: MlflowClient, uri: str, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _metrics(index: dict) -> dict[str, float]:
    chosen = index["chosen"]
    metrics = {f"test_{k}": v for k, v in chosen["test"].items()}
    for name, values in index["baselines"].items():
        metrics.update({f"{_tag_key(name)}_test_{k}": v for k, v in values.items()})
    for c in chosen.get("comparisons", []):
        if c["decides"]:
            metrics[f"p_value_vs_{_tag_key(c['baseline'])}"] = c["p_value"]
    trading = index.get("trading", {})
    if trading.get("computed"):
        metrics["test_trading_sharpe"] = trading["model"]["sharpe"]
    pbo = index.get("cv_optimism", {}).get("pbo", {})
    if pbo.get("computed"):
        metrics["pbo"] = pbo["pbo"]
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def _start_run(client: MlflowClient, exp_id: str, sweep_name: str, index: dict) -> str:
    """The promotion's own run, a child of the sweep's parent run (never reopened)."""
    chosen = index["chosen"]
    parent = find_parent(client, exp_id, sweep_name)
    tags = {
        "sweep": sweep_name,
        "verdict": truncate(chosen["verdict"], MAX_TAG_VAL_LENGTH),
        "mlflow.note.content": truncate(chosen["verdict"], MAX_TAG_VAL_LENGTH),
        "beats_baselines": str(beats_every_baseline(chosen)).lower(),
    }
    if parent is not None:
        tags[MLFLOW_PARENT_RUN_ID] = parent.info.run_id
    run = client.create_run(exp_id, run_name=f"promoted-{index['created']}", tags=tags)
    model = next(m for m in index["models"] if m["rank"] == chosen["rank"])
    params = {"rank": chosen["rank"], "kind": chosen["kind"], "seeds": index["seeds"]}
    params.update(model["params"])
    now = now_ms()
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in _metrics(index).items()],
        params=[Param(str(k), truncate(as_text(v), 6000)) for k, v in params.items()],
    )
    return run.info.run_id


def _register(client: MlflowClient, name: str, model_uri: str, run_id: str, index, sweep):
    """A new version of ``name`` with its tags, description and alias; returns (version, alias)."""
    alias = CHAMPION if beats_every_baseline(index["chosen"]) else CANDIDATE
    try:
        client.create_registered_model(
            name,
            description=f"Models promoted from sweep '{index['sweep']}'. Alias '{CHAMPION}': "
            f"the latest that beats every baseline on its test part; '{CANDIDATE}': the "
            "latest that does not.",
        )
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name,
        source=model_uri,
        run_id=run_id,
        tags=version_tags(index, sweep, alias=alias),
        description=_description(index, sweep, alias),
    )
    client.set_registered_model_alias(name, alias, version.version)
    return int(version.version), alias


def log_final_model(
    uri: str,
    *,
    experiment: str,
    sweep_name: str,
    registered_name: str,
    model_dir: Path,
    index: dict,
    sweep: dict | None = None,
    register: bool = True,
    log=print,
) -> dict | None:
    """Log the chosen model (module doc) and, unless ``register`` is False, register it.

    Returns ``{"run_id", "model_uri"}`` plus ``registered_model, version, alias`` when it
    was registered; None when the store cannot be reached (one line said so)."""
    sweep = sweep or {}
    for name in ("mlflow.store.db.utils", "alembic"):  # schema set-up lines: not news
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        db = sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        with fast_fail_http():
            exp_id = _experiment(client, uri, experiment)
    except TRACKING_ERRORS as err:
        log(f"MLflow at {uri} is unreachable ({short_reason(err)}); the model is not logged")
        return None
    out: dict = {}
    try:
        out["run_id"] = run_id = _start_run(client, exp_id, sweep_name, index)
        client.log_artifact(run_id, str(Path(model_dir).parents[1] / "promoted.json"))
        with _fluent_store(uri):
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(PYFUNC_FILE),
                    artifacts={"model": str(model_dir)},
                    signature=signature_of(Path(model_dir)),
                    pip_requirements=_requirements(),
                )
            out["model_uri"] = info.model_uri
            if register:  # a models:/ source resolves through the fluent store
                version, alias = _register(
                    client, registered_name, info.model_uri, run_id, index, sweep
                )
                out.update(registered_model=registered_name, version=version, alias=alias)
    except TRACKING_ERRORS as err:
        log(f"MLflow at {uri}: could not log the promoted model ({short_reason(err)}); going on")
        if out.get("run_id"):
            with contextlib.suppress(*TRACKING_ERRORS):
                client.set_terminated(out["run_id"], "FAILED")
    return out or None


def registry_line(info: dict | None, chosen: dict) -> str:
    """The last word of a promotion on MLflow: what was registered, as what, and why."""
    if not info:
        return "MLflow: the promoted model was not logged (see the line above)"
    if "version" not in info:
        if "model_uri" not in info:
            return f"MLflow: run {info['run_id']} logged without its model (see the line above)"
        return f"MLflow: run {info['run_id']}, model {info['model_uri']}; not registered"
    head = f"registered version {info['version']} of {info['registered_model']!r}"
    if info["alias"] == CHAMPION:
        why = "it beats every baseline"
    else:
        names = [c["baseline"] for c in _not_beaten(chosen)]
        why = "it does not beat " + (" and ".join(names) or "every baseline")
    return (
        f"MLflow: {head} as {info['alias']}: {why} "
        f"(models:/{info['registered_model']}@{info['alias']}; run {info['run_id']})"
    )
