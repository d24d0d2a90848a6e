"""What a trial tells Tune while a fold trains: the estimates a scheduler acts on, and how it
is doing.

Every ``tune.report`` is a round trip: the trial waits until the driver has taken the
result through the scheduler, the searcher, the loggers and every callback. So inside a
fold a trial reports only

* the estimates the scheduler can act on (``orchestrator.sweep.schedulers.RungPlan``): for ASHA
  the first estimate at or past each rung inside the fold, the very reports its rungs
  record (it ignores the others); every epoch's for the median rule, which reads them all;
  none without a scheduler. The estimate is the folds done pooled with the best score so
  far of the current fold on its early-stopping block, in the objective's measure (never
  on the fold's evaluation anchors), whichever epochs are reported;
* a progress report (``HEARTBEAT``: no scheduler or searcher reads it) once the trial has
  said nothing for ``FIRST_PROGRESS_S`` seconds, then at most every ``PROGRESS_EVERY_S``,
  from inside an epoch too: its fold, epoch, samples/s and the fold's ETA, for the line
  the driver prints. A trial whose folds take less than that prints only its fold lines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from orchestrator.stats.objective import running_objective
from orchestrator.sweep.schedulers import HEARTBEAT, RungPlan
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.prep.naive import naive_forecast

__all__ = ["FIRST_PROGRESS_S", "PROGRESS_EVERY_S", "FoldReporter", "ReportClock"]

FIRST_PROGRESS_S = 5.0  # a trial's first progress report, after this long without a report
PROGRESS_EVERY_S = 30.0  # later ones at most this often


class ReportClock:
    """When the trial last reported (anything), and whether it sent a progress report."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.progress_sent = False

    def progress_due(self, now: float) -> bool:
        wait = PROGRESS_EVERY_S if self.progress_sent else FIRST_PROGRESS_S
        return now - self.last >= wait

    def sent(self, now: float, *, progress: bool = False) -> None:
        self.last = now
        self.progress_sent = self.progress_sent or progress


def stop_naive(fold: FoldData) -> list[float]:
    """[T] the naive forecast's MSE on the fold's early-stopping block, original units."""
    stop = fold.stop_idx
    mean = np.nanmean(fold.y_raw[fold.train_idx], axis=0)
    naive = naive_forecast(fold.target_names, fold.now_raw[stop], mean)
    return [float(v) for v in np.mean((naive - fold.y_raw[stop]) ** 2, axis=0)]


class FoldReporter:
    """Fold ``k``'s reports (module doc). ``send(extra, partial)`` reports to Tune: the
    fields of ``extra`` over the trial's own, the current fold's best estimate ``partial``."""

    def __init__(
        self,
        cfg: TrainConfig,
        fold: FoldData,
        k: int,
        *,
        send: Callable[[dict, object], None],
        plan: RungPlan,
        clock: ReportClock,
    ) -> None:
        self.cfg, self.k, self.send, self.plan, self.clock = cfg, k, send, plan, clock
        self.classification = cfg.task == "classification"
        if not self.classification:
            self.scale2 = fold.scaler.scale_of(fold.target_names) ** 2
            self.naive = stop_naive(fold)
        self.best: tuple[float, object] | None = None  # (score for comparing, the partial)
        self.start = time.perf_counter()
        self.per_epoch = len(fold.train_idx)

    def on_epoch(self, rec) -> None:
        """After each epoch: the best estimate so far, reported if the scheduler acts on it."""
        estimate = self._estimate(rec)
        if estimate is None:
            return  # a non-finite score: no estimate this epoch
        if self.best is None or estimate[0] < self.best[0]:
            self.best = estimate
        # Strictly below k + 1: a fold's end (and, for the last fold, the scheduler's max_t)
        # is reached only by the fold-end report that records the fold's score.
        progress = self.k + rec.epoch / (self.cfg.epochs + 1)
        if self.plan.wants(progress):
            self.send({"progress": progress, "epoch": rec.epoch}, self.best[1])
            self.clock.sent(time.perf_counter())

    def on_batch(self, epoch: int, samples: int, per_epoch: int) -> None:
        """After each batch (``samples`` trained in ``epoch`` so far): a progress report when
        one is due."""
        now = time.perf_counter()
        if not self.clock.progress_due(now):
            return
        trained = (epoch - 1) * self.per_epoch + samples * self.per_epoch / max(per_epoch, 1)
        rate = trained / max(now - self.start, 1e-9)
        left = self.cfg.epochs * self.per_epoch - trained
        fraction = (epoch - 1) + samples / max(per_epoch, 1)
        extra = {
            HEARTBEAT: True,
            "fold": self.k,
            "epoch": epoch,
            "epochs": self.cfg.epochs,
            "epoch_done": samples / max(per_epoch, 1),
            "samples_per_s": rate,
            "fold_eta_s": left / rate if rate > 0 else math.inf,
            "progress": self.k + fraction / (self.cfg.epochs + 1),
        }
        self.send(extra, self.best[1] if self.best is not None else None)
        self.clock.sent(now, progress=True)

    def _estimate(self, rec) -> tuple[float, object] | None:
        """(score for comparing, the partial the objective pools) of this epoch, or None."""
        if self.classification:
            if rec.val_f1 is None or not math.isfinite(rec.val_f1):
                return None
            return -rec.val_f1, rec.val_f1
        if rec.val_mse is None or not all(math.isfinite(v) for v in rec.val_mse):
            return None
        mse = [float(v) for v in np.asarray(rec.val_mse) * self.scale2]
        return running_objective([], self.cfg.task, (mse, self.naive)), (mse, self.naive)
