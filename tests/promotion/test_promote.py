"""Promotion end to end: a tiny real sweep, then real Ray Train retraining, MLflow and report.

One sweep and one promotion (top 2 configs x 2 seeds) are shared by the module; the other
tests exercise the guard, the settings check and the failure paths without Ray.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch
from mlflow.tracking import MlflowClient

from orchestrator.models.predict import main as predict_main
from orchestrator.models.registry import log_final_model, registry_line
from orchestrator.promotion import evaluation
from orchestrator.promotion.baselines import (
    baseline_forecasts,
    baseline_scores,
    fit_baselines,
    naive_name,
)
from orchestrator.promotion.holdout import HoldoutGuard, load_holdout, read_sweep
from orchestrator.promotion.report import write_report
from orchestrator.promotion.run import EXPERIMENT, PromoteSpec, promote
from orchestrator.promotion.run import main as promote_main
from orchestrator.stats.verdicts import fmt_p
from orchestrator.sweep.run import SweepSpec, run_sweep
from orchestrator.tracking.sweep_runs import default_tracking_uri
from trainables.artifacts import FILES
from trainables.bars.synthetic import make_bars
from trainables.errors import ConfigError

NAME = "p"
# The sweep's parent MLflow run as the sweep left it (the fixture fills it in before promoting).
PARENT_BEFORE: dict = {}


def _hand_sweep(tmp_path: Path, **spec) -> Path:
    """A sweep folder holding only sweep.json (all load_holdout reads), for tests without Ray."""
    out = tmp_path / "results" / "h"
    out.mkdir(parents=True)
    record = {"name": "h", "space": "smoke", "n_bars": 1200, "seed": 0, "folds": 2, **spec}
    (out / "sweep.json").write_text(json.dumps(record))
    return out


GUIDE_INPUTS = ("open", "high", "low", "close", "volume", "log_return")


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    """(results dir, promoted.json index, promotion log) of a tiny sweep promoted 2 x 2."""
    results = tmp_path_factory.mktemp("promote") / "results"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        quiet = lambda *_: None  # noqa: E731
        run_sweep(
            SweepSpec(
                space="smoke",
                trials=3,
                folds=2,
                epochs=2,
                n_bars=2000,
                num_cpus=2,
                dashboard=False,
                scheduler="none",
                results_dir=str(results),
                name=NAME,
                # A price-level target (the guide's close, on its inputs) judged against
                # persistence: these tests cover that path; the default log-return target
                # is covered by the sweep tests and test_random_walk_verdicts.py.
                overrides={"target_col": "close", "f_cols": list(GUIDE_INPUTS)},
            ),
            log=quiet,
        )
        client = MlflowClient(tracking_uri=default_tracking_uri(results))
        exp = client.get_experiment_by_name(EXPERIMENT)
        (parent,) = client.search_runs([exp.experiment_id], f"attributes.run_name = '{NAME}'")
        PARENT_BEFORE.update(run_id=parent.info.run_id, end_time=parent.info.end_time)
        lines: list[str] = []
        # The smoke space stops after 2 epochs; the final models get 20 and a patience that
        # counts every improvement (the default min_delta is large for scaled losses).
        index = promote(
            PromoteSpec(
                name=NAME,
                results_dir=str(results),
                top_k=2,
                seeds=2,
                epochs=20,
                overrides={"patience": 5, "min_delta": 0.0},
            ),
            log=lines.append,
        )
        yield results, index, lines
    finally:
        ray.shutdown()


def test_promotion_writes_every_artifact(promoted):
    # Each (rank, seed) has its five run files; ranks have ensemble predictions; index and report exist.
    results, index, _ = promoted
    out = results / NAME
    for rank in (1, 2):
        for k in (0, 1):
            for name in FILES:
                assert (out / "models" / str(rank) / f"seed{k}" / name).is_file(), name
        assert (out / "models" / str(rank) / "predictions.parquet").is_file()
    for name in ("promoted.json", "report.html", "report.md"):
        assert (out / name).is_file(), name
    assert json.loads((out / "promoted.json").read_text()) == json.loads(json.dumps(index))
    assert not list(out.glob(".models-partial-*"))  # the staging folder is gone
    seed_preds = pd.read_parquet(out / "models" / "1" / "seed0" / "predictions.parquet")
    assert set(seed_preds.split) == {"val", "test"}
    assert len(seed_preds[seed_preds.split == "test"]) == index["data"]["n_test"]
    metrics = json.loads((out / "models/1/seed0/training_metrics.json").read_text())
    assert metrics["test_metrics"]["mse"] == index["models"][0]["seeds"][0]["test"]["mse"]


def test_training_never_reads_the_test_part(promoted):
    # Rows handed to training end before the test part, and the test part opened only afterwards.
    results, index, _ = promoted
    out = results / NAME
    guard = index["holdout_guard"]
    assert guard["test_first_row"] == read_sweep(out)["test_first_row"]
    assert guard["max_training_row"] < guard["test_first_row"]
    assert guard["events"] == ["training", "test"] and guard["test_read_after_training"]
    for config in out.glob("models/*/seed*/config.json"):
        data = json.loads(config.read_text())["data"]
        assert data["n_rows"] <= guard["test_first_row"]  # the fold physically had no test row
    preds = pd.read_parquet(out / "models/1/seed0/predictions.parquet")
    test = preds[preds.split == "test"]
    sequence_length = json.loads((out / "models/1/seed0/config.json").read_text())["data"][
        "sequence_length"
    ]
    assert (test.anchor - sequence_length + 1).min() >= guard[
        "test_first_row"
    ]  # test windows: test rows


def test_guard_refuses_the_test_part_before_training_is_over(tmp_path):
    # The test part opens only after finish_training(), and training is refused afterwards.
    guard = HoldoutGuard(load_holdout(_hand_sweep(tmp_path)))
    table = guard.training_table()
    assert table.n_rows - 1 == guard.max_training_row < guard.test_first_row
    with pytest.raises(RuntimeError, match="before training finished"):
        guard.test_part()
    guard.finish_training()
    test = guard.test_part()
    assert test.first_row == guard.test_first_row and test.anchors.min() > test.first_row
    with pytest.raises(RuntimeError, match="after the test part was opened"):
        guard.training_table()
    assert guard.to_dict()["events"] == ["training", "test"]


def test_final_models_are_refit_on_train_and_validation(promoted):
    # The final models train on train+validation: their last label row lies in the
    # validation part and still before the test part; each refit ran the early-stopping
    # run's best epoch count, and both runs are recorded.
    results, index, _ = promoted
    guard = index["holdout_guard"]
    first_val, last_val = guard["validation_anchors"]
    assert guard["final_models_train_on"] == "train+validation"
    assert first_val <= guard["last_training_anchor"] <= last_val
    assert guard["last_training_label_row"] == guard["last_training_anchor"] + 1  # horizon 1
    assert guard["last_training_label_row"] < guard["test_first_row"]
    n_fit, n_val = index["data"]["n_fit"], index["data"]["n_early_stopping"]
    for model in index["models"]:
        for s in model["seeds"]:
            assert s["refit_epochs"] == s["best_epoch"]
            assert s["refit_samples"] > n_fit + n_val  # train, the gap and validation
            config = json.loads((results / NAME / s["path"] / "config.json").read_text())
            assert config["data"]["train_last"] == config["data"]["val_last"]
            metrics = json.loads((results / NAME / s["path"] / "training_metrics.json").read_text())
            assert metrics["epochs_run"] == s["best_epoch"]
            assert metrics["early_stopping_run"]["best_epoch"] == s["best_epoch"]
            assert metrics["refit"]["trained_on"] == "train+validation"


def test_seeds_are_separate_runs_with_different_weights(promoted):
    # Seed 0 and seed 1 of a config are different trained models, so their spread is real.
    results, index, _ = promoted
    states = [
        torch.load(results / NAME / f"models/1/seed{k}/model.pt", weights_only=True) for k in (0, 1)
    ]
    assert states[0].keys() == states[1].keys()
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])
    seeds = [
        json.loads((results / NAME / f"models/1/seed{k}/config.json").read_text()) for k in (0, 1)
    ]
    assert seeds[0]["train_config"]["seed"] != seeds[1]["train_config"]["seed"]
    model = index["models"][0]
    mses = [s["test"]["mse"] for s in model["seeds"]]
    assert mses[0] != mses[1]
    assert model["test_std"]["mse"] == pytest.approx(np.std(mses, ddof=1))
    assert model["test_mean"]["mse"] == pytest.approx(np.mean(mses))


def test_on_the_learnable_signal_the_chosen_model_is_better_than_persistence(promoted):
    # The built-in data's signal: Diebold-Mariano finds the chosen model better than
    # persistence at p < 0.05, with a skill interval above 0, and the verdict says so.
    _, index, lines = promoted
    chosen = index["chosen"]
    dm = next(c for c in chosen["comparisons"] if c["baseline"] == "persistence" and c["decides"])
    assert dm["test"] == "Diebold-Mariano (EWC)"
    assert dm["outcome"] == "better" and dm["p_value"] < 0.05 and dm["ci_low"] > 0
    assert dm["estimate"] == pytest.approx(chosen["test"]["skill"])
    assert chosen["verdict"].startswith(f"rank 1 (trial {index['models'][0]['trial_id']}")
    said = f"better than persistence (Diebold-Mariano (EWC): skill {dm['estimate']:+.4f}, p "
    assert said in chosen["verdict"] and "the test could detect skill >= " in chosen["verdict"]
    assert chosen["verdict"] in lines  # printed for the user too
    # The intersection-union p-value: the largest one-sided p over the deciding tests.
    deciding = [c["p_value"] for c in chosen["comparisons"] if c["decides"]]
    assert chosen["iu_p"] == pytest.approx(max(deciding))


def test_every_baseline_gets_a_test_and_the_verdict_follows_all_of_them(promoted):
    # One deciding comparison per baseline with the fields promoted.json promises; the
    # model "beats the baselines" exactly when every deciding outcome is 'better'.
    _, index, lines = promoted
    comparisons = index["chosen"]["comparisons"]
    keys = {"baseline", "test", "statistic", "p_value", "ci_low", "ci_high", "outcome"}
    assert all(keys <= set(c) for c in comparisons)
    deciding = [c for c in comparisons if c["decides"]]
    assert [c["baseline"] for c in deciding] == list(index["baselines"]) == ["persistence", "ridge"]
    beats = all(c["outcome"] == "better" for c in deciding)
    assert (
        index["chosen"]["verdict"]
        .split(" (intersection-union p")[0]
        .endswith(
            "beats the baselines on the test part"
            if beats
            else "does NOT beat the baselines on the test part"
        )
    )
    for c in deciding:
        assert c["ci_low"] <= c["estimate"] <= c["ci_high"]
        assert c["baseline"] in index["chosen"]["verdict"]
    secondary = {c["test"] for c in comparisons if not c["decides"]}
    assert secondary == {"Clark-West (nested, EWC)", "Pesaran-Timmermann"}
    for model in index["models"]:  # every config's seed ensemble is judged the same way
        assert [c["baseline"] for c in model["comparisons"] if c["decides"]] == [
            "persistence",
            "ridge",
        ]
    # Only the chosen model's verdict is the answer; the others say they are descriptive.
    assert [m["descriptive"] for m in index["models"]] == [False, True]
    assert index["models"][1]["verdict"].startswith("Descriptive only, not the chosen model")
    assert index["ensemble"]["verdict"].startswith("Descriptive only, not the chosen model")
    assert any("Diebold-Mariano" in line for line in lines)  # the tests table is printed


def test_cv_score_and_test_score_side_by_side(promoted):
    # Rank 1's CV skill next to its test skill; PBO says why it is not computed here.
    _, index, lines = promoted
    block = index["cv_optimism"]
    assert block["measure"] == "skill vs the naive forecast"
    assert block["trial_id"] == index["models"][0]["trial_id"]
    assert block["test_seed_ensemble"] == pytest.approx(index["chosen"]["test"]["skill"])
    assert len(block["cv_folds"]) == 2
    assert not block["pbo"]["computed"] and block["pbo"]["note"].startswith("not computed")
    assert any(line.startswith("CV against test (skill vs the naive forecast)") for line in lines)
    # CV is pooled over the folds, and says so beside the folds' own mean.
    assert block["cv_fold_mean"] == pytest.approx(np.mean(block["cv_folds"]))
    assert any("in CV (pooled over 2 folds:" in line for line in lines)
    # Where the test part starts, under both of its names: first anchor, first bar read.
    data = index["data"]
    head = next(line for line in lines if line.startswith("Test part:"))
    assert f"anchors {data['test_first_time']} .. " in head
    assert f"their windows read bars from {data['test_windows_first_time']}, row " in head


def test_trading_view_of_the_test_part(promoted):
    # Positions from the chosen model's forecast, next to buy-and-hold and the best baseline.
    results, index, lines = promoted
    trading = index["trading"]
    assert trading["computed"] and trading["target"] == "close" and trading["cost_bps"] == 1.0
    # Executed one bar later: the last anchor's trade would end past the data.
    assert trading["model"]["n_bars"] == index["data"]["n_test"] - 1
    assert trading["price"] == "open" and "one bar later" in trading["execution"]
    assert "model_vs_buy_and_hold" in trading and "warning" in trading["model"]
    assert trading["best_baseline"]["name"] == "ridge"  # persistence never takes a position
    assert trading["bars_per_year"] == pytest.approx(24 * 365.25)  # hourly bars, no full year
    frame = pd.read_parquet(results / NAME / "trading.parquet")
    equity = np.prod(1 + frame["net_model"].to_numpy()) - 1
    assert equity == pytest.approx(trading["model"]["total_return"])
    assert any("it is not a backtester" in line for line in lines)


def test_baselines_and_ensembles_are_scored_on_the_same_rows(promoted):
    # Every model's persistence reference is the baseline's; ensembles average the seed outputs.
    results, index, _ = promoted
    base = index["baselines"]
    assert set(base) == {"persistence", "ridge"} and np.isfinite(base["ridge"]["mse"])
    for model in index["models"]:
        for s in model["seeds"]:
            assert s["test"]["naive_mse"] == base["persistence"]["mse"]
    out = results / NAME / "models/1"
    seeds = [pd.read_parquet(out / f"seed{k}/predictions.parquet") for k in (0, 1)]
    seeds = [s[s.split == "test"].reset_index(drop=True) for s in seeds]
    ensemble = pd.read_parquet(out / "predictions.parquet")
    mean = (seeds[0].predicted_close + seeds[1].predicted_close) / 2
    assert np.allclose(ensemble.predicted_close, mean, rtol=0, atol=1e-12)
    assert index["ensemble"]["ranks"] == [1, 2]


def test_predict_cli_reproduces_the_saved_test_predictions(promoted, tmp_path):
    # predict on a seed folder repeats that run's saved test predictions exactly; a rank folder its ensemble.
    results, _, _ = promoted
    out = results / NAME / "models/1"
    for model, saved_file in (
        (out / "seed1", out / "seed1/predictions.parquet"),
        (out, out / "predictions.parquet"),
    ):
        target = tmp_path / f"{model.name}.parquet"
        assert predict_main(["--model", str(model), "--out", str(target)]) == 0
        saved = pd.read_parquet(saved_file)
        saved = saved[saved.split == "test"].set_index("timestamp")
        fresh = pd.read_parquet(target).loc[saved.index]
        assert np.array_equal(fresh.predicted_close.to_numpy(), saved.predicted_close.to_numpy())


def test_chosen_model_is_registered_in_mlflow_without_pickles(promoted):
    # The rank-1 ensemble is logged in its own run, nested under the sweep's parent run
    # (which keeps the end time the sweep gave it), with test metrics, and registered.
    results, index, _ = promoted
    info = index["chosen"]["mlflow"]
    client = MlflowClient(tracking_uri=default_tracking_uri(results))
    version = client.get_model_version(info["registered_model"], str(info["version"]))
    assert version.run_id == info["run_id"] and version.source == info["model_uri"]
    run = client.get_run(info["run_id"])
    assert run.data.metrics["test_mse"] == pytest.approx(index["chosen"]["test"]["mse"])
    assert "persistence_test_mse" in run.data.metrics
    assert run.data.tags["verdict"] == index["chosen"]["verdict"]  # the same words as the report
    assert run.data.tags["mlflow.note.content"] == index["chosen"]["verdict"]
    dm = next(c for c in index["chosen"]["comparisons"] if c["baseline"] == "ridge")
    assert run.data.metrics["p_value_vs_ridge"] == pytest.approx(dm["p_value"])
    assert run.data.metrics["test_trading_sharpe"] == pytest.approx(
        index["trading"]["model"]["sharpe"]
    )
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.run_name == NAME and parent.info.run_id == PARENT_BEFORE["run_id"]
    assert parent.info.end_time == PARENT_BEFORE["end_time"]  # promotion did not reopen it
    assert parent.info.status == "FINISHED"
    # models-from-code: the model is the code file and its artifacts, never a pickle
    files = _artifact_files(default_tracking_uri(results), info["model_uri"])
    assert "pyfunc_model.py" in files and "artifacts/1/seed0/model.pt" in files
    assert not any(p.endswith((".pkl", ".pickle", "python_model.pkl")) for p in files)


def _artifact_files(uri: str, model_uri: str) -> list[str]:
    client = MlflowClient(tracking_uri=uri)
    model = client.get_logged_model(model_uri.removeprefix("models:/"))
    local = Path(model.artifact_location.removeprefix("file://"))
    return [str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()]


def test_the_registered_version_says_what_the_test_part_said(promoted):
    # Tags and description of the version: the verdict, each baseline's outcome with its
    # skill and p, the sweep, its data and fingerprint, the test range, the CV score; and
    # the alias its verdict earns (champion only if it beats every baseline).
    results, index, lines = promoted
    info, chosen = index["chosen"]["mlflow"], index["chosen"]
    client = MlflowClient(tracking_uri=default_tracking_uri(results))
    version = client.get_model_version(info["registered_model"], str(info["version"]))
    tags, sweep = version.tags, read_sweep(results / NAME)
    assert tags["verdict"] == chosen["verdict"]
    for c in (c for c in chosen["comparisons"] if c["decides"]):
        assert tags[f"vs_{c['baseline']}"].startswith(f"{c['outcome']}: {c['effect']}, p ")
    assert tags["sweep"] == NAME and tags["data_source"] == "built-in"
    assert tags["data_fingerprint"] == sweep["data_fingerprint"].strip()
    data = index["data"]
    assert tags["test_range"] == f"{data['test_first_time']} .. {data['test_last_time']}"
    cv = index["models"][0]["cv_objective"]
    assert tags["cv_score"].startswith(f"mse_ratio {cv:.5g} (skill {1 - cv:+.4f})")
    assert chosen["verdict"] in version.description and NAME in version.description
    beats = all(c["outcome"] == "better" for c in chosen["comparisons"] if c["decides"])
    alias = "champion" if beats else "candidate"
    assert info["alias"] == alias and version.aliases == [alias]
    assert tags["beats_baselines"] == str(beats).lower()
    assert tags["iu_p"] == fmt_p(chosen["iu_p"])  # the intersection-union p of the verdict
    # the last line of the promotion says what happened
    assert lines[-1].startswith(
        f"MLflow: registered version {info['version']} of 'lstm-{NAME}' as {alias}: "
    )


def test_pyfunc_model_from_the_registry_forecasts_as_predict_does(promoted, tmp_path):
    # mlflow.pyfunc.load_model("models:/lstm-<sweep>@<alias>").predict(bars) returns the
    # forecasts of `python -m orchestrator.predict` for the same bars, bar for bar; the
    # timestamp travels as a column (the signature's first input).
    import mlflow

    results, index, _ = promoted
    info = index["chosen"]["mlflow"]
    bars = make_bars(2000, seed=0)
    file = tmp_path / "bars.parquet"
    bars.reset_index().to_parquet(file, index=False)
    out = tmp_path / "p.parquet"
    model = results / NAME / "models/1"
    assert predict_main(["--model", str(model), "--data", str(file), "--out", str(out)]) == 0
    expected = pd.read_parquet(out).reset_index()
    mlflow.set_tracking_uri(default_tracking_uri(results))
    try:
        loaded = mlflow.pyfunc.load_model(f"models:/lstm-{NAME}@{info['alias']}")
        got = loaded.predict(bars.reset_index())
    finally:
        mlflow.set_tracking_uri(None)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) > 1000
    for col in ("timestamp", "target_timestamp"):  # MLflow gives ns, the file holds us
        expected[col] = expected[col].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    inputs = loaded.metadata.get_input_schema().input_names()
    assert inputs == ["timestamp", "open", "high", "low", "close", "volume"]


def test_champion_only_for_a_model_that_beats_every_baseline(promoted):
    # The alias follows the chosen model's verdict: a model better than every baseline
    # becomes champion (the alias moves to it from the previous champion); one that is not
    # becomes candidate and the champion stays where it was. --no-register registers nothing.
    import copy

    results, index, _ = promoted
    uri = default_tracking_uri(results)
    client = MlflowClient(tracking_uri=uri)
    name = "lstm-aliases"

    def judged(outcome: str) -> dict:
        out = copy.deepcopy(index)
        for c in out["chosen"]["comparisons"]:
            if c["decides"]:
                c["outcome"] = outcome
        return out

    def log(idx: dict, **kw) -> dict:
        return log_final_model(
            uri,
            experiment=EXPERIMENT,
            sweep_name=NAME,
            registered_name=name,
            model_dir=results / NAME / "models/1",
            index=idx,
            log=lambda *_: None,
            **kw,
        )

    first, second = log(judged("better")), log(judged("better"))
    assert first["alias"] == second["alias"] == "champion"
    assert client.get_model_version_by_alias(name, "champion").version == second["version"]
    assert client.get_model_version(name, str(first["version"])).aliases == []
    third = log(judged("no_difference"))
    assert third["alias"] == "candidate"
    assert client.get_model_version_by_alias(name, "champion").version == second["version"]
    assert registry_line(third, judged("no_difference")["chosen"]).startswith(
        f"MLflow: registered version {third['version']} of '{name}' as candidate: it does "
        "not beat persistence and ridge"
    )
    before = len(client.search_model_versions(f"name = '{name}'"))
    unregistered = log(judged("better"), register=False)
    assert "version" not in unregistered and unregistered["model_uri"].startswith("models:/")
    assert len(client.search_model_versions(f"name = '{name}'")) == before


def test_a_nan_forecast_stops_promotion_before_anything_is_written_or_registered(
    promoted, monkeypatch, capsys
):
    # One NaN in a model's test forecasts once gave "beats the baselines, p < 0.0001". Now it
    # is one line naming the model, its rank and the row, exit 2, and the earlier promotion's
    # files and registry stay as they were.
    results, index, _ = promoted
    out = results / NAME
    before = (out / "promoted.json").read_text()
    models = sorted((p, p.stat().st_mtime_ns) for p in (out / "models").rglob("*"))
    client = MlflowClient(tracking_uri=default_tracking_uri(results))
    versions = len(client.search_model_versions(f"name='lstm-{NAME}'"))
    real = evaluation.predict

    def one_nan(run, features):  # the fault: one test forecast becomes NaN
        frame = real(run, features)
        column = next(c for c in frame.columns if c.startswith("predicted_"))
        frame.loc[frame.index[-5], column] = np.nan  # a test anchor near the end
        return frame

    monkeypatch.setattr(evaluation, "predict", one_nan)
    argv = ["--name", NAME, "--results-dir", str(results), "--top-k", "1", "--seeds", "1"]
    assert promote_main([*argv, "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: rank 1 seed 0 (trial ")
    assert "test forecasts are NaN/inf, the first for table row" in err
    assert (out / "promoted.json").read_text() == before
    assert sorted((p, p.stat().st_mtime_ns) for p in (out / "models").rglob("*")) == models
    assert len(client.search_model_versions(f"name='lstm-{NAME}'")) == versions
    assert not list(out.glob(".models-partial-*"))


def test_show_of_a_promoted_sweep_gives_its_verdict_and_registered_version(promoted):
    # Rule: `python -m orchestrator.show --name <sweep>` after promotion ends with the
    # chosen model's verdict and what the registry holds.
    from orchestrator.show import describe_sweep

    results, index, _ = promoted
    text = "\n".join(describe_sweep(results / NAME))
    assert f"Verdict: {index['chosen']['verdict']}" in text
    info = index["chosen"]["mlflow"]
    assert f"Registered: lstm-{NAME} version {info['version']} as {info['alias']}" in text
    assert "Not promoted yet" not in text and "baseline:ridge" in text


def test_report_is_one_self_contained_file(promoted):
    # report.html shows the verdicts, the comparison table and inline PNG plots, no outside files.
    results, index, _ = promoted
    page = (results / NAME / "report.html").read_text()
    assert index["chosen"]["verdict"] in html.unescape(page)
    assert "baseline: persistence" in page and "Fold audit" in page
    for title in (
        "Tests of the chosen model against each baseline",
        "How optimistic is the CV score?",
        "Trading view of the test part",
        "Trading view: equity curves",
    ):
        assert f"<h2>{title}</h2>" in page
    equity = page.split("<h2>Trading view: equity curves</h2>")[1].split("<h2>")[0]
    assert 'src="data:image/png;base64,' in equity  # the plot, not a 'not available' note
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 6
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    assert not re.search(r'(src|href)="(?!data:)', page)
    md = (results / NAME / "report.md").read_text()
    assert "| baseline: persistence |" in md
    assert index["chosen"]["verdict"] in md and "not a backtester" in md


def test_legends_of_the_promotion_plots_cover_no_curve(promoted):
    # Rule: the loss curves', equity curves' and predictions' legends sit beside or below
    # their axes, never on a curve.
    from orchestrator.promotion import plots
    from tests.promotion.test_report import legend_overlaps

    results, index, _ = promoted
    out = results / NAME
    for fig in (
        plots.loss_plot(out, index),
        plots.equity_plot(out, index),
        plots.prediction_plot(out, index),
    ):
        assert fig.legends or any(ax.get_legend() for ax in fig.axes)
        assert legend_overlaps(fig) == []


@pytest.mark.slow
def test_promoted_report_in_chromium_has_no_table_wider_than_the_page(promoted, tmp_path):
    # Rule: the whole report of a promotion (tests, test table, leaderboard, both audits)
    # fits a 1400 px browser window.
    from tests.browser import has_browser
    from tests.promotion.test_report import assert_fits_in_chromium

    if not has_browser():
        pytest.skip("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    results, _, _ = promoted
    assert_fits_in_chromium(results / NAME / "report.html", tmp_path)


def test_report_of_an_older_promotion_says_what_is_missing(promoted, tmp_path):
    # A promoted.json from before verdict tests (no comparisons, CV optimism or trading view)
    # still gives a report; each missing section says why instead of failing.
    results, index, _ = promoted
    old = tmp_path / NAME
    old.mkdir()
    for name in ("sweep.json", "leaderboard.parquet", "fold_audit.csv"):
        (old / name).write_bytes((results / NAME / name).read_bytes())
    legacy = {k: v for k, v in index.items() if k not in ("cv_optimism", "trading")}
    legacy["chosen"] = {k: v for k, v in index["chosen"].items() if k != "comparisons"}
    (old / "promoted.json").write_text(json.dumps(legacy))
    md = write_report(old)[1].read_text()
    for title in ("Tests of the chosen model", "How optimistic", "Trading view of the test part"):
        section = md.split(f"## {title}")[1].split("## ")[0]
        assert "written by an older version" in section
    assert index["chosen"]["verdict"] in md


def test_promotion_refuses_to_change_data_settings():
    # --set may change training settings, not how the data is cut: that would move the test part.
    with pytest.raises(ConfigError, match=r"--set seq_len \(sequence_length\).*run a new sweep"):
        PromoteSpec(name="x", overrides={"seq_len": 32})  # the users' alias is refused too
    assert PromoteSpec(name="x", overrides={"patience": 9}).overrides == {"patience": 9}


def test_a_negative_trading_cost_is_refused_before_any_work(tmp_path, capsys):
    # --cost-bps must be a number >= 0: one line, exit 2, nothing written.
    with pytest.raises(ConfigError, match="--cost-bps must be a number >= 0"):
        PromoteSpec(name="x", cost_bps=-1.0)
    code = promote_main(["--name", "x", "--results-dir", str(tmp_path), "--cost-bps", "-1"])
    assert code == 2 and capsys.readouterr().err.startswith("error: --cost-bps")
    assert not any(tmp_path.iterdir())


def test_promote_cli_without_a_sweep_prints_one_line_and_exits_2(tmp_path, capsys):
    # An unknown sweep name is one clear line on stderr and exit code 2, no traceback.
    assert promote_main(["--name", "nope", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no sweep at" in err and "sweep.json" in err


def test_changed_data_is_refused(tmp_path):
    # If the data no longer gives the sweep's holdout, promotion stops instead of testing on other rows.
    out = _hand_sweep(tmp_path)
    sweep = read_sweep(out)
    sweep["test_first_row"] = load_holdout(out).test_first_row
    assert load_holdout(out, sweep=sweep).test_first_row == sweep["test_first_row"]
    with pytest.raises(ConfigError, match="changed since the sweep"):
        load_holdout(out, sweep={**sweep, "n_bars": sweep["n_bars"] + 500})


def test_classification_is_judged_against_majority_class_and_logistic_regression(tmp_path):
    # Classification baselines on the test rows: the training majority class and a logistic model.
    out = _hand_sweep(tmp_path, task="classification", overrides={"horizon": 5, "threshold": 0.005})
    data = load_holdout(out)
    guard = HoldoutGuard(data)
    table = guard.training_table()
    models = fit_baselines(table, data.base)
    guard.finish_training()
    test = guard.test_part()
    forecasts = baseline_forecasts(models, test)
    scores = baseline_scores(forecasts, models, test)
    assert list(scores) == ["majority class", "logistic regression"]
    truth = test.truth()
    # The majority class of the final models' training labels (train+validation).
    labels = table.targets.values[table.refit_idx].astype(int)
    assert models.majority.argmax() == np.bincount(labels, minlength=3).argmax()
    assert scores["majority class"]["accuracy"] == pytest.approx(
        np.mean(truth == models.majority.argmax())
    )
    logistic = scores["logistic regression"]
    assert 0 <= logistic["macro_f1"] <= 1 and logistic["C"] > 0


def test_return_targets_are_judged_against_the_training_mean(tmp_path):
    # log_return's naive forecast is its mean over the final models' training anchors, and
    # a mixed multi-output target names what each target is judged against.
    out = _hand_sweep(tmp_path, overrides={"target_col": "log_return"})
    data = load_holdout(out)
    guard = HoldoutGuard(data)
    table = guard.training_table()
    models = fit_baselines(table, data.base)
    guard.finish_training()
    test = guard.test_part()
    forecasts = baseline_forecasts(models, test)
    assert list(forecasts) == ["training mean", "ridge"]
    mean = table.targets.values[table.refit_idx].mean(axis=0)
    assert np.allclose(forecasts["training mean"], mean)
    scores = baseline_scores(forecasts, models, test)
    assert scores["training mean"]["skill"] == 0.0
    assert "directional_accuracy" not in scores["training mean"]
    assert naive_name(["close", "log_return"]) == (
        "naive (persistence for close, training mean for log_return)"
    )


def test_unreachable_mlflow_warns_and_promotion_goes_on(promoted):
    # A dead tracking server costs one line, never the promotion.
    results, index, _ = promoted
    lines: list[str] = []
    out = log_final_model(
        "http://127.0.0.1:9",
        experiment=EXPERIMENT,
        sweep_name=NAME,
        registered_name="never",
        model_dir=results / NAME / "models/1",
        index=index,
        log=lines.append,
    )
    assert out is None
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_promoting_again_says_the_test_part_was_read_before_and_keeps_the_history(
    promoted, tmp_path
):
    # The test part is meant to be read once: a second promotion of the same sweep (other
    # top-k, seeds or settings) used to overwrite promoted.json with test_reads 1 and no
    # trace of the first read. Now it warns before training and the record keeps the history.
    results, first, _ = promoted
    copy = tmp_path / "results" / NAME
    copy.mkdir(parents=True)
    for name in ("sweep.json", "leaderboard.parquet", "fold_audit.csv", "promoted.json"):
        (copy / name).write_bytes((results / NAME / name).read_bytes())
    lines: list[str] = []
    spec = PromoteSpec(name=NAME, results_dir=str(tmp_path / "results"), top_k=1, seeds=1)
    index = promote(replace(spec, epochs=2), log=lines.append)
    warning = next(line for line in lines if line.startswith("warning: the test part"))
    assert f"by 1 earlier promotion(s) ({first['created'].replace('T', ' ')})" in warning
    assert lines.index(warning) < next(i for i, ln in enumerate(lines) if "stays closed" in ln)
    assert index["holdout_guard"]["test_reads_by_promotions"] == 2
    (earlier,) = index["earlier_promotions"]
    assert earlier["created"] == first["created"] and earlier["top_k"] == 2
    assert earlier["verdict"] == first["chosen"]["verdict"]
    assert "this test part was read before, by 1 earlier promotion" in (
        copy / "report.md"
    ).read_text()
    assert first["holdout_guard"]["test_reads_by_promotions"] == 1  # the fixture's first read
    assert first["earlier_promotions"] == []


@pytest.mark.slow
def test_two_ddp_workers_train_every_job(promoted, tmp_path):
    # With --workers 2 the same TorchTrainer runs DDP: every job still yields one saved run.
    results, _, _ = promoted
    copy = tmp_path / "results" / NAME
    copy.mkdir(parents=True)
    for name in ("sweep.json", "leaderboard.parquet", "fold_audit.csv"):
        (copy / name).write_bytes((results / NAME / name).read_bytes())
    index = promote(
        PromoteSpec(
            name=NAME, results_dir=str(tmp_path / "results"), top_k=1, seeds=2, workers=2, epochs=3
        ),
        log=lambda *_: None,
    )
    assert index["workers"] == 2
    assert [s["status"] for s in index["models"][0]["seeds"]] == ["ok", "ok"]
    for k in (0, 1):
        assert (copy / f"models/1/seed{k}/model.pt").is_file()
    assert index["holdout_guard"]["test_read_after_training"]


@pytest.mark.slow
def test_the_two_documented_commands_print_progress_without_ray_noise(tmp_path):
    """docs/promotion.md's commands, as a user types them: the workers' progress lines reach
    the terminal, Ray's own warnings (a State API the local Ray runs without) do not."""
    import subprocess
    import sys

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout + done.stderr

    run("orchestrator.tune", "--smoke-test", "--name", "demo", "--no-dashboard")
    out = run("orchestrator.promote", "--name", "demo", "--seeds", "2", "--epochs", "8")
    assert "promote: rank 1 seed 0: best epoch" in out
    assert "promote: rank 1 seed 1: best epoch" in out
    assert "Probability of backtest overfitting" in out
    assert "Failed to query Ray Train Controller" not in out
    assert "Started a local Ray instance" not in out
    # Ray's core workers' lines stay in Ray's log files (as in a sweep)
    assert "core_worker.cc" not in out and "PreemptionWatcher" not in out
    assert (
        out.strip().splitlines()[-1].startswith("MLflow: registered version 1 of 'lstm-demo' as ")
    )
    assert (tmp_path / "results" / "demo" / "promoted.json").is_file()
