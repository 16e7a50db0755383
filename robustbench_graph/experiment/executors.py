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

import os
from pathlib import Path
from typing import Any

from ..errors import RbgError
from .local import LocalExecutor
from .scheduler import OnOutcome, Outcome, Scheduler
from .spec import Resources
from .units import Unit

EXECUTORS = ("local", "slurm", "ray")


class RayExecutor:
    """Ray tasks against the cluster at ``address`` (``auto``: the one this machine is part
    of; None: a new local one)."""

    def __init__(self, address: str | None, resources: Resources) -> None:
        try:
            import ray
        except ImportError:
            raise RbgError("--executor ray needs the optional extra: pip install "
                           "'robustbench_graph[ray]'") from None
        self.ray = ray
        self.address, self.resources = address, resources

    def run(self, units: list[Unit], on_outcome: OnOutcome) -> list[Outcome]:
        from .jobs import run_unit

        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
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
            with ex.batch():  # one job array
                jobs = [ex.submit(_Requeueable(), u.to_dict(), self.resources.cpus)
                        for u in batch]
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
        return RayExecutor(address, resources)
    if name == "slurm":
        return SubmititExecutor(folder, resources, cluster or os.environ.get(
            "RBG_SUBMITIT_CLUSTER"), parallelism=workers)
    raise RbgError(f"unknown --executor {name!r}; valid: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "LocalExecutor", "RayExecutor", "Scheduler", "SubmititExecutor",
           "make_executor"]
