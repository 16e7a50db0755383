"""The local executor: ``workers`` long-lived worker processes on this machine (spawned, each
with ``threads`` torch threads). A worker that dies (killed, out of memory) loses only its
unit, which is reported failed; a new worker takes its place and the others go on."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import RbgError
from .scheduler import STARTED, OnOutcome, Outcome, Scheduler
from .units import Unit, clear_unit_failed, mark_unit_failed


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it dies (a killed
    ``rbg run`` leaves no worker computing on); elsewhere a no-op."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(conn: Connection, threads: int) -> None:
    import signal

    from .jobs import run_unit, set_threads

    _die_with_parent()
    # Ctrl-C in a terminal reaches the whole process group: the parent alone handles it
    # (it stops the workers), so no worker prints its own traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        conn.send(run_unit(message, threads))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    unit: Unit | None = None


class LocalExecutor:
    """A pool of worker processes on this machine (see the module docstring)."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers, self.threads = workers, threads
        self._ctx = mp.get_context("spawn")

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(child, self.threads),
                                    daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def run(self, units: list[Unit], on_outcome: OnOutcome) -> list[Outcome]:
        schedule = Scheduler(units)
        outcomes: list[Outcome] = []
        workers = [self._start() for _ in range(min(self.workers, max(1, len(units))))]

        def report(outcome: Outcome) -> None:
            outcomes.append(outcome)
            on_outcome(outcome)

        try:
            while len(outcomes) < schedule.total:
                for w in workers:
                    if w.unit is None:
                        unit = schedule.next()
                        if unit is None:
                            break
                        w.unit = unit
                        clear_unit_failed(unit)
                        w.conn.send(unit.to_dict())
                        on_outcome({"id": unit.id, "status": STARTED})
                busy = [w for w in workers if w.unit is not None]
                if not busy:
                    raise RbgError("internal: units left but none can start")
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for w in list(busy):
                    unit = w.unit
                    assert unit is not None
                    if w.conn not in ready and w.process.sentinel not in ready:
                        continue
                    outcome = None
                    try:
                        if w.conn.poll():
                            outcome = w.conn.recv()
                    except (EOFError, OSError):  # the worker is gone
                        pass
                    if outcome is None:
                        w.process.join(timeout=5)
                        if w.process.is_alive():
                            continue
                        code = w.process.exitcode
                        outcome = {"id": unit.id, "status": "failed", "seconds": 0.0,
                                   "message": f"its worker died (exit code {code}); run "
                                              "again to resume it"}
                        mark_unit_failed(unit, outcome["message"])  # rbg status: failed
                        workers[workers.index(w)] = self._start()
                    w.unit = None
                    report(outcome)
                    for extra in schedule.finished(unit, outcome):
                        report(extra)
        except BaseException:  # interrupted (Ctrl-C) or failed: the busy workers stop now
            for w in workers:
                if w.unit is not None and w.process.is_alive():
                    w.process.terminate()
            raise
        finally:
            for w in workers:
                if w.process.is_alive():
                    try:
                        w.conn.send(None)
                    except OSError:
                        pass
            for w in workers:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
        return outcomes
