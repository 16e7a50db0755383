"""``rbg run``: plan an experiment, skip what is done, run the rest on an executor, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .scheduler import OnOutcome
from .spec import Experiment
from .units import Unit, plan, state

if TYPE_CHECKING:
    from ..report import Report


@dataclass
class RunSummary:
    """What one ``rbg run`` did."""

    units: list[Unit]
    already_done: list[Unit]
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    report_error: str | None = None
    built: Report | None = None  # the report written (its claims' verdicts, for the terminal)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["status"] == "failed"]


def todo(units: list[Unit]) -> tuple[list[Unit], list[Unit]]:
    """(units to run, units already done)."""
    run, done = [], []
    for u in units:
        (done if state(u)[0] == "done" else run).append(u)
    return run, done


def run_experiment(exp: Experiment, executor: Any, *, device: str = "auto",
                   on_outcome: OnOutcome | None = None, report: bool = True) -> RunSummary:
    """Run every unit of ``exp`` not yet done on ``executor``, then write the report of
    ``exp.out`` into ``exp.out / "report"`` (when at least one run has results)."""
    units = plan(exp, device)
    exp.out.mkdir(parents=True, exist_ok=True)
    pending, done = todo(units)
    summary = RunSummary(units, done)
    if pending:
        summary.outcomes = executor.run(pending, on_outcome or (lambda _o: None))
    if report:
        from ..config import ReportConfig
        from ..errors import RbgError
        from ..report import build_report
        from ..report.collect import NoUsableResults

        try:
            summary.built = build_report(
                exp.out, exp.out / "report",
                ReportConfig(baseline=exp.baseline, plots=exp.plots, claims=exp.claims))
            summary.report = exp.out / "report" / "index.html"
        except (RbgError, NoUsableResults) as err:
            summary.report_error = str(err)
    return summary
