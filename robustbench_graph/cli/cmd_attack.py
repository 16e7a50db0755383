"""``rbg attack``: the robustness suite on every run, as tidy rows in each run's results.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..config import AttackConfig, ImageSubset
from ..errors import RbgError
from ..settings import default_of
from .console import console, err_console, guarded
from .options import parse_perturbation_settings

if TYPE_CHECKING:
    from ..attack import CellEvent, RunReport


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
        help="Evaluate on this many test images \\[default: all].")
    ] = default_of(ImageSubset, "samples"),
    subset: Annotated[str, typer.Option(
        help="Which test images --samples takes: spaced (0, s, 2s, ...) or first.")
    ] = default_of(ImageSubset, "rule"),
    batch_size: Annotated[int | None, typer.Option(
        help="Evaluation batch size \\[default: 1000 on GPUs, 200 on CPUs].")
    ] = default_of(AttackConfig, "batch_size"),
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(help="Folder of torchvision datasets.")
                        ] = None,
    corruptions_dir: Annotated[Path | None, typer.Option(
        help="Folder of the CIFAR-10-C .npy files: the corruptions family evaluates on them "
             "(= -p corruptions.dir=...).")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Recompute the suite's cells, replacing earlier results of them (each only once "
             "its new values exist).")] = False,
    trust_code: Annotated[bool, typer.Option(
        "--trust-code", help="Run the model code of imported run folders you have not "
                             "trusted (rbg trust RUN shows it and trusts it for good).")
    ] = False,
) -> None:
    """Evaluate trained runs under the robustness suite (docs/perturbations.md); cells already
    computed with the same settings are reused, with other settings refused (--overwrite)."""
    # The core (torch) is imported by the command, not at start-up: `rbg --help` stays fast.
    from ..attack import TestSplits, attack_run, resolve_runs
    from ..device import resolve_device
    from ..perturbations import check_suite, left_out_note, suite_names
    from ..rundir.run_code import untrusted_message, untrusted_runs
    from ..rundir.trust import trusting_code

    names = suite_names(suite)
    if note := left_out_note(suite):
        err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    settings = parse_perturbation_settings(setting)
    if corruptions_dir is not None:
        settings.setdefault("corruptions", {})["dir"] = str(corruptions_dir)
    cfg = AttackConfig(settings=settings,
                       test_images=ImageSubset(samples, subset), batch_size=batch_size)
    cfg.validate()
    check_suite(names, cfg.settings)
    dev = resolve_device(device)
    targets = resolve_runs(list(run_dirs) if run_dirs else [runs])
    if not trust_code and (untrusted := untrusted_runs(targets)):
        raise RbgError(untrusted_message(untrusted))  # before any work, one line
    reports: list[RunReport] = []
    errors: list[str] = []
    splits = TestSplits(data_dir)
    plain = not console.is_terminal  # a log file: one line per cell, no bars
    with trusting_code(trust_code), Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=plain,
    ) as progress:
        overall = progress.add_task("runs", total=len(targets), info="")
        for run_dir in targets:
            task = progress.add_task(run_dir.name, total=None, info="")

            def on_event(e: CellEvent, task=task) -> None:  # noqa: ANN001
                if e.status == "progress":
                    progress.update(task, total=e.total,
                                    completed=e.index + e.done / max(e.units, 1),
                                    info=f"{e.cell.label} ({e.done}/{e.units})")
                    return
                progress.update(task, total=e.total, completed=e.index + (e.status != "start"),
                                info=f"{e.cell.label}" + (" (cached)" if e.status == "skipped"
                                                          else ""))
                if plain and e.status == "done":
                    value = "" if e.headline is None else f", {_headline_text(e)}"
                    console.print(f"{e.run}: {e.cell.label} ({e.index + 1}/{e.total}) in "
                                  f"{e.seconds:.1f} s{value}", highlight=False, markup=False)

            try:
                done = attack_run(run_dir, suite, cfg, device=dev, overwrite=overwrite,
                                  splits=splits, on_event=on_event)
                reports.append(done)
                for line in done.warnings:
                    err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False,
                                      soft_wrap=True)
                progress.update(task, info="done")
            except (RbgError, ValueError, KeyError, TypeError, RuntimeError) as err:
                # one bad run folder must not stop the others
                if not isinstance(err, RbgError):
                    err = RbgError(f"{run_dir}: {type(err).__name__}: {err}")
                errors.append(str(err))
                progress.update(task, info="[red]error")
                err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                                  soft_wrap=True)
            progress.advance(overall)
    if reports:
        _render(reports)
    if errors:
        raise RbgError(f"{len(errors)} of {len(targets)} runs could not be attacked; "
                       "results of the others are kept")


def _headline_text(e: CellEvent) -> str:
    from ..perturbations import family_class

    cls = family_class(e.cell.perturbation)
    info = cls.metric(cls.headline)
    return f"{cls.headline} {e.headline:.2%}" if info.percent else \
        f"{cls.headline} {e.headline:.4g}"


def _summary_cells(table) -> dict[str, tuple[str, float, bool]]:  # noqa: ANN001
    """Per family: (setting, mean over repeats, percent) of its headline metric at its
    headline setting (the middle computed strength where that one was not computed)."""
    from ..perturbations import family_class, suite_order
    from ..perturbations.metrics import Strength
    from ..report.headline import dataset_family_of, headline_strength

    out: dict[str, tuple[str, float, bool]] = {}
    family = dataset_family_of(str(table["dataset"].iloc[0])) if len(table) else None
    for name in suite_order():
        cls = family_class(name)
        rows = table[(table["perturbation"] == name) & (table["metric"] == cls.headline)]
        if rows.empty:
            continue
        value = headline_strength(name, family, sorted(set(rows["param_value"])))
        at = rows[rows["param_value"] == value]
        param = str(at["param"].iloc[0])
        label = "" if param == "none" else cls.describe_cell(param, value).split(", ", 1)[-1]
        if (count := at["param"].nunique()) > 1:  # one curve per corruption: their mean
            axis = cls.strengths.get(param, Strength(param)).label.split()[-1]
            label = f"{axis} {value:g}, mean of {count}"
        out[name] = (label, float(at["value"].mean()), cls.metric(cls.headline).percent)
    return out


def _render(reports: list[RunReport]) -> None:
    """One table for the whole invocation: a row per run, a column per family at its
    headline setting (every cell is in each run's results.csv and in rbg report)."""
    cells = {r.name: _summary_cells(r.table) for r in reports if r.table is not None}
    families = list(dict.fromkeys(f for c in cells.values() for f in c))
    computed = sum(len(r.computed) for r in reports)
    cached = sum(len(r.skipped) for r in reports)
    table = Table(title=f"attack: {len(reports)} run(s), {computed} cells computed, "
                        f"{cached} cached", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("run", overflow="fold")
    for f in families:
        setting = next((c[f][0] for c in cells.values() if f in c), "")
        table.add_column(f"{f}\n{setting}".strip(), justify="right")
    for r in reports:
        row = [r.name]
        for f in families:
            if f not in cells.get(r.name, {}):
                row.append("–")
                continue
            _label, value, percent = cells[r.name][f]
            row.append(f"{100 * value:.1f}" if percent else f"{value:.3g}")
        table.add_row(*row)
    console.print(table)
    console.print("accuracy in %, DeepFool in L2; every setting: results.csv in each run, "
                  "and rbg report", highlight=False)
    for r in reports:
        console.print(f"results: [bold]{r.run_dir / 'results.csv'}[/]", highlight=False)
