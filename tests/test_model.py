"""SequenceModel: shapes of every head, dropout only in training, initialisation, residual."""

from __future__ import annotations

import pytest
import torch

from trainables.config import TrainConfig
from trainables.model import ModelSpec, SequenceModel


def _x(batch: int = 5, seq_len: int = 7, features: int = 4) -> torch.Tensor:
    return torch.randn(batch, seq_len, features, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("settings", "n_outputs"),
    [
        ({}, 1),  # single-target regression
        ({}, 4),  # multi-output regression
        ({"task": "classification"}, 3),  # 3-class logits
        ({"bidirectional": True, "cell": "gru"}, 2),
        ({"attention": True, "attention_heads": 2, "bidirectional": True}, 3),
    ],
)
def test_output_shape(settings, n_outputs):
    # Rule: [B, L, F] -> [B, n_outputs] for every head and pooling.
    model = SequenceModel(TrainConfig(hidden_size=8, **settings), 4, n_outputs)
    assert model(_x()).shape == (5, n_outputs)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_hidden_states_shape(bidirectional):
    # Rule: hidden_states is [n_samples, seq_len, hidden_size * directions].
    model = SequenceModel(ModelSpec(hidden_size=6, num_layers=2, bidirectional=bidirectional), 4, 1)
    assert model.hidden_states(_x()).shape == (5, 7, 6 * (2 if bidirectional else 1))


def test_dropout_only_in_training():
    # Rule: dropout changes outputs in train() and is off in eval().
    torch.manual_seed(0)
    model = SequenceModel(ModelSpec(hidden_size=16, num_layers=2, dropout=0.5), 4, 2)
    x = _x()
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_initialisation():
    # Rule: forget-gate bias 1, orthogonal recurrent blocks, Xavier-bounded input weights.
    torch.manual_seed(0)
    h = 8
    model = SequenceModel(ModelSpec(hidden_size=h, num_layers=1), 4, 1)
    bias = model.rnn.bias_ih_l0.detach() + model.rnn.bias_hh_l0.detach()
    assert torch.equal(bias[h : 2 * h], torch.ones(h))
    assert torch.equal(bias[:h], torch.zeros(h))
    w = model.rnn.weight_hh_l0.detach()
    for k in range(4):
        block = w[k * h : (k + 1) * h]
        assert torch.allclose(block @ block.T, torch.eye(h), atol=1e-5)
    bound = (6 / (4 + 4 * h)) ** 0.5
    assert model.rnn.weight_ih_l0.abs().max() <= bound


def test_residual_untrained_model_is_persistence():
    # Rule: with residual the untrained output is the last input value of the target column.
    model = SequenceModel(ModelSpec(hidden_size=8), 4, 2, residual_index=[3, 1]).eval()
    x = _x()
    assert torch.equal(model(x), x[:, -1, [3, 1]])


def test_gradients_reach_every_parameter():
    # Rule: attention pooling, the recurrent stack and the head all learn.
    model = SequenceModel(ModelSpec(hidden_size=8, attention=True, attention_heads=2), 4, 3)
    model(_x()).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
