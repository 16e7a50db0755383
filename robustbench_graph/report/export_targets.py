"""The exports of ``rbg report --export``: their names, the checks made before the report is
written, and running them on a built report (docs/exporting.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RbgError
from .export_mlflow import check_mlflow, default_uri, export_mlflow
from .export_robustbench import FOLDER as ROBUSTBENCH_FOLDER
from .export_robustbench import write_robustbench
from .export_tensorboard import FOLDER as TENSORBOARD_FOLDER
from .export_tensorboard import load_tensorboard, write_tensorboard
from .model import Report

EXPORTS = ("robustbench", "mlflow", "tensorboard")


@dataclass(frozen=True)
class ExportPlan:
    """The exports asked for, in :data:`EXPORTS` order, and the MLflow tracking URI."""

    names: tuple[str, ...]
    tracking_uri: str = ""


@dataclass
class ExportResult:
    """What one export wrote: a sentence for the user and its files or folders."""

    name: str
    summary: str
    paths: list[Path] = field(default_factory=list)


def parse_exports(items: Iterable[str] | None) -> tuple[str, ...]:
    """``--export`` values (repeated, or comma-separated) as known export names.

    Raises:
        RbgError: an unknown name (one line naming the valid ones).
    """
    names = [n.strip().lower() for item in items or () for n in str(item).split(",")]
    for name in names:
        if name and name not in EXPORTS:
            raise RbgError(f"unknown export {name!r}; valid: {', '.join(EXPORTS)}")
    return tuple(n for n in EXPORTS if n in names)


def plan_exports(items: Iterable[str] | None, out_dir: Path, tracking_uri: str | None = None
                 ) -> ExportPlan:
    """Parse and check the exports before anything is written: the optional extras are
    installed and the tracking URI answers.

    Raises:
        RbgError: an unknown export, a missing extra, an unreachable tracking URI, or
            ``tracking_uri`` without the mlflow export.
    """
    names = parse_exports(items)
    if tracking_uri and "mlflow" not in names:
        raise RbgError("--tracking-uri is for --export mlflow")
    uri = ""
    if "mlflow" in names:
        uri = _as_uri(tracking_uri) if tracking_uri else default_uri(out_dir)
        check_mlflow(uri)
    if "tensorboard" in names:
        load_tensorboard()
    return ExportPlan(names, uri)


def _as_uri(text: str) -> str:
    """A tracking URI; a plain folder path becomes a ``file:`` URI."""
    if "://" in text or text.startswith("file:"):
        return text
    return Path(text).expanduser().resolve().as_uri()


def run_exports(report: Report, plan: ExportPlan) -> list[ExportResult]:
    """Run the planned exports on a built report, in :data:`EXPORTS` order."""
    out = Path(report.out_dir)
    results: list[ExportResult] = []
    for name in plan.names:
        if name == "robustbench":
            paths = write_robustbench(report, out)
            results.append(ExportResult(name, f"{len(paths)} model_info JSON file(s) under "
                                        f"{out / ROBUSTBENCH_FOLDER}", paths))
        elif name == "mlflow":
            done = export_mlflow(report, plan.tracking_uri)
            results.append(ExportResult(name, f"{len(done.run_ids)} run(s) in experiment "
                                        f"{done.experiment!r} at {done.uri}"))
        elif name == "tensorboard":
            folders = write_tensorboard(report, out)
            results.append(ExportResult(name, f"{len(folders)} log folder(s) under "
                                        f"{out / TENSORBOARD_FOLDER} (tensorboard --logdir "
                                        f"{out / TENSORBOARD_FOLDER})", folders))
    return results
