"""MLflow parent/child runs of a sweep, against a real sqlite store in tmp_path."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking.sweep_runs import (
    SweepTracker,
    default_tracking_uri,
    find_child_runs,
    ui_hint,
)

EXPERIMENT = "sweeps"
SWEEP = "sweep-a"
SPEC = {"space": "small", "cv": {"scheme": "walk_forward", "n_splits": 3}, "trials": 2, "seed": 0}
FOLDS = [
    {"val_loss": 0.5, "val_acc": 0.6},
    {"val_loss": 0.4, "val_acc": 0.7},
    {"val_loss": 0.3, "val_acc": 0.8},
]


class Lines:
    """Collects what the tracker says, in place of print."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Creating the sqlite schema takes about a second; do it once and copy the file per test.
    results = tmp_path_factory.mktemp("template")
    MlflowClient(tracking_uri=default_tracking_uri(results)).search_experiments()
    return results / "mlflow.db"


@pytest.fixture
def uri(tmp_path: Path, empty_store: Path) -> str:
    (tmp_path / "results").mkdir()
    shutil.copy(empty_store, tmp_path / "results" / "mlflow.db")
    return default_tracking_uri(tmp_path / "results")


def _trial(tracker: SweepTracker, trial_id: str, **overrides: object) -> str | None:
    kwargs: dict = {
        "params": {"hidden_size": 32, "lr": 1e-3, "layers": [1, 2]},
        "fold_metrics": FOLDS,
        "summary": {"val_loss_mean": 0.4, "val_loss_std": 0.0816},
        "status": "TERMINATED",
    }
    kwargs.update(overrides)
    return tracker.log_trial(trial_id, **kwargs)


def _children_by_name(uri: str) -> dict:
    return {r.info.run_name: r for r in find_child_runs(uri, EXPERIMENT, SWEEP)}


def test_default_uri_is_an_absolute_sqlite_file_that_mlflow_ui_opens(tmp_path: Path) -> None:
    # The default store is <results_dir>/mlflow.db, and the hint names that exact URI.
    uri = default_tracking_uri(tmp_path / "results")
    assert uri == f"sqlite:///{(tmp_path / 'results').resolve().as_posix()}/mlflow.db"
    assert ui_hint(uri) == f"mlflow ui --backend-store-uri {uri}"


def test_parent_and_children_carry_params_fold_series_summary_and_status(uri: str) -> None:
    # One parent with the sweep spec; one child per trial, linked by mlflow.parentRunId.
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as tracker:
        _trial(tracker, "trial_0")
        _trial(tracker, "trial_1", status="PRUNED")

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.run_name == SWEEP and parent.info.status == "FINISHED"
    assert json.loads(parent.data.params["cv"]) == SPEC["cv"]
    assert parent.data.params["trials"] == "2"

    children = _children_by_name(uri)
    assert sorted(children) == ["trial_0", "trial_1"]
    child = children["trial_0"]
    assert child.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert child.data.tags["status"] == "TERMINATED" and child.info.status == "FINISHED"
    assert child.data.params["hidden_size"] == "32"
    assert json.loads(child.data.params["layers"]) == [1, 2]
    assert child.data.metrics["val_loss_mean"] == pytest.approx(0.4)
    assert child.data.metrics["fold2_val_acc"] == pytest.approx(0.8)
    history = client.get_metric_history(child.info.run_id, "fold_val_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 0.5),
        (1, 0.4),
        (2, 0.3),
    ]
    assert children["trial_1"].data.tags["status"] == "PRUNED"
    assert children["trial_1"].info.status == "FINISHED"


@pytest.mark.parametrize("status", ["ERROR", "failed"])
def test_a_broken_trial_is_a_failed_child_with_its_reason(uri: str, status: str) -> None:
    # status ERROR/failed (any case) ends the child FAILED and keeps the reason as a tag.
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as tracker:
        _trial(tracker, "trial_0", fold_metrics=FOLDS[:1], status=status, reason="loss is NaN")

    child = _children_by_name(uri)["trial_0"]
    assert child.info.status == "FAILED"
    assert child.data.tags["failure_reason"] == "loss is NaN"


def test_a_metric_that_is_not_a_number_is_left_out_with_a_note(uri: str) -> None:
    # A non-numeric metric value is skipped and reported; the rest of the trial is logged.
    lines = Lines()
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC, log=lines) as t:
        _trial(t, "trial_0", summary={"val_loss_mean": 0.4, "best_epoch": "n/a"})
    child = _children_by_name(uri)["trial_0"]
    assert "best_epoch" not in child.data.metrics
    assert child.data.metrics["val_loss_mean"] == pytest.approx(0.4)
    assert lines.lines == ["MLflow metric 'best_epoch'='n/a' is not a number; not logged"]


def test_an_exception_in_the_sweep_fails_the_parent(uri: str) -> None:
    # An error escaping the with-block ends the parent FAILED (and is not swallowed).
    with (
        pytest.raises(ValueError, match="boom"),
        SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as tracker,
    ):
        raise ValueError("boom")
    assert MlflowClient(tracking_uri=uri).get_run(tracker.parent_run_id).info.status == "FAILED"


def test_ctrl_c_kills_the_parent(uri: str) -> None:
    # KeyboardInterrupt ends the parent KILLED.
    with (
        pytest.raises(KeyboardInterrupt),
        SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as tracker,
    ):
        raise KeyboardInterrupt
    assert MlflowClient(tracking_uri=uri).get_run(tracker.parent_run_id).info.status == "KILLED"


def test_an_over_long_param_is_truncated_with_a_note(uri: str) -> None:
    # A param over MLflow's 6000-character limit is cut, marked, and reported, not fatal.
    lines = Lines()
    spec = {**SPEC, "space": {"choices": list(range(3000))}}
    with SweepTracker(
        uri, experiment=EXPERIMENT, run_name=SWEEP, params=spec, log=lines
    ) as tracker:
        assert tracker.enabled
    value = MlflowClient(tracking_uri=uri).get_run(tracker.parent_run_id).data.params["space"]
    assert len(value) == 6000 and "truncated" in value
    assert any("'space'" in line and "truncated" in line for line in lines.lines)


def test_summary_artifacts_are_stored_on_the_parent(uri: str, tmp_path: Path) -> None:
    # log_summary puts metrics and files (leaderboard, best config) on the parent run.
    board = tmp_path / "leaderboard.csv"
    board.write_text("trial,val_loss_mean\ntrial_0,0.4\n")
    best = tmp_path / "best_config.yaml"
    best.write_text("hidden_size: 32\n")
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as tracker:
        tracker.log_summary({"best_val_loss": 0.4}, [board, best])

    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(tracker.parent_run_id).data.metrics["best_val_loss"] == 0.4
    names = sorted(f.path for f in client.list_artifacts(tracker.parent_run_id))
    assert names == ["best_config.yaml", "leaderboard.csv"]
    local = client.download_artifacts(tracker.parent_run_id, "best_config.yaml", str(tmp_path))
    assert Path(local).read_text() == "hidden_size: 32\n"


def test_an_unreachable_server_warns_once_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # Nothing listens on port 9: one warning line, then every call is a quiet no-op, fast.
    lines = Lines()
    start = time.monotonic()
    with SweepTracker(
        "http://127.0.0.1:9", experiment=EXPERIMENT, run_name=SWEEP, params=SPEC, log=lines
    ) as tracker:
        assert _trial(tracker, "trial_0") is None
        tracker.log_summary({"best_val_loss": 0.4}, [tmp_path])
    assert time.monotonic() - start < 15
    assert not tracker.enabled
    assert len(lines.lines) == 1
    assert lines.lines[0].startswith("MLflow tracking at http://127.0.0.1:9 is unreachable (")
    assert lines.lines[0].endswith("; the sweep goes on without tracking")


def test_resume_reuses_the_parent_and_skips_logged_trials(uri: str) -> None:
    # A resumed sweep writes into the same parent and never logs a trial twice.
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as first:
        _trial(first, "trial_0")

    with SweepTracker(
        uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC, resume=True
    ) as second:
        assert second.parent_run_id == first.parent_run_id
        assert _trial(second, "trial_0") is None
        assert _trial(second, "trial_1") is not None

    children = find_child_runs(uri, EXPERIMENT, SWEEP)
    assert sorted(r.info.run_name for r in children) == ["trial_0", "trial_1"]
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(first.parent_run_id).info.status == "FINISHED"


def test_without_resume_a_new_parent_is_started(uri: str) -> None:
    # resume=False never writes into an earlier sweep's parent run.
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as first:
        _trial(first, "trial_0")
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as second:
        pass
    assert second.parent_run_id != first.parent_run_id
    assert find_child_runs(uri, EXPERIMENT, SWEEP) == []


def test_resume_relogs_a_trial_whose_logging_was_cut_short(uri: str) -> None:
    # A child left RUNNING by a crashed driver is replaced on resume, not kept as a duplicate.
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as first:
        pass
    client = MlflowClient(tracking_uri=uri)
    stale = client.create_run(
        first.experiment_id,
        run_name="trial_0",
        tags={"mlflow.parentRunId": first.parent_run_id, "trial_id": "trial_0"},
    )

    with SweepTracker(
        uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC, resume=True
    ) as second:
        assert _trial(second, "trial_0") is not None

    children = find_child_runs(uri, EXPERIMENT, SWEEP)
    assert [(r.info.run_name, r.info.status) for r in children] == [("trial_0", "FINISHED")]
    assert children[0].info.run_id != stale.info.run_id


def test_a_store_failure_mid_sweep_warns_once_and_stops_tracking(uri: str) -> None:
    # The parent run deleted under a running sweep: one warning, then no-ops, no exception.
    lines = Lines()
    with SweepTracker(
        uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC, log=lines
    ) as tracker:
        MlflowClient(tracking_uri=uri).delete_run(tracker.parent_run_id)
        tracker.log_summary({"best_val_loss": 0.4})
        assert _trial(tracker, "trial_0") is None
    assert not tracker.enabled
    assert len(lines.lines) == 1
    assert lines.lines[0].startswith(f"MLflow tracking at {uri} failed while logging the sweep")


def test_background_tracker_writes_every_call_in_order_on_its_own_thread(uri):
    # The sweep's tracker (orchestrator/tracking/writer_thread.py): opened on its own thread, each
    # call queued and written there in order; leaving the block waits for every write and
    # closes the parent run as SweepTracker does (KILLED after Ctrl-C).
    import pickle
    import threading

    from orchestrator.tracking.writer_thread import BackgroundTracker

    threads = []

    def make():
        threads.append(threading.current_thread().name)
        return SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC, log=Lines())

    with BackgroundTracker(make) as tracker:
        for k in range(3):
            _trial(tracker, f"t{k}")
        _trial(tracker, "t1")  # a second call for a logged trial is skipped, as SweepTracker does
        pickle.loads(pickle.dumps(tracker))  # Tune pickles callbacks: a copy without a thread
    assert threads == ["mlflow-tracker"] and tracker.uri == uri
    # the sweep's MLflow link names its experiment (orchestrator/sweep/results.py)
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(EXPERIMENT)
    assert tracker.experiment_id == experiment.experiment_id
    runs = find_child_runs(uri, EXPERIMENT, SWEEP)
    assert sorted(r.info.run_name for r in runs) == ["t0", "t1", "t2"]
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    with pytest.raises(KeyboardInterrupt), BackgroundTracker(make):
        raise KeyboardInterrupt
    parents = client.search_runs(
        [client.get_experiment_by_name(EXPERIMENT).experiment_id],
        filter_string=f"tags.mlflow.runName = '{SWEEP}'",
        order_by=["attributes.start_time DESC"],
    )
    assert parents[0].info.status == "KILLED"


def test_fold_indices_and_settings_are_not_metrics(uri: str) -> None:
    # Rule: a fold's index (the step says it) and the batch size a fold used are not
    # measurements: no fold0_fold, fold_fold or fold0_batch_size metric; the batch size is
    # a param (one when every fold used the same).
    from orchestrator.records.leaderboard import TrialRecord
    from orchestrator.sweep.progress import log_record

    folds = [
        {"fold": k, "mse_ratio": 0.9 + k / 100, "batch_size": 64, "epochs": 3, "seconds": 1.5}
        for k in range(2)
    ]
    with SweepTracker(uri, experiment=EXPERIMENT, run_name=SWEEP, params=SPEC) as tracker:
        log_record(
            tracker,
            TrialRecord("t1", {"hidden_size": 16}, folds, "completed"),
            objective="mse_ratio",
        )
        mixed = [dict(folds[0]), {**folds[1], "batch_size": 128}]
        log_record(
            tracker,
            TrialRecord("t2", {"hidden_size": 8}, mixed, "completed"),
            objective="mse_ratio",
        )
    runs = _children_by_name(uri)
    metrics = runs["t1"].data.metrics
    assert not [m for m in metrics if m.endswith(("_fold", "_batch_size"))]
    assert metrics["fold1_mse_ratio"] == pytest.approx(0.91) and metrics["fold0_epochs"] == 3
    assert runs["t1"].data.params["batch_size_used"] == "64"
    assert runs["t2"].data.params["fold0_batch_size"] == "64"
    assert runs["t2"].data.params["fold1_batch_size"] == "128"
