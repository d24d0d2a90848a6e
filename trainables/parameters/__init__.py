"""Every training parameter, once: ``TrainConfig`` and the facts each field carries.

Entry points: ``train_config.TrainConfig`` (with ``ALIASES``, ``DATA_SETTINGS``,
``MODEL_FIELDS``, ``choices_of``, ``specs``), ``fields.param`` / ``fields.check`` (a field's
facts and the check of one value), ``values`` (the one reader of typed values: ``--set``,
flags, config and space files), ``presets.PRESETS``. Imports nothing of the project but
``trainables.errors``.
"""
