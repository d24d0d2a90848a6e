"""fit(): learning, early stopping, schedules, clipping, precision, determinism, faults."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trainables.training.trainer as trainer
from tests.folds import make_fold
from trainables.bars.synthetic import make_bars
from trainables.errors import ConfigError, TrainingError
from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData
from trainables.prep.scaling import make_scaler
from trainables.training.fast_paths import use_fast_paths
from trainables.training.network import SequenceModel
from trainables.training.optim import make_optimizer
from trainables.training.trainer import LRSchedule, fit, predict_scaled

F_COLS = ("open", "high", "low", "close", "volume", "log_return")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when other jobs share the CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def bars_fold(
    n_bars: int = 800,
    *,
    task: str = "regression",
    sequence_length: int = 8,
    horizon: int = 1,
    threshold: float = 0.001,
) -> FoldData:
    """Train/val fold of the built-in synthetic bars, scaled on training rows."""
    cfg = TrainConfig(
        f_cols=F_COLS,
        task=task,
        sequence_length=sequence_length,
        horizon=horizon,
        threshold=threshold,
    )
    return make_fold(cfg, make_bars(n_bars)).fold


def noise_fold(n: int = 300, sequence_length: int = 8, seed: int = 0) -> FoldData:
    """Random inputs and random targets: nothing to learn, so validation cannot improve for long."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = rng.standard_normal((n, 1)).astype(np.float32)
    scaler = make_scaler("standard", ["a", "b", "c", "t"]).fit(rng.standard_normal((n, 4)))
    return FoldData(
        x=x,
        y=y,
        y_now=None,
        train_idx=np.arange(sequence_length - 1, 200),
        stop_idx=np.arange(210, n - 1),
        eval_idx=np.zeros(0, dtype=np.int64),
        sequence_length=sequence_length,
        horizon=1,
        task="regression",
        feature_names=["a", "b", "c"],
        target_names=["t"],
        scaler=scaler,
    )


def tiny(**settings) -> TrainConfig:
    base = dict(
        hidden_size=8,
        num_layers=1,
        sequence_length=8,
        epochs=3,
        batch_size=64,
        warmup_epochs=0,
        dropout=0.0,
        patience=0,
        min_delta=0.0,
        scheduler="none",
    )
    if settings.get("task", "regression") == "regression":
        base["loss"] = "mse"  # the trainer's mechanics, checked against plain mean squares
    return TrainConfig(**{**base, **settings})


def scaled_val_loss(model: SequenceModel, fold: FoldData) -> float:
    out = predict_scaled(
        model, torch.from_numpy(fold.x), torch.from_numpy(fold.stop_idx), fold.sequence_length
    )
    y = torch.from_numpy(fold.y[fold.stop_idx])
    return float((out - y).square().mean(dim=1).sum() / len(fold.stop_idx))


# ---------------------------------------------------------------------- learning


def test_loss_falls_and_beats_persistence_on_builtin_data():
    # Rule: on the built-in bars the trained model's error is below "no change" (persistence).
    fold = bars_fold(1500, sequence_length=16)
    cfg = tiny(
        hidden_size=16,
        sequence_length=16,
        epochs=25,
        learning_rate=3e-3,
        patience=5,
        scheduler="cosine",
        warmup_epochs=1,
    )
    result = fit(cfg, fold, log=None)
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.metrics["mse"] < result.metrics["persistence_mse"]
    assert result.metrics["skill"] > 0.05
    assert result.metrics["directional_accuracy"] > 0.55


def test_classification_reports_f1_and_probabilities():
    # Rule: classification logs val_f1 per epoch and predicts class probabilities.
    fold = bars_fold(task="classification", horizon=5, threshold=0.005, sequence_length=8)
    cfg = tiny(task="classification", horizon=5, threshold=0.005, class_weights="balanced")
    result = fit(cfg, fold, log=None)
    assert all(r.val_f1 is not None and 0 <= r.val_f1 <= 1 for r in result.history)
    assert result.predictions.shape == (len(fold.stop_idx), 3)
    assert np.allclose(result.predictions.sum(axis=1), 1.0)
    assert {"accuracy", "macro_f1", "confusion_matrix"} <= set(result.metrics)


@pytest.mark.parametrize(
    "settings",
    [
        {"loss": "mae"},
        {"loss": "huber", "huber_delta": 0.1},
        {"optimizer": "sgd"},
        {"optimizer": "adam"},
        {"cell": "gru", "bidirectional": True},
        {"attention": True, "attention_heads": 2},
    ],
)
def test_every_loss_optimizer_and_architecture_trains(settings):
    # Rule: each documented choice runs and gives finite losses.
    result = fit(tiny(epochs=2, **settings), bars_fold(400), log=None)
    assert all(math.isfinite(r.train_loss) and math.isfinite(r.val_loss) for r in result.history)


def test_focal_loss_trains_classification():
    # Rule: focal loss with explicit class weights runs on the 3-class task.
    fold = bars_fold(400, task="classification", horizon=3, threshold=0.003)
    cfg = tiny(
        epochs=2,
        task="classification",
        horizon=3,
        threshold=0.003,
        loss="focal",
        class_weights=[1.0, 0.5, 1.0],
    )
    assert math.isfinite(fit(cfg, fold, log=None).best_val_loss)


def test_start_line_names_device_amp_batch_and_sizes():
    # Rule: the first log line says where and how training runs.
    lines: list[str] = []
    fold = bars_fold(400)
    fit(tiny(epochs=1, residual=False), fold, log=lines.append)
    assert lines[0] == (
        f"Device: cpu | AMP: off | batch 64 | {len(fold.train_idx):,} train / "
        f"{len(fold.stop_idx):,} early-stopping samples"
    )
    assert lines[1].startswith("Epoch 1/1 - Train Loss: ")


# ---------------------------------------------------------------------- early stopping


def test_early_stopping_fires_and_restores_best_weights():
    # Rule: with nothing to learn, training stops `patience` epochs after the best one and
    # the returned model has the best epoch's weights, not the last one's.
    fold = noise_fold()
    cfg = tiny(epochs=60, patience=3, learning_rate=0.05, residual=False)
    result = fit(cfg, fold, log=None)
    assert result.stopped_reason == "early_stopping"
    assert len(result.history) == result.best_epoch + 3
    best = result.history[result.best_epoch - 1].val_loss
    assert result.best_val_loss == best
    assert scaled_val_loss(result.model, fold) == pytest.approx(best, rel=1e-6)
    assert abs(result.final_val_loss - best) > 1e-6 * best


def test_without_restore_best_the_last_weights_are_kept():
    # Rule: restore_best=False returns the last epoch's weights.
    fold = noise_fold()
    result = fit(
        tiny(epochs=60, patience=3, learning_rate=0.05, residual=False, restore_best=False),
        fold,
        log=None,
    )
    assert scaled_val_loss(result.model, fold) == pytest.approx(result.final_val_loss, rel=1e-6)


def test_min_delta_ignores_tiny_improvements():
    # Rule: an improvement smaller than min_delta does not reset patience.
    stopper = trainer.EarlyStopping(patience=2, min_delta=0.1)
    model = torch.nn.Linear(1, 1)
    assert not stopper.step(1, 1.0, model)
    assert not stopper.step(2, 0.95, model)
    assert stopper.step(3, 0.91, model)
    assert stopper.best_epoch == 1


def test_callback_can_stop_training():
    # Rule: on_epoch returning True stops after that epoch with reason 'callback'.
    seen = []
    result = fit(
        tiny(epochs=10),
        bars_fold(400),
        log=None,
        on_epoch=lambda r: seen.append(r.epoch) or r.epoch == 2,
    )
    assert (result.stopped_reason, len(result.history), seen) == ("callback", 2, [1, 2])


def test_max_epochs_reason():
    # Rule: running all epochs reports 'max_epochs'.
    result = fit(tiny(epochs=2), bars_fold(400), log=None)
    assert (result.stopped_reason, len(result.history)) == ("max_epochs", 2)


# ---------------------------------------------------------------------- schedules


def _lrs(**settings) -> list[float]:
    schedule = LRSchedule(TrainConfig(**settings))
    return [schedule.lr(e) for e in range(settings["epochs"])]


def test_cosine_warms_up_linearly_then_decays_to_min_lr():
    # Rule: warmup is linear for warmup_epochs, then cosine from learning_rate to min_lr.
    lr = _lrs(scheduler="cosine", learning_rate=1e-3, warmup_epochs=4, epochs=14, min_lr=1e-5)
    assert lr[:4] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4])
    expected = [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(10)]
    assert lr[4:] == pytest.approx(expected)
    assert lr[4] == pytest.approx(1e-3) and all(a > b for a, b in zip(lr[4:], lr[5:], strict=False))


def test_step_and_exponential_decay():
    # Rule: step multiplies by gamma every step_size epochs; exponential every epoch.
    assert _lrs(
        scheduler="step", learning_rate=0.1, step_size=2, gamma=0.5, epochs=6
    ) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert _lrs(scheduler="exponential", learning_rate=0.1, epochs=3) == pytest.approx(
        [0.1, 0.095, 0.09025]
    )


def test_plateau_halves_after_patience_flat_epochs():
    # Rule: after plateau_patience epochs without improvement the next epoch runs at lr * factor.
    schedule = LRSchedule(
        TrainConfig(scheduler="plateau", learning_rate=1e-3, plateau_patience=5, min_delta=0.0)
    )
    lrs = []
    for loss in [1.0, 0.9, 0.8] + [0.8] * 5 + [0.8] * 5:
        lrs.append(schedule.lr(len(lrs)))
        schedule.observe(loss)
    assert lrs[:8] == [1e-3] * 8
    assert lrs[8:13] == [5e-4] * 5
    assert schedule.lr(13) == 2.5e-4


def test_onecycle_peaks_at_learning_rate():
    # Rule: onecycle starts at lr/25, peaks at learning_rate 30% in (torch's step
    # 0.3 * total - 1) and ends at lr/25/1e4 on the last batch.
    schedule = LRSchedule(TrainConfig(scheduler="onecycle", learning_rate=0.01, epochs=10))
    grid = [schedule.lr(e, k, 100) for e in range(10) for k in range(100)]
    assert grid[0] == pytest.approx(0.01 / 25)
    assert max(grid) == pytest.approx(0.01) and int(np.argmax(grid)) == 299
    assert grid[-1] == pytest.approx(0.01 / 25 / 1e4)


@pytest.mark.parametrize(
    "scheduler", ["cosine", "step", "exponential", "plateau", "onecycle", "none"]
)
def test_fit_follows_the_schedule(scheduler):
    # Rule: the LR recorded for each epoch is the schedule's value for that epoch.
    cfg = tiny(
        epochs=6,
        scheduler=scheduler,
        warmup_epochs=2,
        step_size=2,
        plateau_patience=1,
        learning_rate=0.01,
    )
    fold = bars_fold(400)
    result = fit(cfg, fold, log=None)
    replay = LRSchedule(cfg)
    for record in result.history:
        n_batches = math.ceil(len(fold.train_idx) / record.batch_size)
        assert record.lr == pytest.approx(replay.lr(record.epoch - 1, 0, n_batches))
        replay.observe(record.val_loss)


# ---------------------------------------------------------------------- clipping and precision


def _one_step(grad_clip: float) -> tuple[float, float]:
    """(parameter change of one SGD step with lr 1, recorded pre-clip gradient norm)."""
    fold = bars_fold(400)
    cfg = tiny(
        epochs=1,
        batch_size=1024,
        optimizer="sgd",
        momentum=0.0,
        weight_decay=0.0,
        learning_rate=1.0,
        grad_clip=grad_clip,
        residual=False,
    )
    torch.manual_seed(cfg.seed)
    start = SequenceModel(cfg, fold.n_features, fold.n_outputs).state_dict()
    result = fit(cfg, fold, log=None)
    end = result.model.state_dict()
    step = torch.sqrt(sum(((end[k] - start[k]).double() ** 2).sum() for k in start))
    return float(step), result.history[0].grad_norm


def test_clipping_bounds_the_gradient_norm():
    # Rule: the applied gradient's norm is at most grad_clip; the record keeps the pre-clip norm.
    step, pre_clip = _one_step(grad_clip=0.01)
    assert pre_clip > 0.01
    assert step <= 0.01 * (1 + 1e-4)
    unclipped, pre = _one_step(grad_clip=0.0)  # 0 disables clipping
    assert unclipped == pytest.approx(pre, rel=1e-3)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_use_fused_kernels(name):
    # Rule: each optimizer updates every parameter in one fused kernel (the speed target).
    model = SequenceModel(tiny(), 4, 1)
    assert make_optimizer(tiny(optimizer=name), model).defaults["fused"] is True


def test_fit_skips_nan_filling_of_new_tensors_and_restores_the_setting():
    # Rule: deterministic mode's NaN-filling of every new tensor (a debugging aid that costs
    # ~6% of a small model's step) is off while fit runs, and the caller's setting comes back.
    flag = torch.utils.deterministic
    before, seen = flag.fill_uninitialized_memory, []
    with use_fast_paths(True):  # the default; LSTM_ORCH_FAST_PATHS=0 would switch it off
        fit(
            tiny(epochs=1),
            bars_fold(400),
            log=None,
            on_epoch=lambda r: seen.append(flag.fill_uninitialized_memory),
        )
    assert seen == [False]
    assert flag.fill_uninitialized_memory is before


def test_a_failed_fit_gives_the_callers_torch_settings_back():
    # Rule: deterministic mode and NaN filling are the caller's again after fit, also when
    # fit raised (a notebook keeps its own settings).
    flags = torch.utils.deterministic
    before = (torch.are_deterministic_algorithms_enabled(), flags.fill_uninitialized_memory)
    fold = bars_fold(400)
    fold.y[fold.train_idx[10]] = 1e30  # the loss overflows in the first epoch
    with pytest.raises(TrainingError):
        fit(tiny(epochs=2), fold, log=None)
    assert (torch.are_deterministic_algorithms_enabled(), flags.fill_uninitialized_memory) == before


def test_bf16_autocast_runs_on_cpu():
    # Rule: amp='bf16' trains on the CPU under bfloat16 autocast.
    # Two layers with dropout: the CPU's layer-by-layer path runs under autocast too.
    result = fit(tiny(epochs=2, amp="bf16", num_layers=2, dropout=0.2), bars_fold(400), log=None)
    assert result.amp == "bf16" and math.isfinite(result.best_val_loss)


def test_amp_auto_is_off_on_cpu_and_fp16_needs_cuda():
    # Rule: 'auto' means full precision on the CPU; fp16 on the CPU is a config error.
    assert trainer.resolve_amp("auto", torch.device("cpu")) == "off"
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        trainer.resolve_amp("fp16", torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_with_grad_scaler_on_cuda():
    # Rule: amp='fp16' trains on CUDA with a GradScaler and the loss falls.
    result = fit(
        tiny(epochs=4, amp="fp16", device="cuda", learning_rate=3e-3), bars_fold(800), log=None
    )
    assert result.amp == "fp16" and result.device.startswith("cuda")
    assert result.history[-1].train_loss < result.history[0].train_loss


# ---------------------------------------------------------------------- determinism


def test_same_seed_is_bit_identical_and_another_seed_differs():
    # Rule: two CPU runs with one seed give identical curves and weights; a new seed does not.
    fold = bars_fold(400)
    cfg = tiny(epochs=3, dropout=0.2, num_layers=2)
    a, b = fit(cfg, fold, log=None), fit(cfg, fold, log=None)
    c = fit(cfg.replace(seed=1), fold, log=None)
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert np.array_equal(a.predictions, b.predictions)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert [r.train_loss for r in a.history] != [r.train_loss for r in c.history]


# ---------------------------------------------------------------------- faults


def test_out_of_memory_halves_the_batch_and_finishes(monkeypatch):
    # Rule: an OOM on a batch halves the batch size, redoes the epoch and the run completes.
    real, calls = trainer.gather_windows, {"raised": 0}

    def flaky(
        series, anchors, sequence_length
    ):  # the first batch larger than 32 "runs out of memory"
        if len(anchors) > 32 and not calls["raised"]:
            calls["raised"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(series, anchors, sequence_length)

    monkeypatch.setattr(trainer, "gather_windows", flaky)
    lines: list[str] = []
    result = fit(tiny(epochs=2), bars_fold(400), log=lines.append)
    assert calls["raised"] == 1
    assert result.batch_size == 32 and [r.batch_size for r in result.history] == [32, 32]
    assert any("out of memory at batch size 64" in line for line in lines)


def test_out_of_memory_at_batch_one_is_a_training_error(monkeypatch):
    # Rule: when even one sample does not fit, fail with TrainingError instead of looping.
    def never_fits(series, anchors, sequence_length):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(trainer, "gather_windows", never_fits)
    with pytest.raises(TrainingError, match="even with batch_size=1"):
        fit(tiny(epochs=1, batch_size=4), bars_fold(400), log=None)


def test_diverging_loss_stops_with_the_epoch_named():
    # Rule: a NaN/inf loss raises TrainingError naming epoch and batch, never trains on.
    cfg = tiny(
        epochs=5,
        optimizer="sgd",
        learning_rate=10.0,
        momentum=0.9,
        grad_clip=0.0,
        residual=False,
        hidden_size=16,
        sequence_length=16,
    )
    with pytest.raises(
        TrainingError,
        match=r"loss became (nan|inf) at epoch \d+ \(batch \d+\); lower learning_rate",
    ):
        fit(cfg, bars_fold(1500, sequence_length=16), log=None)


def test_extreme_target_value_gives_a_training_error():
    # Rule: a target that overflows the loss is caught at its batch, not averaged away.
    fold = bars_fold(400)
    fold.y[fold.train_idx[10]] = 1e30
    with pytest.raises(TrainingError, match="loss became inf at epoch 1"):
        fit(tiny(epochs=2), fold, log=None)


def test_fold_and_config_must_agree():
    # Rule: a fold prepared for another window length is rejected before training.
    with pytest.raises(ConfigError, match="sequence_length=8 but cfg.sequence_length=12"):
        fit(tiny(sequence_length=12), bars_fold(400), log=None)


# ---------------------------------------------------------------------- distributed


def _ddp_rank(rank: int, world: int, out_dir: str) -> None:
    import json
    from pathlib import Path

    import torch.distributed as dist

    torch.set_num_threads(1)
    # A file rendezvous: no port to pick, so no race with other processes for one.
    store = Path(out_dir, "rendezvous")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        result = fit(tiny(epochs=3, dropout=0.1, num_layers=2), bars_fold(400), log=None)
    finally:
        dist.destroy_process_group()
    weights = float(sum(p.double().sum() for p in result.model.state_dict().values()))
    record = {
        "train": [r.train_loss for r in result.history],
        "val": [r.val_loss for r in result.history],
        "weights": weights,
        "best_epoch": result.best_epoch,
    }
    Path(out_dir, f"{rank}.json").write_text(json.dumps(record))


def test_distributed_ranks_agree(tmp_path):
    # Rule: under DDP every rank sees the same averaged losses and ends with the same weights.
    import json

    import torch.multiprocessing as mp

    mp.spawn(_ddp_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    a, b = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert a == b
    single = fit(tiny(epochs=3, dropout=0.1, num_layers=2), bars_fold(400), log=None)
    assert a["train"] != [r.train_loss for r in single.history]  # each rank trained on half


def test_unpadded_prediction_gives_the_padded_outputs():
    # Rule: the per-epoch validation runs its last batch at its own size (pad=False, the
    # early-stopping block's cost), and its outputs are the padded run's: every row, in
    # order, within float32 rounding (the recorded val_loss and restore-best rest on them).
    from trainables.training.inference import PREDICT_BATCH

    torch.manual_seed(0)
    model = SequenceModel(tiny(hidden_size=8), 4, 2)
    x = torch.randn(PREDICT_BATCH + 400, 4)
    for n in (37, PREDICT_BATCH + 300):  # one short batch; a full one and a short one
        anchors = torch.arange(10, 10 + n)
        padded = predict_scaled(model, x, anchors, 8)
        unpadded = predict_scaled(model, x, anchors, 8, pad=False)
        assert unpadded.shape == padded.shape == (n, 2)
        torch.testing.assert_close(unpadded, padded, rtol=1e-5, atol=1e-6)
