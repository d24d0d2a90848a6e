"""trainables: learns one model, on one machine, from bars. No Ray, no orchestrator.

Rooms (docs/architecture.md is the map):

* ``bars``: reading and checking bars (files, databases, the built-in data, many tickers);
* ``prep``: bars to the model's inputs (features, targets, folds and their scalers);
* ``parameters``: ``TrainConfig``, every parameter's facts, typed values, presets;
* ``training``: the network, ``fit`` (the one training loop), inference, metrics.

At the top: ``train`` (``python -m trainables.train``), ``synthetic`` (``python -m
trainables.synthetic``), ``artifacts`` (a trained run on disk), ``cli`` (what command lines
share), ``errors``, ``atomic``, ``disk``. Old module paths (``trainables.config``, ...) stay
importable for pickles and stored state (``trainables/old_paths.py``).
"""

from trainables.old_paths import install as _install

_install(
    "trainables",
    {
        "data": "bars.files",
        "sources": "bars.sources",
        "database": "bars.database",
        "timestamps": "bars.timestamps",
        "bar_checks": "bars.checks",
        "origin": "bars.provenance",
        "universe_bars": "bars.universe",
        "features": "prep.features",
        "labels": "prep.labels",
        "windows": "prep.windows",
        "scaling": "prep.scaling",
        "dataset": "prep.dataset",
        "splits": "prep.splits",
        "fold_checks": "prep.fold_checks",
        "naive": "prep.naive",
        "table": "prep.model_table",
        "config": "parameters.train_config",
        "params": "parameters.fields",
        "values": "parameters.values",
        "presets": "parameters.presets",
        "model": "training.network",
        "trainer": "training.trainer",
        "optim": "training.optim",
        "losses": "training.losses",
        "schedules": "training.schedules",
        "oom": "training.oom",
        "fast_paths": "training.fast_paths",
        "inference": "training.inference",
        "ddp": "training.ddp",
        "devices": "training.devices",
        "gpu_probe": "training.gpu_probe",
        "metrics": "training.metrics",
    },
)
