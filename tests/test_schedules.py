"""Early stopping's min_delta is relative to the best loss, so one default fits every loss scale."""

from __future__ import annotations

import torch

from trainables.schedules import EarlyStopping, improves


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
