"""What a sweep is asked to do: ``SweepSpec``, and the config and space it starts from.

No Ray here: the CLI, promotion and the report read a sweep's settings (its ``sweep.json``)
without starting or importing Ray; ``orchestrator.sweep.run`` runs one.
"""

from __future__ import annotations

import ctypes
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.records.names import safe_stem
from orchestrator.records.tickers import parse_tickers
from orchestrator.sweep.data_source import bar_source
from orchestrator.sweep.prepare import CV_SCHEMES, MAX_BARS
from orchestrator.sweep.spaces import SearchSpace
from trainables.bars.files import DEFAULT_MAX_JUMP
from trainables.bars.timestamps import DST_CHOICES
from trainables.errors import ConfigError, shown
from trainables.parameters.train_config import ALIASES, TrainConfig

__all__ = [
    "AUTO_GPU_SHARE",
    "DRIVER_CPU",
    "SCHEDULERS",
    "SweepSpec",
    "base_config",
    "check_resources",
    "check_space",
    "cuda_available",
    "longest_sequence",
    "resolve_space",
    "set_wins",
    "space_note",
]

SCHEDULERS = ("asha", "median", "none")
# A trial that only drives a TorchTrainer needs a sliver of CPU (Tune refuses 0).
DRIVER_CPU = 0.01


@dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep needs, defaults written once (the CLI reads them from here)."""

    name: str | None = None
    space: str = "auto"  # auto: 'gpu' with a CUDA GPU (or --gpus-per-trial > 0), else 'cpu'
    space_auto: bool = False  # the space was picked by 'auto' (recorded, and said)
    data: str | None = None  # a file or a database URL (orchestrator/sweep/data_source.py)
    ticker: str | None = None
    # a universe (orchestrator/universe/run.py): 'all', 'A,B,C' or '@file'; None: one series
    tickers: str | None = None
    data_env: str | None = None  # an environment variable holding the database URL
    table: str | None = None
    query: str | None = None
    start: str | None = None
    end: str | None = None
    snapshot: bool = False  # keep the rows read in results/<name>/data.parquet
    task: str | None = None  # None: the space's / TrainConfig's default
    cv: str = "walk-forward"
    folds: int = 5
    trials: int = 50
    epochs: int | None = None
    seed: int = 0
    scheduler: str = "asha"
    asha_eta: float = 2  # ASHA's reduction factor: keep the best 1/eta at each rung
    asha_grace: float = 0.25  # ASHA's first rung, in folds (0.25 = a quarter into fold 0)
    race_margin: float = 0.02  # stop a trial this much worse than the best on the same folds
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1
    max_retries: int = 1
    address: str | None = None
    storage: str | None = None
    results_dir: str = "results"
    mlflow_uri: str | None = None
    resume: bool = False
    num_cpus: int | None = None  # local Ray only; None = all cores
    dashboard: bool = True
    n_bars: int = 4000  # built-in data only (--bars)
    timezone: str | None = None  # zone of naive local timestamps (converted to UTC)
    dst: str = "raise"  # with timezone: times at a daylight saving change (docs/data.md)
    max_jump: float = DEFAULT_MAX_JUMP  # largest |log return| of a price between bars
    overrides: dict = field(default_factory=dict)  # extra TrainConfig settings for every trial
    # share of each fold's training samples held out (after a purge gap) for early stopping
    inner_val: float = 0.15
    time_budget: float | None = None  # seconds; no new trial starts once spent
    smoke_test: bool = False
    fail_at_fold: int | None = None  # fault injection for tests: crash once at this fold
    fail_ticker: str | None = None  # fault injection for tests: every trial of it crashes

    def __post_init__(self) -> None:
        checks = [
            (self.trials >= 1, f"--trials must be >= 1, but got {self.trials}"),
            (self.folds >= 2, f"--folds must be >= 2, but got {self.folds}"),
            (
                not isinstance(self.n_bars, bool) and isinstance(self.n_bars, int)
                and 100 <= self.n_bars <= MAX_BARS,
                f"--bars must be an integer in [100, {MAX_BARS:,}] (hourly bars from 2020 "
                f"stay within pandas' dates), but got {self.n_bars!r}",
            ),
            (self.cv in CV_SCHEMES, f"--cv must be one of {list(CV_SCHEMES)}, but got {self.cv!r}"),
            (
                self.scheduler in SCHEDULERS,
                f"--scheduler must be one of {list(SCHEDULERS)}, but got {self.scheduler!r}",
            ),
            (
                self.cpus_per_trial > 0,
                f"--cpus-per-trial must be > 0, but got {self.cpus_per_trial}",
            ),
            (
                self.gpus_per_trial >= 0,
                f"--gpus-per-trial must be >= 0, but got {self.gpus_per_trial}",
            ),
            (
                self.workers_per_trial >= 1,
                f"--workers-per-trial must be >= 1, but got {self.workers_per_trial}",
            ),
            (self.max_retries >= 0, f"--max-retries must be >= 0, but got {self.max_retries}"),
            (self.asha_eta > 1, f"--asha-eta must be > 1, but got {self.asha_eta}"),
            (
                0 <= self.race_margin < 1,
                f"--race-margin must be in [0, 1) (0 = off), but got {self.race_margin}",
            ),
            (
                0 < self.asha_grace <= self.folds,
                f"--asha-grace must be in (0, folds={self.folds}], but got {self.asha_grace}",
            ),
            (
                self.max_concurrent is None or self.max_concurrent >= 1,
                f"--max-concurrent must be >= 1, but got {self.max_concurrent}",
            ),
            (
                0.05 <= self.inner_val <= 0.5,
                f"--inner-val must be in [0.05, 0.5], but got {self.inner_val}",
            ),
            (
                self.time_budget is None or self.time_budget > 0,
                f"--time-budget must be > 0, but got {self.time_budget}",
            ),
            (
                self.dst in DST_CHOICES,
                f"--dst must be one of {list(DST_CHOICES)}, got {self.dst!r}",
            ),
            (self.max_jump > 0, f"--max-jump must be > 0 (inf: no limit), but got {self.max_jump}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        # A setting given both as its own flag and through --set must agree.
        for key, value in self.overrides.items():
            name = ALIASES.get(key, key)
            flag = getattr(self, name, None) if name in ("epochs", "task", "ticker") else None
            if flag is not None and flag != value:
                raise ConfigError(
                    f"--{name} {flag} and --set {key}={value} disagree; give {name} once"
                )
        bar_source(self)  # the data flags fit together (before any work)
        if self.tickers is not None:
            self._check_universe()

    def _check_universe(self) -> None:
        """--tickers: a universe of the data's tickers (refused here before any work)."""
        if self.ticker is not None or "ticker" in self.overrides:
            raise ConfigError("give --ticker (one ticker) or --tickers (a universe), not both")
        if self.data is None and self.data_env is None:
            raise ConfigError(
                "--tickers reads the tickers of your data: give --data (a file or a database "
                "URL with --table/--query) holding a ticker column"
            )
        parse_tickers(self.tickers)

    @property
    def sweep_name(self) -> str:
        # The default name is a valid new name whatever the space file is called.
        if self.name is not None:  # even "" (refused as a name, never a default in disguise)
            return self.name
        return f"{safe_stem(Path(self.space).stem)}-{time.strftime('%Y%m%d-%H%M%S')}"

    def smoke(self) -> SweepSpec:
        """The same sweep, tiny: a few trials, 2 folds, 2 epochs, little data."""
        return replace(
            self,
            space="smoke",
            trials=min(self.trials, 4),
            folds=2,
            epochs=2,
            n_bars=min(self.n_bars, 1200),
            smoke_test=True,
        )


# A trial's share of the GPU when --space auto picks 'gpu' and --gpus-per-trial is not given:
# four small LSTMs share a GPU (the batch probe keeps each within its share).
AUTO_GPU_SHARE = 0.25


def cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch (seconds) where no GPU driver is
    installed: then there is no GPU for torch to use, whatever its build."""
    if not gpu_driver_present():
        return False
    import torch

    return torch.cuda.is_available()


def gpu_driver_present() -> bool:
    """Whether the NVIDIA driver's library loads, or a ROCm device exists (torch.cuda covers
    AMD GPUs too): without either, torch.cuda.is_available() is False."""
    if Path("/dev/kfd").exists():
        return True
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def resolve_space(spec: SweepSpec) -> SweepSpec:
    """``--space auto``: the GPU-sized space with a CUDA GPU (or GPUs asked for), else the
    CPU-sized one; other spaces are left as they are."""
    if spec.space != "auto":
        return spec
    if spec.gpus_per_trial > 0 or cuda_available():
        share = spec.gpus_per_trial or AUTO_GPU_SHARE
        return replace(spec, space="gpu", space_auto=True, gpus_per_trial=share)
    return replace(spec, space="cpu", space_auto=True)


def space_note(spec: SweepSpec) -> str | None:
    """The line that says why --space auto picked this space, and how to pick the other."""
    if not spec.space_auto:
        return None
    if spec.space == "gpu":
        return (
            f"Space gpu, picked by --space auto: a CUDA GPU is here ({spec.gpus_per_trial:g} "
            "GPU per trial, batch sizes by the GPU probe); --space cpu picks the CPU-sized space"
        )
    return (
        "Space cpu, picked by --space auto: no CUDA GPU here; --space gpu picks the GPU-sized "
        "space (for a sweep that matches a GPU machine's)"
    )


def base_config(spec: SweepSpec, space: SearchSpace) -> TrainConfig:
    """Defaults, then the space's fixed settings, then the command line's."""
    settings = {**space.fixed, **spec.overrides}
    if spec.task is not None:
        settings["task"] = spec.task
    if spec.epochs is not None:
        settings["epochs"] = spec.epochs
    if spec.ticker is not None:
        settings["ticker"] = spec.ticker
    return TrainConfig.from_dict(settings)


def check_space(space: SearchSpace, base: TrainConfig) -> None:
    """Every choice and bound of the space must be a valid training setting (fail before Ray)."""
    for name, dist in space.params.items():
        values = dist["choices"] if dist["type"] == "categorical" else [dist["low"], dist["high"]]
        for value in values:
            try:
                TrainConfig.from_dict({**base.to_dict(), name: value})
            except ConfigError as err:
                raise ConfigError(f"{space.path}: parameter {name!r}: {err}") from None


def set_wins(space: SearchSpace, overrides: dict) -> tuple[SearchSpace, list[str], str]:
    """``--set`` of a parameter the space samples wins: it leaves the sampled space (every
    trial trains with the --set value). Returns the space left, the parameters taken out
    and the line that says so ("" when none)."""
    given = {ALIASES.get(k, k): v for k, v in overrides.items()}
    pinned = [name for name in space.params if name in given]
    if not pinned:
        return space, [], ""
    left = {k: v for k, v in space.params.items() if k not in pinned}
    if not left:
        raise ConfigError(
            f"--set {', '.join(pinned)} fixes every parameter space {space.name!r} samples: "
            f"nothing is left to search; drop a --set, or train one config with "
            f"python -m trainables.train"
        )
    for name in pinned:  # a bad value is the one line said, not "wins" and then the error
        TrainConfig.from_dict({**space.fixed, name: given[name]})
    values = ", ".join(f"{k}={shown(given[k], 40)}" for k in pinned)
    line = (
        f"--set {values} wins over space {space.name}: fixed for every trial, no longer "
        f"sampled (the space samples {len(left)} other params: {', '.join(left)})"
    )
    return replace(space, params=left), pinned, line


def check_resources(spec: SweepSpec, *, cpus: float, gpus: float, where: str) -> None:
    """One trial must fit in ``cpus`` and ``gpus``, or Tune would wait for it forever."""
    need_cpu = spec.cpus_per_trial * spec.workers_per_trial
    need_gpu = spec.gpus_per_trial * spec.workers_per_trial
    if spec.workers_per_trial > 1:
        need_cpu += DRIVER_CPU
    if need_cpu > cpus + 1e-9 or need_gpu > gpus + 1e-9:
        raise ConfigError(
            f"one trial needs {need_cpu:g} CPUs and {need_gpu:g} GPUs "
            f"(--workers-per-trial={spec.workers_per_trial} x --cpus-per-trial="
            f"{spec.cpus_per_trial:g}, --gpus-per-trial={spec.gpus_per_trial:g}) but {where} "
            f"has {cpus:g} CPUs and {gpus:g} GPUs; lower them or add resources"
        )


def longest_sequence(space: SearchSpace, base: TrainConfig) -> int:
    dist = space.params.get("sequence_length")
    if dist is None:
        return base.sequence_length
    if dist["type"] == "categorical":
        return max(int(c) for c in dist["choices"])
    return int(dist["high"])
