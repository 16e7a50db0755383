"""glibc malloc tuning: freed activation buffers stay in the process for the next step."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from robustbench_graph.allocator import tune_malloc

# Resident memory kept after three "steps" that each allocate and free 8 x 6.5 MB buffers:
# with the tuning the heap keeps them, so the next step faults no pages in.
_RETAINED = """
import os, torch
from robustbench_graph.allocator import tune_malloc
applied = tune_malloc()
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
def step():
    xs = [torch.ones(100, 16, 32, 32)]
    for _ in range(7):
        xs.append(xs[-1] * 1.5)
    return float(xs[-1].sum())
torch.ones(1).sum()
before = resident_mb()
for _ in range(3):
    step()
print(applied, resident_mb() - before)
"""

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/statm")
    or "malloc" in os.environ.get("LD_PRELOAD", ""), reason="glibc malloc on Linux only")


def _retained(env_extra: dict[str, str]) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "RBG_MALLOC_TUNING"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _RETAINED], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    return out[0], float(out[1])


@glibc
def test_tuning_is_opt_in_and_keeps_freed_buffers_for_reuse() -> None:
    applied, kept = _retained({"RBG_MALLOC_TUNING": "1"})
    off, _ = _retained({})
    # 52 MB freed each step stay resident. (Without the tuning glibc usually trims them, but
    # whether it can depends on where small Python objects landed: not asserted.)
    assert applied == "True" and kept > 40
    assert off == "False"


@pytest.mark.parametrize("name, value", [("MALLOC_TOP_PAD_", "0"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0"),
                                         ("LD_PRELOAD", "/usr/lib/libjemalloc.so"),
                                         ("RBG_MALLOC_TUNING", "0")])
def test_user_malloc_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch, name: str,
                                             value: str) -> None:
    if name != "RBG_MALLOC_TUNING":
        monkeypatch.setenv("RBG_MALLOC_TUNING", "1")
    monkeypatch.setenv(name, value)
    assert tune_malloc() is False


def test_tuning_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RBG_MALLOC_TUNING", raising=False)
    assert tune_malloc() is False
