"""The CPU fast paths (trainables.training.fast_paths) and the plain path give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.test_trainer import bars_fold, tiny
from trainables.parameters.train_config import TrainConfig
from trainables.training import fast_paths
from trainables.training.fast_paths import FlatGrads, use_fast_paths
from trainables.training.network import ModelSpec, SequenceModel
from trainables.training.optim import Gradients, gradients
from trainables.training.trainer import fit


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fit_both(cfg: TrainConfig):
    fold = bars_fold(400)
    with use_fast_paths(True):
        fast = fit(cfg, fold, log=None)
    with use_fast_paths(False):
        plain = fit(cfg, fold, log=None)
    return fast, plain


# ---------------------------------------------------------------------- the switch


def test_environment_switches_every_fast_path_off(monkeypatch):
    # Rule: LSTM_ORCH_FAST_PATHS=0 (or off/false/no) turns the fast paths off; default on.
    monkeypatch.delenv(fast_paths.ENV, raising=False)
    assert fast_paths.enabled()
    for off in ("0", "off", "False", " no "):
        monkeypatch.setenv(fast_paths.ENV, off)
        assert not fast_paths.enabled()
    monkeypatch.setenv(fast_paths.ENV, "1")
    assert fast_paths.enabled()


def test_use_fast_paths_overrides_the_environment_inside_the_block_only(monkeypatch):
    # Rule: use_fast_paths(on) wins over the environment while it is active, then not.
    monkeypatch.setenv(fast_paths.ENV, "0")
    with use_fast_paths(True):
        assert fast_paths.enabled()
        with use_fast_paths(False):
            assert not fast_paths.enabled()
        assert fast_paths.enabled()
    assert not fast_paths.enabled()


def test_use_fast_paths_is_per_thread():
    # Rule: the override holds in the thread that set it; another thread follows the
    # environment (two fits in two threads can run one path each).
    import threading

    seen = []
    with use_fast_paths(False):
        thread = threading.Thread(target=lambda: seen.append(fast_paths.enabled()))
        thread.start()
        thread.join()
        assert not fast_paths.enabled()
    assert seen == [fast_paths.enabled()]


def test_switched_off_fit_uses_torch_plain_settings():
    # Rule: with the switch off, new tensors are NaN-filled as deterministic mode does, the
    # gradients are torch's own tensors and the stacked RNN is torch's module.
    flags, seen = torch.utils.deterministic, []
    with use_fast_paths(False):
        fit(
            tiny(epochs=1, num_layers=2, dropout=0.2),
            bars_fold(400),
            log=None,
            on_epoch=lambda r: seen.append(flags.fill_uninitialized_memory),
        )
        model = SequenceModel(tiny(num_layers=2, dropout=0.2), 4, 1).train()
        assert isinstance(gradients(list(model.parameters()), single_process=True), Gradients)
        assert not fast_paths.runs_layer_by_layer(model.rnn, torch.zeros(2, 3, 4))
    assert seen == [True]
    with use_fast_paths(True):
        assert isinstance(gradients(list(model.parameters()), single_process=True), FlatGrads)
        assert fast_paths.runs_layer_by_layer(model.rnn, torch.zeros(2, 3, 4))
        # DDP's reducer owns the gradients: never the flat buffer there.
        assert isinstance(gradients(list(model.parameters()), single_process=False), Gradients)


# ---------------------------------------------------------------------- same numbers


@pytest.mark.parametrize(
    "settings",
    [
        {"num_layers": 2, "hidden_size": 16},
        {"num_layers": 3, "hidden_size": 16, "bidirectional": True},
        {"cell": "gru", "attention": True, "attention_heads": 2},
        {"num_layers": 1, "dropout": 0.3},  # the head's dropout: the same draws on both paths
    ],
)
def test_unclipped_fits_are_bit_identical(settings):
    # Rule: without inter-layer dropout and with clipping off, fast and plain paths give the
    # same weights, predictions and curves, bit for bit.
    fast, plain = _fit_both(tiny(epochs=2, grad_clip=0.0, learning_rate=0.01, **settings))
    for k, v in plain.model.state_dict().items():
        assert torch.equal(fast.model.state_dict()[k], v), k
    assert np.array_equal(fast.predictions, plain.predictions)
    assert [r.train_loss for r in fast.history] == [r.train_loss for r in plain.history]
    assert [r.grad_norm for r in fast.history] == pytest.approx(
        [r.grad_norm for r in plain.history], rel=1e-6
    )


def test_clipped_fits_agree_to_the_last_bits():
    # Rule: with clipping on every step the two paths differ only by the order in which the
    # gradient norm is summed (one flat vector vs per-tensor norms): float32 rounding.
    cfg = tiny(
        epochs=2,
        grad_clip=1e-3,
        learning_rate=0.01,
        num_layers=3,
        hidden_size=16,
        bidirectional=True,
    )
    fast, plain = _fit_both(cfg)
    assert all(r.grad_norm > 1e-3 for r in plain.history)  # the clip really bites
    for k, v in plain.model.state_dict().items():
        torch.testing.assert_close(fast.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.predictions, plain.predictions, rtol=1e-5, atol=1e-6)


def test_flat_gradients_clip_like_clip_grad_norm_and_are_cleared_between_steps():
    # Rule: the one-buffer gradients give torch's clip_grad_norm_ result (pre-clip norm and
    # clipped gradients), and zero() clears a step's gradients before the next one.
    cfg = TrainConfig(hidden_size=8, num_layers=2, dropout=0.0)
    torch.manual_seed(0)
    ours, ref = SequenceModel(cfg, 4, 2), SequenceModel(cfg, 4, 2)
    ref.load_state_dict(ours.state_dict())
    flat, plain = FlatGrads(list(ours.parameters())), Gradients(list(ref.parameters()))
    x = torch.randn(16, 6, 4)
    for _ in range(2):
        flat.zero()
        ours(x).square().sum().backward()
        norm = flat.clip(0.5)
        plain.zero()
        ref(x).square().sum().backward()
        want = plain.clip(0.5)
        assert float(norm) == pytest.approx(float(want), rel=1e-5)
        for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad)
    assert float(norm) > 0.5  # the clip really scaled them


def test_plain_path_trains_with_torch_own_dropout():
    # Rule: switched off, a training forward is exactly torch's stacked module (its own
    # dropout draws), so the fast path's own mask is the only difference.
    spec = ModelSpec(hidden_size=8, num_layers=2, dropout=0.4)
    model = SequenceModel(spec, 4, 1).train()
    x = torch.randn(5, 7, 4)
    with use_fast_paths(False):
        torch.manual_seed(3)
        got = model.hidden_states(x)
    torch.manual_seed(3)
    want, _ = model.rnn(x)
    assert torch.equal(got, want)


# ---------------------------------------------------------------------- no compiler


def test_a_fit_in_a_fresh_process_loads_no_compiler_only_with_fast_paths_on():
    # Rule: switched on, a fit never imports torch._dynamo or torch._inductor (1-3.5 s in
    # every fresh Ray worker); the plain path is torch's own, which imports them.
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; from tests.training.test_trainer import bars_fold, tiny; "
        "from trainables.training.trainer import fit; "
        "fit(tiny(epochs=2, num_layers=2, dropout=0.2), bars_fold(300), log=None); "
        "print(sorted(m for m in ('torch._dynamo', 'torch._inductor') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    seen = {}
    for switch in ("1", "0"):
        env = {**os.environ, "PYTHONPATH": str(root), fast_paths.ENV: switch}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root
        )
        assert out.returncode == 0, out.stderr[-2000:]
        seen[switch] = out.stdout.strip().splitlines()[-1]
    assert seen == {"1": "[]", "0": "['torch._dynamo', 'torch._inductor']"}


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("fused", [True, False])
def test_eager_optimizer_steps_like_torch_and_runs_its_hooks(name, fused):
    # Rule: the optimizer without compiler guards makes the same updates as torch's, bit for
    # bit, keeps torch's step hooks and state_dict round trip.
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    extra = {"momentum": 0.9} if name == "sgd" else {}
    weights, hooks = [], []
    for make in (cls, fast_paths.eager_optimizer(cls)):
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 3)
        opt = make(model.parameters(), lr=0.01, weight_decay=0.01, fused=fused, **extra)
        opt.register_step_post_hook(lambda o, a, k: hooks.append(type(o).__name__))
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(8, 5)).square().mean().backward()
            opt.step()
        opt.load_state_dict(opt.state_dict())
        weights.append([p.detach().clone() for p in model.parameters()])
    assert fast_paths.eager_optimizer(cls) is not cls and issubclass(
        fast_paths.eager_optimizer(cls), cls
    )
    for a, b in zip(*weights, strict=True):
        assert torch.equal(a, b)
    assert len(hooks) == 6
    with use_fast_paths(False):
        assert fast_paths.eager_optimizer(cls) is cls


def test_deterministic_mode_is_set_and_restored_alike_on_both_paths():
    # Rule: Deterministic sets torch's deterministic flags (warn only) inside the block and
    # puts the caller's back after it, with or without the fast path.
    from trainables.training.devices import Deterministic

    for on in (True, False):
        with use_fast_paths(on):
            before = torch.are_deterministic_algorithms_enabled()
            with Deterministic(torch.device("cpu")):
                assert torch.are_deterministic_algorithms_enabled()
                assert torch.is_deterministic_algorithms_warn_only_enabled()
            assert torch.are_deterministic_algorithms_enabled() == before
