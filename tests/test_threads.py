"""Thread defaults: never more intra-op threads than CPUs the process may use."""

from __future__ import annotations

import os
import subprocess
import sys

from robustbench_graph.device import available_cpus

_PROBE = """
import torch
from robustbench_graph.device import available_cpus, limit_threads
torch.set_num_threads(64)  # as OpenMP would on a host whose quota it cannot see
print(limit_threads(), available_cpus())
"""


def _probe(**env: str) -> tuple[int, int]:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                              "RBG_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**base, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_available_cpus_is_within_the_affinity_mask() -> None:
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


def test_threads_are_capped_at_the_available_cpus() -> None:
    threads, cpus = _probe()
    assert threads == cpus


def test_user_thread_settings_are_kept() -> None:
    assert _probe(RBG_NUM_THREADS="1")[0] == 1
    assert _probe(OMP_NUM_THREADS="3")[0] == 64  # the user's OpenMP setting: left alone
