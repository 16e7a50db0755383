"""Executors: where the units run (``rbg run --executor``).

Every executor runs the same job function (:func:`.jobs.run_unit`) on plain data and starts
an attack unit as soon as its run's training is done (:class:`.scheduler.Scheduler`). Each
unit gets a fixed number of threads (``[resources] cpus``, default 1), so the numbers are the
same on every executor.

* :class:`~.local.LocalExecutor` (:mod:`.local`): ``workers`` long-lived worker processes on
  this machine (spawned, each with ``threads`` torch threads; workers x threads never exceeds
  the cores). A worker that dies (killed, out of memory) loses only its unit, which is
  reported failed; a new worker takes its place and the others go on.
* :class:`SubmititExecutor`: Slurm job arrays through ``submitit`` (``rbg[slurm]``), one
  array per phase ready; a preempted or timed-out job is requeued (the unit resumes).
  ``cluster="local"`` runs the same jobs as local processes (the tests).
* :class:`RayExecutor`: Ray tasks (``rbg[ray]``) on the cluster at ``address``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from ..errors import RbgError
from .local import LocalExecutor
from .scheduler import OnOutcome, Outcome, Scheduler
from .spec import Resources
from .units import Unit

EXECUTORS = ("local", "slurm", "ray")


RAY_PROBE_S = 10.0  # a TCP connection to the cluster's port must open within this
RAY_INIT_S = 120.0  # ray.init as a whole (RBG_RAY_INIT_TIMEOUT_S overrides)


def ray_endpoint(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address ``HOST:PORT`` or ``ray://HOST:PORT``; None for a new
    local cluster (None) or ``auto`` / ``local``.

    Raises:
        RbgError: for anything else (Ray itself raises a ValueError later).
    """
    if address is None or address in ("auto", "local"):
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if (not sep or not host or not port.isdigit() or not 0 < int(port) < 65536
            or any(c.isspace() or c in "/@?#" for c in host)):
        raise RbgError(f"--address {address!r} is not a Ray address; give auto, HOST:PORT or "
                       "ray://HOST:PORT")
    return host, int(port)


def _probe(host: str, port: int, address: str, timeout: float) -> None:
    """Open and close a TCP connection to the cluster's port: nothing listening is one line
    at once, where ray.init would retry for ever."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        why = (f"no answer within {timeout:g} s" if isinstance(err, TimeoutError)
               else err.strerror or str(err))
        raise RbgError(f"no Ray cluster answers at {address} ({why}); start one with 'ray "
                       "start --head' or give its address") from None


def _init_timeout() -> float:
    text = os.environ.get("RBG_RAY_INIT_TIMEOUT_S", "")
    try:
        value = float(text) if text else RAY_INIT_S
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise RbgError(f"RBG_RAY_INIT_TIMEOUT_S must be a number of seconds, got {text!r}")
    return value


class RayExecutor:
    """Ray tasks against the cluster at ``address`` (``auto``: the one this machine is part
    of; None: a new local one). Connecting is bounded: the address is checked, its port must
    answer within :data:`RAY_PROBE_S`, and ``ray.init`` runs in a helper thread that this one
    waits for at most :data:`RAY_INIT_S` (Ray has no time limit of its own and, on the main
    thread, installs a SIGTERM handler that cannot run while it waits in its C++ core)."""

    def __init__(self, address: str | None, resources: Resources) -> None:
        self.endpoint = ray_endpoint(address)
        try:
            import ray
        except ImportError:
            raise RbgError("--executor ray needs the optional extra: pip install "
                           "'robustbench_graph[ray]'") from None
        self.ray = ray
        self.address, self.resources = address, resources

    def connect(self) -> None:
        """``ray.init`` under the time limit, or one line saying why not."""
        if self.ray.is_initialized():
            return
        limit = _init_timeout()
        if self.endpoint is not None:
            _probe(*self.endpoint, str(self.address), min(RAY_PROBE_S, limit))
        failure: list[BaseException] = []

        def init() -> None:
            try:
                self.ray.init(address=self.address, log_to_driver=False,
                              include_dashboard=False, logging_level=logging.WARNING)
            except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
                failure.append(err)

        logging.getLogger("ray._private.worker").addFilter(
            lambda record: "SIGTERM handler is not set" not in record.getMessage())
        thread = threading.Thread(target=init, name="rbg-ray-init", daemon=True)
        thread.start()
        thread.join(limit)
        where = self.address or "a new local cluster"
        if thread.is_alive():
            raise RbgError(f"Ray did not connect to {where} within {limit:g} s; check the "
                           "address and that the cluster is up")
        if failure:
            err = failure[0]
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise RbgError(f"Ray could not connect to {where} ({type(err).__name__}"
                           f"{': ' + first if first else ''})")

    def run(self, units: list[Unit], on_outcome: OnOutcome) -> list[Outcome]:
        from .jobs import run_unit

        ray = self.ray
        self.connect()
        task = ray.remote(num_cpus=self.resources.cpus, num_gpus=self.resources.gpus,
                          max_retries=0)(run_unit)
        schedule = Scheduler(units)
        outcomes: list[Outcome] = []
        pending: dict[Any, Unit] = {}
        while len(outcomes) < schedule.total:
            while (unit := schedule.next()) is not None:
                pending[task.remote(unit.to_dict(), self.resources.cpus)] = unit
            if not pending:
                raise RbgError("internal: units left but none can start")
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - a lost worker, a node gone
                outcome = {"id": unit.id, "status": "failed", "seconds": 0.0,
                           "message": f"its Ray task failed ({type(err).__name__}); run "
                                      "again to resume it"}
            for o in [outcome, *schedule.finished(unit, outcome)]:
                outcomes.append(o)
                on_outcome(o)
        return outcomes


class _Requeueable:
    """The submitit job: runs a unit; on preemption or timeout submitit calls
    ``checkpoint``, which requeues the same unit (it resumes from its run folder)."""

    def __call__(self, unit_data: dict[str, Any], threads: int) -> dict[str, Any]:
        from .jobs import run_unit

        return run_unit(unit_data, threads)

    def checkpoint(self, unit_data: dict[str, Any], threads: int) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(_Requeueable(), unit_data, threads)


class SubmititExecutor:
    """Slurm job arrays through submitit; ``cluster="local"`` for local processes."""

    def __init__(self, folder: Path, resources: Resources, cluster: str | None = None,
                 parallelism: int | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise RbgError("--executor slurm needs the optional extra: pip install "
                           "'robustbench_graph[slurm]'") from None
        from submitit.core.plugins import get_executors

        known = list(get_executors())
        if cluster is not None and cluster not in known:
            raise RbgError(f"unknown submitit cluster {cluster!r} (RBG_SUBMITIT_CLUSTER); "
                           f"valid: {', '.join(known)}")
        self.submitit = submitit
        self.folder, self.resources, self.cluster = Path(folder), resources, cluster
        self.parallelism = parallelism

    def _executor(self) -> Any:
        r = self.resources
        ex = self.submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": r.timeout_min, "cpus_per_task": r.cpus,
                                  "name": "rbg"}
        if r.gpus:
            params["gpus_per_node"] = r.gpus
        if r.mem_gb is not None:
            params["mem_gb"] = r.mem_gb
        if r.partition and ex.cluster == "slurm":
            params["slurm_partition"] = r.partition
        if self.parallelism and ex.cluster == "slurm":
            params["slurm_array_parallelism"] = self.parallelism
        ex.update_parameters(**params)
        return ex

    def run(self, units: list[Unit], on_outcome: OnOutcome) -> list[Outcome]:
        schedule = Scheduler(units)
        ex = self._executor()
        outcomes: list[Outcome] = []
        while len(outcomes) < schedule.total:
            batch = []
            while (unit := schedule.next()) is not None:
                batch.append(unit)
            if not batch:
                raise RbgError("internal: units left but none can start")
            try:
                with ex.batch():  # one job array
                    jobs = [ex.submit(_Requeueable(), u.to_dict(), self.resources.cpus)
                            for u in batch]
            except (OSError, subprocess.SubprocessError, RuntimeError, ValueError) as err:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise RbgError(f"submitting {len(batch)} job(s) to {ex.cluster} failed "
                               f"({first})") from None
            for unit, job in zip(batch, jobs, strict=True):
                try:
                    outcome = job.result()
                except Exception as err:  # noqa: BLE001 - a job that died
                    first = (str(err).strip().splitlines() or [type(err).__name__])[-1]
                    outcome = {"id": unit.id, "status": "failed", "seconds": 0.0,
                               "message": f"its job failed ({first[:200]})"}
                for o in [outcome, *schedule.finished(unit, outcome)]:
                    outcomes.append(o)
                    on_outcome(o)
        return outcomes


def default_workers(threads: int) -> int:
    from ..device import available_cpus

    return max(1, available_cpus() // max(1, threads))


def make_executor(name: str, *, workers: int | None, resources: Resources,
                  address: str | None, folder: Path, cluster: str | None = None) -> Any:
    """The executor ``name`` (see the module docstring)."""
    from ..device import available_cpus

    threads = max(1, resources.cpus)
    if name == "local":
        cores = available_cpus()
        n = workers or default_workers(threads)
        if n < 1:
            raise RbgError(f"--workers must be positive, got {n}")
        if n * threads > cores:
            raise RbgError(f"--workers {n} x {threads} thread(s) per unit exceeds the "
                           f"{cores} core(s) of this machine (set [resources] cpus or "
                           "--workers lower)")
        return LocalExecutor(n, threads)
    if name == "ray":
        ray = RayExecutor(address, resources)
        ray.connect()  # before any work: a cluster that does not answer is one line
        return ray
    if name == "slurm":
        return SubmititExecutor(folder, resources, cluster or os.environ.get(
            "RBG_SUBMITIT_CLUSTER"), parallelism=workers)
    raise RbgError(f"unknown --executor {name!r}; valid: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "LocalExecutor", "RayExecutor", "Scheduler", "SubmititExecutor",
           "make_executor"]
