"""batch_size='auto': the users' memory formula, the real probe, its OOM handling and cache."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trainables.errors import ConfigError, TrainingError
from trainables.parameters.train_config import TrainConfig
from trainables.training.gpu_probe import (
    CACHE_DIR_ENV,
    CPU_FALLBACK_BATCH_SIZE,
    ProbeCache,
    choose_batch_size,
    default_cache_path,
    estimate_memory_gb,
    is_oom,
    probe_batch_size,
)

SHAPE = {
    "cell": "lstm",
    "hidden_size": 16,
    "num_layers": 1,
    "bidirectional": False,
    "attention": False,
}


class TinyLSTM(nn.Module):
    """A real (small) sequence model: [B, T, F] -> [B, n_outputs]."""

    def __init__(self, n_features: int = 3, hidden: int = 16, n_outputs: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # [B, T, H]
        return self.head(out[:, -1])  # [B, n_outputs]


class OomAbove:
    """Fault injection: a training step that runs out of memory above ``limit`` samples."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[int] = []

    def __call__(self, model: nn.Module, batch_size: int) -> None:
        self.calls.append(batch_size)
        if batch_size > self.limit:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {batch_size} MiB (fake, for the test)"
            )


def probe(step, **kw):
    args = dict(sequence_length=10, n_features=3, n_outputs=2, device="cpu", max_batch=1024)
    return probe_batch_size(TinyLSTM, **{**args, **kw}, step_fn=step)


def test_formula_is_the_guides_and_gives_what_it_computes():
    # The guide's worked example (batch 512, seq 60, 25 features, hidden 256, 2 layers) says
    # "~3.8GB", but its own formula gives 0.148 GiB: params 577,536 -> 2.2 MB weights,
    # 4.4 MB AdamW state, 117.2 MiB gate activations (one layer only), x 1.2 overhead.
    # The 3.8 GB of the prose and table is not produced by the formula; we keep the formula
    # verbatim as the probe's first guess and let the real probe measure.
    assert estimate_memory_gb(512, 60, 25, 256, 2) == pytest.approx(0.14837, rel=1e-4)


def test_formula_grows_linearly_with_batch_size():
    # Doubling the batch doubles the activation term only, so the estimate less than doubles.
    small, large = estimate_memory_gb(512, 60, 25, 256, 2), estimate_memory_gb(1024, 60, 25, 256, 2)
    assert 1.9 < large / small < 2.0


def test_is_oom_recognises_out_of_memory_errors_only():
    # The probe treats exactly these as "does not fit"; any other error is a bug to surface.
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    with pytest.raises(RuntimeError) as real:
        torch.zeros(2, 3) @ torch.zeros(4, 5)
    assert not is_oom(real.value)
    assert not is_oom(ValueError("out of memory"))


def test_cpu_auto_returns_the_fallback_without_probing(tmp_path, monkeypatch):
    # On CPU 'auto' means the guide's default batch size 512, and nothing is probed or cached.
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    cfg = _auto_config()
    lines: list[str] = []
    assert choose_batch_size(cfg, n_features=3, n_outputs=1, device="cpu", log=lines.append) == 512
    assert CPU_FALLBACK_BATCH_SIZE == 512
    assert (
        choose_batch_size(cfg, n_features=3, n_outputs=1, device="cpu", fallback=96, log=print)
        == 96
    )
    assert "batch_size auto -> 512" in lines[0]
    assert not default_cache_path().exists()


def test_cpu_fallback_is_capped_at_max_batch():
    # A fold with 300 training samples must not get a batch of 512 on CPU.
    n = choose_batch_size(
        _auto_config(), n_features=3, n_outputs=1, device="cpu", max_batch=300, log=print
    )
    assert n == 300


def test_probe_picks_the_largest_batch_before_oom():
    # Growing from the smallest size, the first OOM stops the search; the size before it wins.
    step = OomAbove(256)
    result = probe(step)
    assert result.batch_size == 256
    failed = [t for t in result.tries if not t.fits]
    assert [t.batch_size for t in failed] == [512]
    assert failed[0].reason.startswith("out of memory")
    assert step.calls[-1] == 512  # nothing larger is tried after an OOM


def test_probe_halves_when_the_estimate_starts_too_high():
    # With a budget the formula starts high (it underestimates); OOMs halve down to what fits.
    step = OomAbove(256)
    result = probe(step, memory_budget_bytes=8 * 1024**3, model_shape=SHAPE)
    assert result.estimate_batch_size == 1024
    assert step.calls == [1024, 512, 256]
    assert result.batch_size == 256


def test_probe_raises_training_error_when_nothing_fits():
    # If even the smallest batch runs out of memory, training cannot start: say so clearly.
    with pytest.raises(TrainingError, match="no batch size fits on cpu: even batch_size=1"):
        probe(OomAbove(0))


def test_probe_does_not_hide_errors_that_are_not_oom():
    # A bug in the model must not be mistaken for "this batch size does not fit".
    def broken(model, batch_size):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        probe(broken)


def test_probe_rejects_a_memory_fraction_outside_0_1():
    # memory_fraction is a share of the device; 1.5 of it cannot be allocated.
    with pytest.raises(ConfigError, match="memory_fraction must be in \\(0, 1\\]"):
        probe(OomAbove(64), memory_fraction=1.5)


def test_default_step_trains_the_model_for_real_on_cpu():
    # Without step_fn the probe runs real forward/backward/optimizer steps (changing weights).
    model = TinyLSTM()
    before = [p.detach().clone() for p in model.parameters()]
    result = probe_batch_size(
        lambda: model, sequence_length=5, n_features=3, n_outputs=2, device="cpu", candidates=[4, 8]
    )
    assert result.batch_size == 8
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_cache_hit_skips_a_second_probe():
    # The trials of a sweep share one shape: the second asks the cache, not the device.
    cache, step = ProbeCache(), OomAbove(256)
    first = probe(step, cache=cache, model_shape=SHAPE)
    n_calls = len(step.calls)
    second = probe(step, cache=cache, model_shape=SHAPE)
    assert len(step.calls) == n_calls
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.batch_size == 256


def test_cache_misses_for_another_shape_or_budget():
    # A different hidden size or memory budget needs its own probe.
    cache, step = ProbeCache(), OomAbove(256)
    probe(step, cache=cache, model_shape=SHAPE)
    n_calls = len(step.calls)
    probe(step, cache=cache, model_shape={**SHAPE, "hidden_size": 32})
    assert len(step.calls) > n_calls
    n_calls = len(step.calls)
    probe(step, cache=cache, model_shape=SHAPE, memory_budget_bytes=2 * 1024**3)
    assert len(step.calls) > n_calls


def test_json_cache_round_trips_across_processes(tmp_path):
    # A fresh ProbeCache on the same file (another trial process) reuses the result as JSON.
    path = tmp_path / "sub" / "batch_probe.json"
    first = probe(OomAbove(256), cache=ProbeCache(path), model_shape=SHAPE)
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert len(data["entries"]) == 1
    step = OomAbove(256)
    again = probe(step, cache=ProbeCache(path), model_shape=SHAPE)
    assert step.calls == []
    assert again.from_cache
    assert (again.batch_size, again.tries) == (first.batch_size, first.tries)


def test_corrupt_cache_file_is_treated_as_empty(tmp_path):
    # The file is only a cache: garbage in it costs a probe, not a failed training run.
    path = tmp_path / "batch_probe.json"
    path.write_text("{not json")
    result = probe(OomAbove(128), cache=ProbeCache(path), model_shape=SHAPE)
    assert result.batch_size == 128
    assert len(json.loads(path.read_text())["entries"]) == 1


def test_cache_dir_env_var_overrides_the_default_location(tmp_path, monkeypatch):
    # LSTM_ORCH_CACHE_DIR moves the cache (e.g. to a shared disk of a Ray node).
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    assert default_cache_path() == tmp_path / "batch_probe.json"
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert default_cache_path().parts[-3:] == (".cache", "lstm-orchestrator", "batch_probe.json")


@pytest.mark.gpu
def test_real_probe_on_cuda_fits_within_the_budget(tmp_path, monkeypatch):
    # On a real GPU the chosen size trains, its peak stays within budget, and it is cached.
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    budget = 2 * 1024**3

    def run():
        return probe_batch_size(
            lambda: TinyLSTM(n_features=8, hidden=128),
            sequence_length=60,
            n_features=8,
            n_outputs=2,
            device="cuda",
            memory_budget_bytes=budget,
            model_shape={**SHAPE, "hidden_size": 128},
            cache=ProbeCache(default_cache_path()),
        )

    result = run()
    chosen = next(t for t in result.tries if t.batch_size == result.batch_size)
    assert chosen.fits and 0 < chosen.peak_bytes <= 0.9 * budget
    assert all(t.peak_bytes is not None for t in result.tries)
    assert run().from_cache  # a fresh cache object reads the JSON file
    lines: list[str] = []
    n = choose_batch_size(
        _auto_config(), n_features=8, n_outputs=1, device="cuda", log=lines.append
    )
    assert n >= 1 and "batch_size auto ->" in lines[0]


def _auto_config():
    return TrainConfig(batch_size="auto", hidden_size=16, num_layers=1, sequence_length=10)
