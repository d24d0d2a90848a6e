"""What a trial reports inside a fold (orchestrator/sweep/trial_reports.py), on real fits."""

from __future__ import annotations

import math

import pytest

from orchestrator.sweep import trial_reports
from orchestrator.sweep.progress import duration, progress_line
from orchestrator.sweep.schedulers import HEARTBEAT, RungPlan, asha_milestones
from orchestrator.sweep.trial_reports import FoldReporter, ReportClock
from tests.training.test_trainer import bars_fold, tiny
from trainables.training.trainer import fit


def _reports(monkeypatch, *, first: float, every: float, rungs, epochs: int = 4):
    monkeypatch.setattr(trial_reports, "FIRST_PROGRESS_S", first)
    monkeypatch.setattr(trial_reports, "PROGRESS_EVERY_S", every)
    sent: list[tuple[dict, object]] = []
    cfg = tiny(epochs=epochs, batch_size=32)
    fold = bars_fold(600)
    reporter = FoldReporter(
        cfg,
        fold,
        0,
        send=lambda extra, partial: sent.append((extra, partial)),
        plan=RungPlan(rungs),
        clock=ReportClock(),
    )
    fit(cfg, fold, log=None, on_epoch=reporter.on_epoch, on_batch=reporter.on_batch)
    return sent, fold


def test_estimates_only_at_the_rungs_and_no_progress_report_in_a_short_fold(monkeypatch):
    # ASHA's default rungs (a quarter and half way into fold 0): two estimates out of four
    # epochs, each with the fold's best early-stopping score so far; the fold took less than
    # the first progress report's wait, so no progress report.
    sent, _ = _reports(monkeypatch, first=600, every=600, rungs=asha_milestones(0.25, 5, 2))
    assert [extra["epoch"] for extra, _ in sent] == [2, 3]  # progress 0.4 and 0.6
    assert all(not extra.get(HEARTBEAT) for extra, _ in sent)
    mse, naive = sent[-1][1]
    assert len(mse) == len(naive) == 1 and mse[0] > 0 < naive[0]


def test_every_epoch_for_the_median_rule_and_none_without_a_scheduler(monkeypatch):
    every, _ = _reports(monkeypatch, first=600, every=600, rungs=None)
    assert [extra["epoch"] for extra, _ in every] == [1, 2, 3, 4]
    none, _ = _reports(monkeypatch, first=600, every=600, rungs=[])
    assert none == []


def test_progress_reports_say_fold_epoch_samples_per_second_and_eta(monkeypatch):
    # Due at once (waits of 0): a progress report after every batch, inside epochs too,
    # with a rate and an ETA that shrinks as the fold goes on.
    sent, fold = _reports(monkeypatch, first=0.0, every=0.0, rungs=[], epochs=2)
    beats = [extra for extra, _ in sent if extra.get(HEARTBEAT)]
    per_epoch = math.ceil(len(fold.train_idx) / 32)
    assert len(beats) == 2 * per_epoch  # one per batch
    assert {b["fold"] for b in beats} == {0} and {b["epochs"] for b in beats} == {2}
    assert [b["epoch"] for b in beats] == [1] * per_epoch + [2] * per_epoch
    assert beats[0]["epoch_done"] < 1 and beats[per_epoch - 1]["epoch_done"] == 1
    assert all(b["samples_per_s"] > 0 for b in beats)
    assert beats[-1]["fold_eta_s"] == pytest.approx(0, abs=1e-6)
    assert beats[0]["fold_eta_s"] > beats[per_epoch]["fold_eta_s"] > 0
    assert all(0 <= b["progress"] < 1 for b in beats)


def test_the_progress_line_a_user_reads():
    result = {
        HEARTBEAT: True,
        "fold": 0,
        "epoch": 1,
        "epochs": 20,
        "epoch_done": 0.38,
        "samples_per_s": 12345.6,
        "fold_eta_s": 126.0,
    }
    line = progress_line("ab12cd34", result, 5)
    assert line == (
        "trial ab12cd34 fold 1/5 epoch 1/20 (38%): 12,346 samples/s, fold ETA <= 2.1 min"
    )
    assert [duration(s) for s in (45, 126, 7200, math.inf)] == ["45 s", "2.1 min", "2.0 h", "?"]
