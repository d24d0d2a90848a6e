"""What a sweep checks before any work, and what it undoes when it fails before its trials.

``check_request`` runs first, before data, Ray or any folder: the name stays inside
``--results-dir`` (orchestrator/records/names.py), the results folder is writable with enough free
space (trainables/disk.py), and on a local Ray one trial fits the machine (CPUs, GPUs).

``StartGuard`` wraps the rest. A sweep that fails after its record was written but before
its first trial started leaves nothing claiming it runs: a new sweep's folder goes (it held
only what this run wrote), a resumed sweep's record gets its earlier status back. A failure
later leaves the record ``interrupted`` where it can still be written (``--resume`` goes on);
where it cannot (a full disk), the record keeps ``running``, and its free lock tells readers
and ``--resume`` that it was interrupted (orchestrator/records/folder_lock.py). A full or read-only
disk becomes one line naming the folder and what could not be written (``DiskError``: exit
2, or 1 once trials ran).
"""

from __future__ import annotations

import os
import shutil
import signal
import traceback
from pathlib import Path

from orchestrator.records.names import check_existing_name, check_new_name
from orchestrator.sweep.spec import SweepSpec, check_resources
from trainables.disk import check_free_space, check_writable, disk_failure
from trainables.errors import DiskError

__all__ = ["DiskWatch", "StartGuard", "check_request", "disk_error", "local_resources"]


def local_resources(spec: SweepSpec) -> tuple[float, float]:
    """(CPUs, GPUs) a local Ray of this sweep will have: --num-cpus or every core, and the
    CUDA devices torch sees (torch is only imported when GPUs are asked for)."""
    cpus = float(spec.num_cpus or os.cpu_count() or 1)
    if spec.gpus_per_trial <= 0:
        return cpus, 0.0
    import torch

    return cpus, float(torch.cuda.device_count() if torch.cuda.is_available() else 0)


def check_request(spec: SweepSpec, out_dir: Path) -> None:
    """Everything about where and on what a sweep runs that can fail before any work."""
    if spec.resume:
        check_existing_name(spec.sweep_name)
    else:
        check_new_name(spec.sweep_name)
    where = out_dir if spec.resume and out_dir.is_dir() else Path(spec.results_dir)
    check_writable(where, what="--results-dir" if where != out_dir else "the sweep's folder")
    check_free_space(where, what="--results-dir")
    if not spec.address:
        cpus, gpus = local_resources(spec)
        check_resources(
            spec,
            cpus=cpus,
            gpus=gpus,
            where="this machine (a local Ray gets it all; --num-cpus sets its CPUs)",
        )


def _what(err: BaseException, out_dir: Path) -> str:
    """The file or store a failed write was for."""
    _, name = disk_failure(err) or (None, None)
    if name:
        return name
    frames = " ".join(
        f.filename for e in _chain(err) for f in traceback.extract_tb(e.__traceback__)
    )
    for needle, what in (
        ("optuna", f"the Optuna study ({out_dir / 'optuna.db'})"),
        ("mlflow", "the MLflow store"),
        ("ray/tune", f"Tune's experiment ({out_dir / 'tune'})"),
        ("record.py", f"the sweep's record ({out_dir / 'sweep.json'})"),
        ("leaderboard.py", f"the result files in {out_dir}"),
    ):
        if needle in frames:
            return what
    return f"a file in {out_dir}"


def _chain(err: BaseException | None):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def disk_error(err: BaseException, out_dir: Path, *, hint: str, ran: bool) -> DiskError | None:
    """``err`` as one line when it is a disk failure, else None."""
    found = disk_failure(err)
    if found is None:
        return None
    reason, _ = found
    return DiskError(
        f"{out_dir}: {reason}: could not write {_what(err, out_dir)}; {hint}",
        exit_code=1 if ran else 2,
    )


class StartGuard:
    """See the module doc. ``started()`` marks the moment the first trial may run."""

    def __init__(
        self, out_dir: Path, *, lock, previous_status: str | None, resume_hint: str
    ) -> None:
        self.out_dir = out_dir
        self.lock = lock  # the folder's FolderLock: only a folder we own is ever removed
        self.previous_status = previous_status  # None: a new sweep
        self.created = not out_dir.exists()
        self.record = None  # the SweepRecord, once written
        self.ran = False
        self.resume_hint = resume_hint

    def started(self) -> None:
        self.ran = True

    def __enter__(self) -> StartGuard:
        return self

    def __exit__(self, kind, err, tb) -> bool:
        if err is None:
            return False
        self._undo()
        if isinstance(err, Exception):
            hint = (
                f"free space, then continue with: {self.resume_hint}"
                if self.ran or self.previous_status
                else "free space, then start it again"
            )
            converted = disk_error(err, self.out_dir, hint=hint, ran=self.ran)
            if converted is not None:
                raise converted from None
        return False

    def _undo(self) -> None:
        try:
            if not self.ran and self.previous_status is None:
                if self.created and self.lock.held:  # made by this run, for this run only
                    shutil.rmtree(self.out_dir, ignore_errors=True)
                return
            if self.record is None:
                return
            if not self.ran:
                self.record.update(status=self.previous_status)
            elif self.record.data.get("status") == "running":
                self.record.update(status="interrupted")
        except OSError:
            pass  # a full disk: the free lock tells --resume the sweep was interrupted


class DiskWatch:
    """The first disk failure a Tune callback met while trials ran. Raised there, Tune would
    log it with its traceback and carry on; ``catch`` keeps it and stops the run the way a
    spent time budget does (SIGUSR1: Tune saves its state and returns), and ``check``
    raises it once ``tuner.fit()`` is back, for StartGuard to say in one line."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def catch(self, err: BaseException) -> bool:
        """True (and the run stopping) when ``err`` is a disk failure."""
        if disk_failure(err) is None:
            return False
        if self.error is None:
            self.error = err
            os.kill(os.getpid(), signal.SIGUSR1)
        return True

    def check(self) -> None:
        if self.error is not None:
            raise self.error
