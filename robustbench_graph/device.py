"""Device selection and seeding."""

from __future__ import annotations

import functools
import platform
import random
from pathlib import Path

import numpy as np
import torch

from .errors import RbgError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RbgError("--device cuda asked for, but no CUDA GPU is available")
        return torch.device(name)
    raise RbgError(f"unknown device {name!r}; valid: auto, cpu, cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def eval_batch_size(device: torch.device | str) -> int:
    """Inference batch size: large on GPUs; 200 on CPUs, where batches whose activations pass
    glibc's 32 MB mmap threshold pay page faults on every forward (measured on smallcnn,
    1,000 mnist5k images: 0.34 s at batch 1000, 0.16 s at batch 200)."""
    return 1000 if torch.device(device).type == "cuda" else 200


def has_fast_bf16_matmul(device: torch.device | str) -> bool:
    """Whether bfloat16 matrix products run natively (faster than float32) on ``device``:
    CUDA GPUs of compute capability 8.0 or newer, CPUs with AVX512-BF16 or AMX tiles.
    Probed once per device (the regulariser asks at every step)."""
    return _has_fast_bf16_matmul(torch.device(device))


@functools.cache
def _has_fast_bf16_matmul(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def describe_device(device: torch.device | str) -> dict[str, object]:
    """What a run records about the hardware it trained on (``auto`` precisions depend on it)."""
    device = torch.device(device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else _cpu_name())
    return {"type": device.type, "name": name,
            "native_bf16_matmul": has_fast_bf16_matmul(device)}


def _cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
