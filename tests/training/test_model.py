"""SequenceModel: shapes of every head, dropout only in training, initialisation, residual."""

from __future__ import annotations

import re

import pytest
import torch

from trainables.parameters.train_config import TrainConfig
from trainables.training.fast_paths import use_fast_paths
from trainables.training.network import ModelSpec, SequenceModel


def _x(batch: int = 5, sequence_length: int = 7, features: int = 4) -> torch.Tensor:
    return torch.randn(batch, sequence_length, features, generator=torch.Generator().manual_seed(0))


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
    # Rule: hidden_states is [n_samples, sequence_length, hidden_size * directions].
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


def _single_layer(rnn: torch.nn.RNNBase, layer: int) -> torch.nn.RNNBase:
    """A one-layer copy of ``rnn``'s layer ``layer`` (both directions), same weights."""
    one = type(rnn)(
        rnn.input_size if layer == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1),
        rnn.hidden_size,
        1,
        batch_first=True,
        bidirectional=rnn.bidirectional,
    )
    suffix = re.compile(rf"_l{layer}(_reverse)?$")
    one.load_state_dict(
        {
            suffix.sub(lambda m: "_l0" + (m.group(1) or ""), name): value
            for name, value in rnn.state_dict().items()
            if suffix.search(name)
        }
    )
    return one


@pytest.mark.parametrize(
    "settings", [{}, {"cell": "gru"}, {"bidirectional": True}, {"num_layers": 3, "cell": "gru"}]
)
def test_training_on_cpu_is_the_stack_with_dropout_between_layers(settings):
    # Rule: in training on the CPU the stacked RNN runs layer by layer (a cheaper dropout
    # mask); it must be exactly "layer, inverted dropout with keep-probability 1-p, layer".
    spec = ModelSpec(**{"hidden_size": 8, "num_layers": 2, "dropout": 0.4, **settings})
    model = SequenceModel(spec, 4, 1).train()
    layers = [_single_layer(model.rnn, k) for k in range(spec.num_layers)]
    x = _x().requires_grad_(True)
    torch.manual_seed(7)
    with use_fast_paths(True):
        got = model.hidden_states(x)
    got.sum().backward()
    got_grads = [p.grad.clone() for p in model.rnn.parameters()]

    torch.manual_seed(7)  # the same draws, made by hand
    out = x
    dropped = []
    for k, layer in enumerate(layers):
        if k:
            keep = torch.rand(out.shape) >= spec.dropout
            dropped.append(1 - keep.float().mean().item())
            out = torch.where(keep, out, 0.0) / (1 - spec.dropout)
        out, _ = layer(out)
    torch.testing.assert_close(got, out, rtol=0, atol=1e-6)
    out.sum().backward()
    want_grads = [p.grad for layer in layers for p in layer.parameters()]
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    assert all(0.2 < d < 0.6 for d in dropped)  # p = 0.4 of the units really are dropped


@pytest.mark.parametrize("settings", [{}, {"cell": "gru", "bidirectional": True}])
def test_layer_by_layer_without_dropout_equals_the_stacked_module(settings):
    # Rule: the layer-by-layer path runs the same weights in the same order as self.rnn.
    spec = ModelSpec(**{"hidden_size": 8, "num_layers": 3, "dropout": 0.0, **settings})
    model = SequenceModel(spec, 4, 1).train()
    model.rnn.dropout = 1e-30  # takes the layer-by-layer path; no unit is ever dropped
    stacked, _ = model.rnn.__class__.forward(model.rnn, _x())
    with use_fast_paths(True):
        assert torch.equal(model.hidden_states(_x()), stacked)
