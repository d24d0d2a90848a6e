"""CPU speed-ups that reach into torch internals: all here, behind one switch.

On a small CPU model (hidden 64, 2 layers, seq 10, batch 64, 2 threads) a training step is
a chain of small ops, and three of them cost more than they need to:

1. ``rnn_layer_by_layer``: torch's stacked LSTM/GRU draws its inter-layer dropout mask with
   ``bernoulli_``, ~10% of the step. Run the stack one layer at a time with the same kernel
   (``torch._VF.lstm`` / ``_VF.gru`` on ``rnn._flat_weights``, both private) and a mask
   drawn with ``rand`` (half the cost). CPU training with dropout between layers only:
   cuDNN runs the whole stack at once.
2. ``FlatGrads``: every parameter's ``.grad`` is a view of one buffer, so zeroing, the
   norm and the clip are one op each instead of ~25 small per-tensor ops (~3%). Single
   process only: under DDP the reducer owns the gradients.
3. ``unfilled_memory``: deterministic mode fills every new uninitialised tensor with NaN,
   a debugging aid of ~90 ``fill_`` calls per step (~6%); it changes no result.
4. ``deterministic_algorithms`` and ``eager_optimizer``: torch's compiler
   (``torch._dynamo``, 1-3.5 s to import) is loaded by the first fit of every fresh
   process, a sweep's Ray workers included, though nothing here compiles:
   ``torch.use_deterministic_algorithms`` imports ``torch._inductor.config`` to set a flag
   only compiled code reads, and every optimizer's ``step`` imports ``torch._dynamo`` for a
   ``graph_break()`` (a no-op in eager mode), as do the first calls of the guards
   ``torch._disable_dynamo`` puts around ``add_param_group`` (the constructor),
   ``state_dict``, ``load_state_dict`` and ``zero_grad``. Set the eager flag alone
   (``torch._C``, private; the compiler's too if something else loaded it), and train with
   a subclass of the optimizer whose methods are torch's own without those wrappers
   (``__wrapped__``). The same kernels and updates run either way.

The switch: ``LSTM_ORCH_FAST_PATHS=0`` (or off, false, no) in the environment, or
``with use_fast_paths(False):`` in code (for the calling thread), turns all four off; the
default is on. The plain path
is torch's own ``nn.LSTM``/``nn.GRU`` forward, ``.grad = None`` + ``clip_grad_norm_`` and
deterministic mode as torch sets it (``torch.use_deterministic_algorithms``). It gives the same numbers (tests/training/test_fast_paths.py):
bit for bit, except that (1) draws other dropout masks than torch's kernel (a different
random stream, not a different computation: tested against a hand-written
"layer, inverted dropout, layer") and (2) sums the gradient norm in another order, so a
clipped step can differ in the last bits.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import _VF, nn

__all__ = [
    "ENV",
    "FlatGrads",
    "deterministic_algorithms",
    "eager_optimizer",
    "enabled",
    "flat_gradients",
    "rnn_layer_by_layer",
    "runs_layer_by_layer",
    "unfilled_memory",
    "use_fast_paths",
]

ENV = "LSTM_ORCH_FAST_PATHS"
_OFF = ("0", "off", "false", "no")
# use_fast_paths() overrides the environment in its own thread while it is active (like
# torch.no_grad), so two fits in two threads can run one path each.
_local = threading.local()


def enabled() -> bool:
    """Whether the fast paths are on: ``use_fast_paths`` if active in this thread, else
    ``$LSTM_ORCH_FAST_PATHS`` (default on)."""
    forced = getattr(_local, "forced", None)
    if forced is not None:
        return forced
    return os.environ.get(ENV, "1").strip().lower() not in _OFF


@contextmanager
def use_fast_paths(on: bool) -> Iterator[None]:
    """Fast paths on or off inside the block (this thread), whatever the environment says."""
    before = getattr(_local, "forced", None)
    _local.forced = bool(on)
    try:
        yield
    finally:
        _local.forced = before


# ---------------------------------------------------------------------- 1. stacked RNN


def runs_layer_by_layer(rnn: nn.RNNBase, x: torch.Tensor) -> bool:
    """True where ``rnn_layer_by_layer`` replaces ``rnn(x)``: switched on, training on the
    CPU, and dropout between stacked layers (where torch's ``bernoulli_`` mask costs)."""
    return (
        rnn.training
        and rnn.num_layers > 1
        and rnn.dropout > 0
        and x.device.type == "cpu"
        and enabled()
    )


def rnn_layer_by_layer(rnn: nn.LSTM | nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """``rnn(x)[0]`` computed one layer at a time (batch_first, zero initial state), with
    inverted dropout of probability ``rnn.dropout`` between layers drawn here.

    The same weights and kernel as ``rnn(x)``: bit-identical when no unit is dropped.
    """
    p = rnn.dropout
    dirs = 2 if rnn.bidirectional else 1
    per_layer = len(rnn._flat_weights) // rnn.num_layers  # [w_ih, w_hh, b_ih, b_hh] x dirs
    lstm = isinstance(rnn, nn.LSTM)
    run = _VF.lstm if lstm else _VF.gru
    out = x
    for layer in range(rnn.num_layers):
        if layer:
            keep = torch.rand(out.shape, device=out.device) >= p  # float32 draws
            out = torch.where(keep, out, 0.0) * (1.0 / (1.0 - p))
        weights = rnn._flat_weights[layer * per_layer : (layer + 1) * per_layer]
        h0 = out.new_zeros(dirs, out.shape[0], rnn.hidden_size)
        hx = (h0, h0) if lstm else h0
        # (input, hx, weights, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        out = run(out, hx, weights, rnn.bias, 1, 0.0, True, rnn.bidirectional, True)[0]
    return out  # [B, L, H * dirs]


# ---------------------------------------------------------------------- 2. gradients


class FlatGrads:
    """Gradients in one buffer: ``zero()`` and ``clip(max_norm)`` like ``Gradients``.

    autograd accumulates into an existing ``.grad`` in place, so after ``zero()`` the
    backward pass writes straight into the buffer's views.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = [p for p in params if p.requires_grad]
        (device, dtype), *others = {(p.device, p.dtype) for p in self.params}
        if others:
            raise ValueError("FlatGrads needs every parameter on one device with one dtype")
        self.flat = torch.zeros(sum(p.numel() for p in self.params), device=device, dtype=dtype)
        offset = 0
        for p in self.params:
            p.grad = self.flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()

    def zero(self) -> None:
        self.flat.zero_()

    def clip(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a total 2-norm of at most ``max_norm``; returns the norm
        before clipping (a 0-d tensor, left on the device)."""
        norm = torch.linalg.vector_norm(self.flat)
        if math.isfinite(max_norm):
            # The same rule as clip_grad_norm_: a factor of min(1, max_norm / (norm + 1e-6)).
            self.flat.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm


def flat_gradients(params: list[nn.Parameter]) -> FlatGrads | None:
    """``FlatGrads`` for a single process's parameters, or None when switched off or the
    parameters do not share one device and dtype (the caller then uses the plain path)."""
    kinds = {(p.device, p.dtype) for p in params if p.requires_grad}
    if not enabled() or len(kinds) != 1:
        return None
    return FlatGrads(params)


# ---------------------------------------------------------------------- 3. NaN filling


@contextmanager
def unfilled_memory() -> Iterator[None]:
    """Deterministic mode without NaN-filling new tensors inside the block (when switched on)."""
    flags = torch.utils.deterministic
    before = flags.fill_uninitialized_memory
    if enabled():
        flags.fill_uninitialized_memory = False
    try:
        yield
    finally:
        flags.fill_uninitialized_memory = before


# ---------------------------------------------------------------------- 4. determinism


def deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """``torch.use_deterministic_algorithms(mode, warn_only=warn_only)``; switched on, without
    importing the compiler (``torch._inductor``) just to set its flag."""
    if not enabled():
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:  # loaded by someone else: keep it in step, as torch does
        inductor.deterministic = mode
    torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


# Methods of torch.optim.Optimizer that torch wraps in torch._disable_dynamo.
_GUARDED = ("add_param_group", "state_dict", "load_state_dict", "zero_grad")
_EAGER: dict[type, type] = {}


def eager_optimizer(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls``, or (switched on) a subclass whose ``step`` and the ``_GUARDED`` methods run
    torch's own code without its compiler guards, which import ``torch._dynamo`` on first
    use (``step``: on every call) for a ``graph_break()`` that does nothing without
    ``torch.compile``. The same update, the same hooks (torch wraps this ``step`` in its
    profiling and hook wrapper like any other)."""
    if not enabled():
        return cls
    if cls not in _EAGER:
        raw_step = inspect.unwrap(cls.step)  # under its grad-mode and graph-break wrappers

        def step(self, closure=None):
            # What torch's wrapper does in eager mode: the step runs with grad mode set to
            # the optimizer's ``differentiable`` (off by default).
            with torch.set_grad_enabled(self.defaults["differentiable"]):
                return raw_step(self, closure)

        methods = {name: inspect.unwrap(getattr(cls, name)) for name in _GUARDED}
        _EAGER[cls] = type(f"Eager{cls.__name__}", (cls,), {"step": step, **methods})
    return _EAGER[cls]
