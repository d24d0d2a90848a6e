"""Choose ``batch_size='auto'``: the users' memory formula as a first guess, then a real probe.

The guide's formula (docs/parameters.md, "The guide's GPU memory formula") is only a start:
it counts one layer of gate activations and nothing of cuDNN's workspace, so it can be far
off. The probe runs real forward + backward + optimizer steps at power-of-two batch sizes
on the trial's device and keeps the largest one that neither runs out of memory nor peaks
above ``memory_fraction`` of the device's memory (or of the trial's share of it).

Results are cached per model shape, device and budget: in-process, and in a JSON file
(``~/.cache/lstm-orchestrator/batch_probe.json``; ``$LSTM_ORCH_CACHE_DIR`` overrides the
folder) so the trials of a sweep on one machine probe each shape once. Never pickled.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainables.errors import ConfigError, TrainingError
from trainables.training.network import ModelSpec, SequenceModel

__all__ = [
    "CACHE_DIR_ENV",
    "CPU_FALLBACK_BATCH_SIZE",
    "ProbeCache",
    "ProbeResult",
    "ProbeTry",
    "choose_batch_size",
    "default_cache_path",
    "estimate_memory_gb",
    "is_oom",
    "probe_batch_size",
]

# The guide's default ``batch_size: 512`` (docs/parameters.md, "The guide's default configuration").
# On CPU there is no device memory to probe, so 'auto' means this.
CPU_FALLBACK_BATCH_SIZE = 512
# Above this, larger batches mostly trade generalisation for speed; the guide's largest is 2048.
DEFAULT_MAX_BATCH = 8192
CACHE_DIR_ENV = "LSTM_ORCH_CACHE_DIR"
_CACHE_FILE = "batch_probe.json"
_SHAPE_FIELDS = (
    "cell",
    "hidden_size",
    "num_layers",
    "bidirectional",
    "attention",
    "attention_heads",
)
_GIB = 1024**3

StepFn = Callable[[nn.Module, int], None]


def estimate_memory_gb(
    batch_size: int, sequence_length: int, n_features: int, hidden_size: int, num_layers: int
) -> float:
    """The guide's formula, verbatim (docs/parameters.md, "The guide's GPU memory formula"), GiB."""
    params = 4 * hidden_size * (n_features + hidden_size + 1) * num_layers
    model_mem = (params * 4) / (1024**3)  # 4 bytes per float32
    # Activations (4x hidden state for LSTM gates); note: not multiplied by num_layers.
    activation_mem = (batch_size * sequence_length * hidden_size * 4 * 4) / (1024**3)
    optimizer_mem = model_mem * 2  # AdamW: momentum + variance
    return (model_mem + activation_mem + optimizer_mem) * 1.2  # 20% overhead


def is_oom(err: BaseException) -> bool:
    """True for a device out-of-memory error, whichever way torch raised it."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    # Older torch and some cuDNN/cuBLAS paths raise a plain RuntimeError instead.
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


@dataclass(frozen=True)
class ProbeTry:
    """One tried batch size: did it fit, and the peak device memory it reached."""

    batch_size: int
    fits: bool
    peak_bytes: int | None  # torch.cuda.max_memory_allocated; None off CUDA
    reason: str = ""  # why it did not fit: "out of memory: ..." or "peak ... over budget ..."


@dataclass
class ProbeResult:
    """The chosen batch size and every try behind it."""

    batch_size: int
    estimate_batch_size: int  # what the formula alone would have chosen
    budget_bytes: int | None  # memory the probe allowed itself; None when unknown (CPU)
    device_name: str
    tries: list[ProbeTry] = field(default_factory=list)
    from_cache: bool = False

    @property
    def peak_bytes(self) -> int | None:
        """Peak memory of the chosen batch size."""
        return next((t.peak_bytes for t in self.tries if t.batch_size == self.batch_size), None)

    def summary(self) -> str:
        """One line: ``1024 fits at 3.1 GiB of 72.0 GiB budget; estimate said 512``."""
        peak = "?" if self.peak_bytes is None else f"{self.peak_bytes / _GIB:.1f} GiB"
        budget = "unknown" if self.budget_bytes is None else f"{self.budget_bytes / _GIB:.1f} GiB"
        ooms = [t.batch_size for t in self.tries if not t.fits]
        tail = f"; {min(ooms)} did not fit" if ooms else ""
        return (
            f"{self.batch_size} fits at {peak} of {budget} budget; "
            f"estimate said {self.estimate_batch_size}{tail}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeResult:
        tries = [ProbeTry(**t) for t in d["tries"]]
        return cls(**{**d, "tries": tries})


def default_cache_path() -> Path:
    """``$LSTM_ORCH_CACHE_DIR/batch_probe.json``, else ``~/.cache/lstm-orchestrator/...``."""
    folder = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "lstm-orchestrator"
    return Path(folder) / _CACHE_FILE


class ProbeCache:
    """Probe results by key: an in-process dict, backed by a JSON file when ``path`` is given.

    The file is read on a miss (another trial on this machine may have probed already) and
    rewritten atomically on ``put``. It is only a cache: an unreadable or unwritable file is
    treated as empty rather than failing a training run.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> ProbeResult | None:
        entry = self._entries.get(key) or self._read_file().get(key)
        if entry is None:
            return None
        self._entries[key] = entry
        result = ProbeResult.from_dict(entry)
        result.from_cache = True
        return result

    def put(self, key: str, result: ProbeResult) -> None:
        entry = {**result.to_dict(), "from_cache": False}
        self._entries[key] = entry
        if self.path is None:
            return
        entries = {**self._read_file(), key: entry}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a concurrent reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "entries": entries}, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            pass  # read-only home or full disk: the in-process cache still works

    def _read_file(self) -> dict[str, dict[str, Any]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return dict(data.get("entries", {}))
        except (OSError, ValueError, AttributeError):
            return {}


_DEFAULT_CACHES: dict[Path, ProbeCache] = {}


def _default_cache() -> ProbeCache:
    path = default_cache_path()
    return _DEFAULT_CACHES.setdefault(path, ProbeCache(path))


def _cache_key(parts: Mapping[str, Any]) -> str:
    # torch's version is part of the key: allocator and cuDNN changes move the peak.
    return json.dumps({**parts, "torch": torch.__version__}, sort_keys=True)


def _default_step(
    *, sequence_length: int, n_features: int, amp_dtype: torch.dtype | None
) -> StepFn:
    """Two real training steps on random data: the second one holds optimizer state too."""

    def step(model: nn.Module, batch_size: int) -> None:
        device = next(model.parameters()).device
        x = torch.randn(batch_size, sequence_length, n_features, device=device)  # [B, T, F]
        optimizer = torch.optim.AdamW(model.parameters())
        model.train()
        for _ in range(2):
            with torch.autocast(
                device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None
            ):
                out = model(x)  # [B, n_outputs]
            loss = out.float().square().mean()  # the loss's kind does not change the memory
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """``cfg.amp`` -> autocast dtype, as ``trainables.training.trainer.resolve_amp`` picks it on CUDA."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _power_of_two_candidates(max_batch: int) -> list[int]:
    out, b = [], 1
    while b <= max_batch:
        out.append(b)
        b *= 2
    return out


def probe_batch_size(
    build_model: Callable[[], nn.Module],
    *,
    sequence_length: int,
    n_features: int,
    n_outputs: int,
    device: str | torch.device,
    memory_fraction: float = 0.9,
    memory_budget_bytes: int | None = None,
    candidates: Sequence[int] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    amp_dtype: torch.dtype | None = None,
    model_shape: Mapping[str, Any] | None = None,
    cache: ProbeCache | None = None,
    step_fn: StepFn | None = None,
) -> ProbeResult:
    """The largest batch size that trains on ``device`` within the memory budget.

    The budget is ``memory_fraction`` of ``memory_budget_bytes`` (the trial's share of a
    fractional GPU) or else of the device's total memory. The search starts at the largest
    candidate the formula says fits, doubles while tries fit and halves after a failed
    start. ``amp_dtype`` (bfloat16/float16, None = float32) is the autocast dtype of the
    trainer. ``model_shape`` (cell, hidden_size, num_layers, bidirectional, attention, ...)
    plus the data shape, ``amp_dtype``, the device name and budget key the ``cache``.
    ``step_fn(model, batch_size)`` replaces the real training step (tests inject OOMs).
    """
    device, budget, device_name = _device_budget(device, memory_fraction, memory_budget_bytes)
    sizes = (
        sorted(set(candidates)) if candidates is not None else _power_of_two_candidates(max_batch)
    )
    if not sizes or sizes[0] < 1:
        raise ConfigError(
            f"batch size candidates must be positive integers, but got {candidates=}, {max_batch=}"
        )
    key = None
    if cache is not None and model_shape is not None:
        key = _cache_key(
            {
                **model_shape,
                "sequence_length": sequence_length,
                "n_features": n_features,
                "n_outputs": n_outputs,
                "amp": str(amp_dtype).removeprefix("torch."),
                "device": device_name,
                "budget_bytes": budget,
                "candidates": sizes,
            }
        )
        hit = cache.get(key)
        if hit is not None:
            return hit

    start = _formula_start(
        sizes, budget, model_shape, sequence_length=sequence_length, n_features=n_features
    )
    step = step_fn or _default_step(
        sequence_length=sequence_length, n_features=n_features, amp_dtype=amp_dtype
    )
    tries: list[ProbeTry] = []

    def fits(i: int) -> bool:
        tries.append(_try_once(build_model, step, sizes[i], device, budget))
        return tries[-1].fits

    best = _search(fits, start, len(sizes))
    if best is None:
        raise TrainingError(
            f"no batch size fits on {device_name}: even batch_size={sizes[0]} failed "
            f"({tries[-1].reason}) with sequence_length={sequence_length}, n_features={n_features}"
        )
    result = ProbeResult(
        batch_size=sizes[best],
        estimate_batch_size=sizes[start],
        budget_bytes=budget,
        device_name=device_name,
        tries=tries,
    )
    if key is not None:
        cache.put(key, result)
    return result


def _device_budget(
    device: str | torch.device, memory_fraction: float, memory_budget_bytes: int | None
) -> tuple[torch.device, int | None, str]:
    """(device with its index, bytes the probe may use or None off CUDA, device name)."""
    if not 0 < memory_fraction <= 1:
        raise ConfigError(f"memory_fraction must be in (0, 1], but got {memory_fraction=}")
    if memory_budget_bytes is not None and memory_budget_bytes <= 0:
        raise ConfigError(f"memory_budget_bytes must be > 0, but got {memory_budget_bytes=}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    share = memory_budget_bytes
    if share is None and cuda:
        share = torch.cuda.get_device_properties(device).total_memory
    budget = None if share is None else int(share * memory_fraction)
    return device, budget, torch.cuda.get_device_name(device) if cuda else device.type


def _formula_start(
    sizes: list[int],
    budget: int | None,
    model_shape: Mapping[str, Any] | None,
    *,
    sequence_length: int,
    n_features: int,
) -> int:
    """Index of the largest candidate the users' formula says fits the budget; 0 (grow from
    the smallest) without a budget or the model's width."""
    if budget is None or model_shape is None or "hidden_size" not in model_shape:
        return 0
    hidden, layers = int(model_shape["hidden_size"]), int(model_shape.get("num_layers", 1))
    start = 0
    for i, b in enumerate(sizes):
        if estimate_memory_gb(b, sequence_length, n_features, hidden, layers) * _GIB <= budget:
            start = i
    return start


def _search(fits: Callable[[int], bool], start: int, n: int) -> int | None:
    """The largest index that fits: grow from ``start`` while tries fit (the first failure
    ends it), or shrink from ``start - 1`` after a failed start. None when nothing fits."""
    if fits(start):
        best = start
        while best + 1 < n and fits(best + 1):
            best += 1
        return best
    return next((i for i in range(start - 1, -1, -1) if fits(i)), None)


def _try_once(
    build_model: Callable[[], nn.Module],
    step: StepFn,
    batch_size: int,
    device: torch.device,
    budget: int | None,
) -> ProbeTry:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    model, reason = None, ""
    try:
        # A fresh model per try, so optimizer state of an earlier try does not count here.
        model = build_model().to(device)
        step(model, batch_size)
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError
        if not is_oom(err):
            raise
        reason = "out of memory: " + (str(err).splitlines() or [""])[0][:200]
    # ``err`` and its traceback (which pins the step's tensors) are gone here, so the
    # memory they held can actually be released.
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    del model
    if cuda:
        gc.collect()  # reference cycles can still pin device tensors
        torch.cuda.empty_cache()
    if not reason and budget is not None and peak is not None and peak > budget:
        reason = f"peak {peak / _GIB:.2f} GiB over budget {budget / _GIB:.2f} GiB"
    return ProbeTry(batch_size=batch_size, fits=not reason, peak_bytes=peak, reason=reason)


def choose_batch_size(
    cfg: Any,
    *,
    n_features: int,
    n_outputs: int,
    device: str | torch.device,
    fallback: int | None = None,
    log: Callable[[str], None] = print,
    memory_budget_bytes: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    cache: ProbeCache | None = None,
) -> int:
    """The batch size for ``cfg.batch_size == 'auto'`` on ``device``; logs the decision.

    CPU: ``fallback`` (default ``CPU_FALLBACK_BATCH_SIZE`` = 512, the guide's default),
    without probing. CUDA: the cached probe result for this model shape, device and budget,
    else a real probe (cached in-process and in the JSON file of ``default_cache_path()``).
    ``max_batch`` caps the search and the fallback (pass the number of training samples to
    avoid batches larger than an epoch); ``memory_budget_bytes`` is the trial's share of a fractional GPU.
    """
    if cfg.batch_size != "auto":
        return int(cfg.batch_size)
    device = torch.device(device)
    if device.type != "cuda":
        chosen = CPU_FALLBACK_BATCH_SIZE if fallback is None else int(fallback)
        chosen = max(1, min(chosen, max_batch))
        log(f"batch_size auto -> {chosen} (no CUDA device: default, no probe)")
        return chosen
    spec = ModelSpec.of(cfg)
    # Everything of the architecture that moves memory; dropout does not, so trials that
    # differ only in dropout share one probe.
    shape = {k: getattr(spec, k) for k in _SHAPE_FIELDS}
    result = probe_batch_size(
        lambda: SequenceModel(cfg, n_features, n_outputs),
        sequence_length=cfg.sequence_length,
        n_features=n_features,
        n_outputs=n_outputs,
        device=device,
        memory_budget_bytes=memory_budget_bytes,
        max_batch=max_batch,
        amp_dtype=_amp_dtype(str(getattr(cfg, "amp", "off")), device),
        model_shape=shape,
        cache=cache if cache is not None else _default_cache(),
    )
    source = "cached probe" if result.from_cache else "probe"
    log(f"batch_size auto -> {result.batch_size} ({source}: {result.summary()})")
    return result.batch_size
