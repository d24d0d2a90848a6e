"""Named starting points of ``python -m trainables.train --preset NAME`` (docs/parameters.md,
"Presets"): the guide's configuration, the single-ticker trainer's, and the guide's sized
for a CPU."""

from __future__ import annotations

from trainables.parameters.train_config import TrainConfig

__all__ = ["PRESETS"]


def _preset_parameters() -> TrainConfig:
    """The single-ticker trainer (Adam + ReduceLROnPlateau; docs/parameters.md, "The
    single-ticker trainer's ranges")."""
    return TrainConfig(
        f_cols=("open", "high", "low", "close", "volume", "sma_value"),
        target_col=None,  # it predicts every input feature
        scaler="minmax",  # its MinMaxScaler, fit on the training rows
        loss="mse",  # its nn.MSELoss
        hidden_size=64,
        num_layers=2,
        dropout=0.2,
        sequence_length=10,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-5,
        scheduler="plateau",
        plateau_factor=0.5,
        plateau_patience=5,
        warmup_epochs=0,
        epochs=100,
        batch_size=64,
        patience=15,
        min_delta=0.0,  # its early stopping counts any decrease as an improvement
        grad_clip=1.0,
        train_split=0.8,
        val_split=0.1,  # its 20% validation, split in two so a test set remains
    )


def _preset_cpu() -> TrainConfig:
    """The default sized for a CPU: one LSTM layer of 64 units on 20-bar windows, batch 32.

    The guide's model (256 units x 2 layers on 60-bar windows, up to 100 epochs) is sized
    for a GPU. ``python -m trainables.train`` starts from this one when no CUDA device is
    present (docs/parameters.md, "Presets"); its sizes are the ``new`` row of
    benchmarks/ablation.py, which beat ridge on the built-in data's CV folds.
    """
    return TrainConfig(
        hidden_size=64,
        num_layers=1,
        dropout=0.1,
        sequence_length=20,
        learning_rate=3e-3,
        warmup_epochs=2,
        epochs=20,
        batch_size=32,
        patience=5,
        min_delta=0.0,  # count any real improvement of the validation loss
    )


PRESETS: dict[str, TrainConfig] = {
    "guide": TrainConfig(),
    "parameters": _preset_parameters(),
    "cpu": _preset_cpu(),
}
