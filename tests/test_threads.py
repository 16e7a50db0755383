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


def _busy(monkeypatch, load: float, threads: int, cpus: int, device: str = "cpu",  # noqa: ANN001
          **env: str) -> str | None:
    import torch

    from robustbench_graph import device as dev

    for key in ("OMP_NUM_THREADS", "RBG_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dev.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(dev, "available_cpus", lambda: cpus)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    return dev.busy_cpu_note(torch.device(device))


def test_a_busy_machine_is_named_with_the_threads_that_would_not_wait(monkeypatch) -> None:  # noqa: ANN001
    note = _busy(monkeypatch, load=2.5, threads=2, cpus=2)
    assert note is not None and note.startswith("the CPUs are busy (load 2.5 on 2): 2 threads")
    assert "RBG_NUM_THREADS=1 " in note
    assert "RBG_NUM_THREADS=6 " in _busy(monkeypatch, load=2.0, threads=8, cpus=8)


def test_no_busy_note_when_quiet_single_threaded_chosen_or_on_a_gpu(monkeypatch) -> None:  # noqa: ANN001
    assert _busy(monkeypatch, load=0.6, threads=2, cpus=2) is None  # quiet
    assert _busy(monkeypatch, load=1.2, threads=2, cpus=8) is None  # room to spare
    assert _busy(monkeypatch, load=3.0, threads=1, cpus=2) is None  # nothing to wait for
    assert _busy(monkeypatch, load=3.0, threads=2, cpus=2, RBG_NUM_THREADS="2") is None
    assert _busy(monkeypatch, load=3.0, threads=2, cpus=2, OMP_NUM_THREADS="2") is None
    assert _busy(monkeypatch, load=3.0, threads=2, cpus=2, device="meta") is None


def test_the_busy_note_is_printed_in_a_terminal_only(monkeypatch) -> None:  # noqa: ANN001
    from robustbench_graph import device as dev
    from robustbench_graph.cli import console as cli_console

    printed: list[str] = []
    monkeypatch.setattr(dev, "busy_cpu_note", lambda device: "the CPUs are busy")
    monkeypatch.setattr(cli_console, "show_note", printed.append)
    monkeypatch.setattr(type(cli_console.err_console), "is_terminal", property(lambda s: False))
    cli_console.busy_machine_note("cpu")
    assert printed == []
    monkeypatch.setattr(type(cli_console.err_console), "is_terminal", property(lambda s: True))
    cli_console.busy_machine_note("cpu")
    assert printed == ["the CPUs are busy"]
