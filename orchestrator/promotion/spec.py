"""``PromoteSpec``: what a promotion is asked to do, defaults written once.

Its own module so that the sweep CLI (``orchestrator.tune --promote``) can read the
promotion's flags and defaults without importing promotion itself (Ray Train, scikit-learn,
statsmodels, matplotlib): those load only when a promotion runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from orchestrator.promotion.holdout import check_settings
from trainables.errors import ConfigError
from trainables.parameters.train_config import TrainConfig

__all__ = ["PromoteSpec"]


@dataclass(frozen=True)
class PromoteSpec:
    """Everything a promotion needs, defaults written once (the CLI reads them from here)."""

    name: str
    results_dir: str = "results"
    top_k: int = 3
    seeds: int = 3
    workers: int = 1
    cpus_per_worker: int = 1
    epochs: int | None = None  # None: each trial's own epochs (early stopping still applies)
    num_cpus: int | None = None  # local Ray only; None = all cores
    address: str | None = None  # None: the sweep's
    mlflow_uri: str | None = None  # None: the sweep's
    registered_name: str | None = None  # None: lstm-<name>
    cost_bps: float = 1.0  # trading view: cost per unit of turnover, in basis points
    report: bool = True
    register: bool = True  # False: log the MLflow run and model, skip the model registry
    overrides: dict = field(default_factory=dict)  # training settings for every promoted model
    # The sweep's database again, with credentials (sweep.json keeps the URL without its
    # password); None: the recorded source. Never written anywhere.
    data: str | None = field(default=None, repr=False)
    data_env: str | None = None

    def __post_init__(self) -> None:
        check_settings(self.overrides)
        TrainConfig().replace(**self.overrides)  # unknown names / bad values fail here, early
        for flag, value, low in (
            ("--top-k", self.top_k, 1),
            ("--seeds", self.seeds, 1),
            ("--workers", self.workers, 1),
            ("--cpus-per-worker", self.cpus_per_worker, 1),
            ("--epochs", self.epochs, 1),
        ):
            if value is not None and value < low:
                raise ConfigError(f"{flag} must be >= {low}, but got {value}")
        if not np.isfinite(self.cost_bps) or self.cost_bps < 0:
            raise ConfigError(f"--cost-bps must be a number >= 0, but got {self.cost_bps}")
