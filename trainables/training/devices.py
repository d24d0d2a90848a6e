"""Device, mixed-precision and determinism choices of a training run."""

from __future__ import annotations

import os

import torch

from trainables.errors import ConfigError
from trainables.training import fast_paths

__all__ = ["Deterministic", "autocast", "resolve_amp", "resolve_device"]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: str | torch.device | None, configured: str = "auto") -> torch.device:
    """``device`` argument (if given) else the config's; 'auto' = the current CUDA device or CPU."""
    name = str(requested) if requested is not None else configured
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device={name!r} is not a device name ({err})") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'"
            )
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        dev = torch.device("cuda", index)
    return dev


def resolve_amp(amp: str, device: torch.device) -> str:
    """'auto': bf16 on a CUDA device that supports it, fp16 on older GPUs, off on the CPU."""
    if amp == "off":
        return "off"
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if amp == "auto":
            return "bf16" if bf16 else "fp16"
        if amp == "bf16" and not bf16:
            name = torch.cuda.get_device_name(device)
            raise ConfigError(
                f"amp='bf16' needs a GPU with bfloat16 support; {name} has none: use amp='fp16' or 'auto'"
            )
        return amp
    if amp == "fp16":
        raise ConfigError(
            f"amp='fp16' needs a CUDA device, but training runs on {device.type}; use 'bf16' or 'off'"
        )
    return "bf16" if amp == "bf16" else "off"


def autocast(device: torch.device, amp: str) -> torch.autocast:
    """Autocast to the run's AMP dtype ('bf16', 'fp16'); a no-op context for 'off'."""
    return torch.autocast(
        device_type=device.type, dtype=_AMP_DTYPES.get(amp, torch.float32), enabled=amp != "off"
    )


class Deterministic:
    """``with Deterministic(dev):`` deterministic algorithms inside the block, then the
    caller's setting back (deterministic cuDNN and cuBLAS workspace on CUDA)."""

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev

    def __enter__(self) -> Deterministic:
        self.prev = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        self.cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        if self.dev.type == "cuda":
            # cuBLAS needs this for deterministic matmuls; it only counts before cuBLAS starts.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        # As torch.use_deterministic_algorithms, without loading torch's compiler in every
        # fresh process (trainables/training/fast_paths.py, 4).
        fast_paths.deterministic_algorithms(True, warn_only=True)
        return self

    def __exit__(self, *exc: object) -> None:
        fast_paths.deterministic_algorithms(self.prev[0], warn_only=self.prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = self.cudnn
