"""``rbg attack``: the robustness suite on every run, as tidy rows in each run's results.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import AttackConfig, ImageSubset
from ..errors import RbgError
from .console import console, err_console, guarded
from .options import parse_perturbation_settings

if TYPE_CHECKING:
    from ..evaluate import CellEvent, RunReport


@guarded
def attack(
    run_dirs: Annotated[list[Path] | None, typer.Argument(
        help="Run folders (or folders of runs) to attack \\[default: --runs].")] = None,
    runs: Annotated[Path, typer.Option(help="Folder searched for run folders.")] = Path("runs"),
    suite: Annotated[str, typer.Option(
        help="'all' or a comma list of perturbations (rbg list perturbations).")] = "all",
    setting: Annotated[list[str] | None, typer.Option(
        "--set", "-p", metavar="NAME.KEY=VALUE[,VALUE...]",
        help="A perturbation setting, e.g. -p gaussian.snr_db=5,10 -p deepfool.steps=100; "
             "every setting, its default and meaning: rbg list perturbations. Repeatable.")
    ] = None,
    samples: Annotated[int | None, typer.Option(
        help="Evaluate on this many test images \\[default: all].")] = None,
    subset: Annotated[str, typer.Option(
        help="Which test images --samples takes: spaced (0, s, 2s, ...) or first.")
    ] = "spaced",
    batch_size: Annotated[int | None, typer.Option(
        help="Evaluation batch size \\[default: 1000 on GPUs, 200 on CPUs].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(help="Folder of torchvision datasets.")
                        ] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Recompute the suite's cells, replacing earlier results of them (each only once "
             "its new values exist).")] = False,
) -> None:
    """Evaluate trained runs under the robustness suite (METHODS.md section 1); cells already
    computed with the same settings are reused, with other settings refused (--overwrite)."""
    # The core (torch) is imported by the command, not at start-up: `rbg --help` stays fast.
    from ..device import resolve_device
    from ..evaluate import TestSplits, attack_run, resolve_runs
    from ..perturbations import check_suite, suite_names

    names = suite_names(suite)
    cfg = AttackConfig(settings=parse_perturbation_settings(setting),
                       test_images=ImageSubset(samples, subset), batch_size=batch_size)
    cfg.validate()
    check_suite(names, cfg.settings)
    dev = resolve_device(device)
    targets = resolve_runs(list(run_dirs) if run_dirs else [runs])
    reports: list[RunReport] = []
    errors: list[str] = []
    splits = TestSplits(data_dir)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
    ) as progress:
        overall = progress.add_task("runs", total=len(targets), info="")
        for run_dir in targets:
            task = progress.add_task(run_dir.name, total=None, info="")

            def on_event(e: CellEvent, task=task) -> None:  # noqa: ANN001
                progress.update(task, total=e.total, completed=e.index + (e.status != "start"),
                                info=f"{e.cell.label}" + (" (cached)" if e.status == "skipped"
                                                          else ""))

            try:
                done = attack_run(run_dir, names, cfg, device=dev, overwrite=overwrite,
                                  splits=splits, on_event=on_event)
                reports.append(done)
                for line in done.warnings:
                    err_console.print(f"[bold yellow]warning:[/] {line}", highlight=False,
                                      soft_wrap=True)
                progress.update(task, info="done")
            except (RbgError, ValueError, KeyError, TypeError, RuntimeError) as err:
                # one bad run folder must not stop the others
                if not isinstance(err, RbgError):
                    err = RbgError(f"{run_dir}: {type(err).__name__}: {err}")
                errors.append(str(err))
                progress.update(task, info="[red]error")
                err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            progress.advance(overall)
    for report in reports:
        _render(report)
    if errors:
        raise RbgError(f"{len(errors)} of {len(targets)} runs could not be attacked; "
                       "results of the others are kept")


def _render(report: RunReport) -> None:
    from ..evaluate import summarize
    from ..perturbations import metric_info

    table = Table(title=f"{report.name}  ({len(report.computed)} cells computed, "
                        f"{len(report.skipped)} cached)", title_justify="left")
    for col in ("perturbation", "setting", "metric", "mean", "std", "repeats"):
        table.add_column(col, justify="left" if col in ("perturbation", "setting", "metric")
                         else "right")
    summary = summarize(report.table)
    for row in summary.itertuples(index=False):
        info = metric_info(row.perturbation, row.metric)
        if info is not None and info.better == "none" and row.metric != "snr_db":
            continue  # diagnostics of the perturbation; the realised SNR stays in view
        pct = info is not None and info.percent
        fmt = (lambda v: f"{v:.2%}") if pct else (lambda v: f"{v:.4g}")
        setting = "" if row.param == "none" else f"{row.param}={row.param_value:g}"
        std = fmt(row.std) if row.count > 1 else ""
        table.add_row(row.perturbation, setting, row.metric, fmt(row.mean), std,
                      str(int(row.count)))
    console.print(table)
    console.print(f"results: [bold]{report.run_dir / 'results.csv'}[/]")
