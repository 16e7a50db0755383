"""Device selection and seeding."""

from __future__ import annotations

import functools
import math
import os
import platform
import random
from pathlib import Path

import numpy as np

from .errors import RbgError
from .lazy import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error. Every command
    that computes resolves its device first, so this also caps torch's CPU threads
    (:func:`limit_threads`)."""
    limit_threads()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RbgError("--device cuda asked for, but no CUDA GPU is available")
        return torch.device(name)
    raise RbgError(f"unknown device {name!r}; valid: auto, cpu, cuda")


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota
    (``/sys/fs/cgroup/cpu.max``), which ``os.cpu_count`` and OpenMP do not see."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def limit_threads() -> int:
    """Cap torch's intra-op threads at :func:`available_cpus` (more threads than CPUs slow
    small CPU kernels down several times); a user's ``OMP_NUM_THREADS`` or
    ``RBG_NUM_THREADS`` is taken as it is. Returns the thread count in force."""
    if "RBG_NUM_THREADS" in os.environ:
        try:
            torch.set_num_threads(max(1, int(os.environ["RBG_NUM_THREADS"])))
        except ValueError:
            raise RbgError("RBG_NUM_THREADS must be a positive integer") from None
    elif "OMP_NUM_THREADS" not in os.environ:
        cpus = available_cpus()
        if torch.get_num_threads() > cpus:
            torch.set_num_threads(cpus)
    return torch.get_num_threads()


def busy_cpu_note(device: torch.device) -> str | None:
    """One line when other work already keeps this machine's CPUs busy and torch would run
    more than one thread beside it: the threads then wait for each other (native DeepFool on
    200 mnist5k images took 7 to 40 s with 2 threads beside two busy processes, 3.8 s with
    one; docs/performance.md#threads-and-memory). None on a GPU, on a quiet machine, or where
    the user chose the thread count (``RBG_NUM_THREADS``, ``OMP_NUM_THREADS``)."""
    if device.type != "cpu" or {"RBG_NUM_THREADS", "OMP_NUM_THREADS"} & set(os.environ):
        return None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform
        return None
    threads, cpus = torch.get_num_threads(), available_cpus()
    if threads < 2 or load < 1.0 or threads + load <= cpus + 0.5:
        return None
    free = max(1, min(threads - 1, cpus - round(load)))
    return (f"the CPUs are busy (load {load:.1f} on {cpus}): {threads} threads would wait for "
            f"each other; RBG_NUM_THREADS={free} runs faster beside other work "
            "(docs/performance.md#threads-and-memory)")


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
    return {"type": device.type, "name": name, "threads": torch.get_num_threads(),
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
