"""Early stopping's relative min_delta, and the one-cycle schedule against torch's OneCycleLR."""

from __future__ import annotations

import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

from trainables.parameters.train_config import TrainConfig
from trainables.training.schedules import EarlyStopping, LRSchedule, improves


def test_one_percent_gain_on_small_regression_loss_counts():
    # An MSE of 1e-3 falling by 1% is an improvement with the default min_delta=1e-4.
    assert improves(0.00099, 0.001, 1e-4)


def test_gain_below_min_delta_does_not_count():
    # A relative gain smaller than min_delta (here 0.001% < 0.01%) is not an improvement.
    assert not improves(0.99999, 1.0, 1e-4)


def test_cross_entropy_scale_matches_the_absolute_rule():
    # Near a loss of 1.0 the relative rule equals the guide's absolute one (best - 1e-4).
    assert improves(0.99989, 1.0, 1e-4) and not improves(0.99991, 1.0, 1e-4)


def test_early_stopping_keeps_going_while_small_losses_fall():
    # Losses ~1e-3 that fall 1% per epoch never trigger early stopping.
    stopper = EarlyStopping(patience=2, min_delta=1e-4)
    model = torch.nn.Linear(1, 1)
    losses = [1e-3 * 0.99**k for k in range(10)]
    assert not any(stopper.step(k + 1, v, model) for k, v in enumerate(losses))
    assert stopper.best_epoch == 10


def test_a_model_that_never_improves_stops_after_patience_and_keeps_epoch_one():
    # Rule: with no improvement at all, stop exactly `patience` epochs after the first one
    # and restore the first epoch's weights.
    stopper = EarlyStopping(patience=3, min_delta=0.0)
    model = torch.nn.Linear(1, 1)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    stops = []
    for epoch in range(1, 6):
        stops.append(stopper.step(epoch, 1.0, model))
        assert stopper.improved == (epoch == 1)
        torch.nn.init.normal_(model.weight)  # later epochs change the weights
    assert stops == [False, False, False, True, True]
    stopper.restore(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in first.items())


def _torch_onecycle(lr: float, total: int, final_div: float) -> list[float]:
    """torch's OneCycleLR, the matching settings: two cosine phases, momentum not cycled."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = OneCycleLR(
        optimizer,
        max_lr=lr,
        total_steps=total,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=False,
        div_factor=25.0,
        final_div_factor=final_div,
        three_phase=False,
    )
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("epochs, steps", [(10, 37), (3, 1), (1, 5), (1, 1), (40, 3)])
def test_onecycle_is_torch_onecycle_lr(epochs, steps):
    # Rule: LRSchedule('onecycle') gives OneCycleLR's rate at every batch, bit for bit.
    cfg = TrainConfig(scheduler="onecycle", learning_rate=3e-3, epochs=epochs, warmup_epochs=0)
    ours = LRSchedule(cfg)
    got = [ours.lr(e, k, steps) for e in range(epochs) for k in range(steps)]
    assert got == _torch_onecycle(3e-3, epochs * steps, 1e4)


def test_onecycle_final_rate_is_min_lr_when_that_is_higher():
    # Rule: min_lr above lr/25/1e4 becomes the final rate: OneCycleLR with the final_div_factor
    # that ends there gives the same rates.
    cfg = TrainConfig(scheduler="onecycle", learning_rate=1e-2, min_lr=1e-5, epochs=8)
    ours = LRSchedule(cfg)
    got = [ours.lr(e, k, 25) for e in range(8) for k in range(25)]
    want = _torch_onecycle(1e-2, 200, (1e-2 / 25) / 1e-5)
    assert got == pytest.approx(want, rel=1e-12)
    assert got[-1] == pytest.approx(1e-5, rel=1e-12) and min(got) >= 1e-5 * (1 - 1e-12)
