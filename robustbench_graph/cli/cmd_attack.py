"""``rbg attack``: the robustness suite on every run, as tidy rows in each run's results.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..config import AttackConfig, ImageSubset
from ..errors import RbgError
from ..settings import default_of
from .console import busy_machine_note, console, err_console, guarded, show_note
from .options import parse_perturbation_settings
from .progress import StudyProgress

if TYPE_CHECKING:
    from ..attack import CellEvent, RunReport


@guarded
def attack(
    run_dirs: Annotated[list[Path] | None, typer.Argument(
        help="Run folders (or folders of runs) to attack \\[default: --runs].")] = None,
    runs: Annotated[Path, typer.Option(help="Folder searched for run folders.")] = Path("runs"),
    suite: Annotated[str, typer.Option(
        help="'default' (the papers' suite: LapNet's perturbations, PGD and DeepFool), "
             "'all' (every family, hours per run on a CPU) or a comma list of perturbations "
             "(rbg list perturbations).")] = "default",
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
        show_note(note)
    settings = parse_perturbation_settings(setting)
    if corruptions_dir is not None:
        settings.setdefault("corruptions", {})["dir"] = str(corruptions_dir)
    cfg = AttackConfig(settings=settings,
                       test_images=ImageSubset(samples, subset), batch_size=batch_size)
    cfg.validate()
    check_suite(names, cfg.settings)
    dev = resolve_device(device)
    busy_machine_note(dev)
    targets = resolve_runs(list(run_dirs) if run_dirs else [runs])
    if not trust_code and (untrusted := untrusted_runs(targets)):
        raise RbgError(untrusted_message(untrusted))  # before any work, one line
    reports: list[RunReport] = []
    errors: list[str] = []
    splits = TestSplits(data_dir)
    _print_estimate(targets, suite, cfg, dev, splits)
    cost: dict[str, float] = {}  # seconds per family, measured on the first computed run
    with trusting_code(trust_code), StudyProgress(console, len(targets), "runs") as progress:
        for i, run_dir in enumerate(targets):
            name = run_dir.name
            progress.start(name)
            measuring = not cost

            def on_event(e: CellEvent, name=name, measuring=measuring) -> None:  # noqa: ANN001
                if measuring and e.status == "done":
                    cost[e.cell.perturbation] = cost.get(e.cell.perturbation, 0.0) + e.seconds
                if e.status == "progress":
                    progress.update(name, f"{e.cell.label} ({e.done}/{e.units})",
                                    (e.index + e.done / max(e.units, 1)) / max(e.total, 1))
                    return
                progress.update(name, e.cell.label + (" (cached)" if e.status == "skipped"
                                                      else ""),
                                (e.index + (e.status != "start")) / max(e.total, 1))
                if progress.plain and e.status == "done":
                    value = "" if e.headline is None else f", {_headline_text(e)}"
                    progress.line(f"{e.run}: {e.cell.label} ({e.index + 1}/{e.total}) in "
                                  f"{e.seconds:.1f} s{value}")

            try:
                done = attack_run(run_dir, suite, cfg, device=dev, overwrite=overwrite,
                                  splits=splits, on_event=on_event)
                reports.append(done)
                for line in done.warnings:
                    err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False,
                                      soft_wrap=True)
                progress.finish(name, "done" if done.computed else "skipped",
                                note=f"{len(done.computed)} new cells, "
                                     f"{len(done.skipped)} cached")
                if measuring and cost and (left := len(targets) - i - 1):
                    for line in cost_lines(cost, name, left):
                        progress.line(line)
            except (RbgError, ValueError, KeyError, TypeError, RuntimeError) as err:
                # one bad run folder must not stop the others
                if not isinstance(err, RbgError):
                    err = RbgError(f"{run_dir}: {type(err).__name__}: {err}")
                errors.append(str(err))
                if measuring:
                    cost.clear()  # measured in part: the next run measures again
                progress.finish(name, "failed")
                err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                                  soft_wrap=True)
    if reports:
        _render(reports)
    if errors:
        raise RbgError(f"{len(errors)} of {len(targets)} runs could not be attacked; "
                       "results of the others are kept")



def _print_estimate(targets: list[Path], suite: str, cfg: AttackConfig, dev, splits  # noqa: ANN001
                    ) -> None:
    """The suite's estimated passes and time per family, before any work (a run that
    cannot be loaded gets no estimate: the attack then says why)."""
    from ..experiment.cost import estimate_run
    from .cost import estimate_lines

    try:
        est = estimate_run(targets[0], suite, cfg, dev, splits)
    except (RbgError, ValueError, KeyError, TypeError, RuntimeError, IndexError):
        return  # e.g. a dataset the run was not made for: the attack says so
    for line in estimate_lines(est, len(targets), SLOW_S):
        console.print(line, markup=False, highlight=False, soft_wrap=True)

SLOW_S = 120.0  # a family slower than this per run is named, with its time for the rest


def cost_lines(cost: dict[str, float], run: str, left: int) -> list[str]:
    """What the first computed run measured, per family, and what the ``left`` runs will
    cost at that rate; families slower than :data:`SLOW_S` per run named apart."""
    from .progress import clock

    per_run = sum(cost.values())
    parts = ", ".join(f"{f} {s:.1f} s" for f, s in sorted(cost.items(), key=lambda x: -x[1]))
    lines = [f"cost measured on {run}: {parts} (total {per_run:.1f} s); the {left} run(s) "
             f"left: about {clock(per_run * left)} at that rate"]
    slow = [(f, s) for f, s in cost.items() if s > SLOW_S]
    if slow:
        lines.append("slow: " + ", ".join(f"{f} {clock(s)} per run ({clock(s * left)} for the "
                                          "rest)" for f, s in slow)
                     + "; --suite default leaves the slowest families out")
    return lines


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


MAX_ROWS = 20  # past this many runs, one row per configuration (the mean over its seeds)


def _render(reports: list[RunReport]) -> None:
    """One table for the whole invocation: a row per run (per configuration, the mean over
    its seeds, past :data:`MAX_ROWS` runs), a column per family at its headline setting
    (every cell is in each run's results.csv and in rbg report)."""
    cells = {r.name: _summary_cells(r.table) for r in reports if r.table is not None}
    families = list(dict.fromkeys(f for c in cells.values() for f in c))
    computed = sum(len(r.computed) for r in reports)
    cached = sum(len(r.skipped) for r in reports)
    grouped = len(reports) > MAX_ROWS
    groups: dict[str, list[str]] = {}
    for r in reports:
        key = r.name.rsplit("-seed", 1)[0] if grouped else r.name
        groups.setdefault(key, []).append(r.name)
    table = Table(title=f"attack: {len(reports)} run(s), {computed} cells computed, "
                        f"{cached} cached" + (" (mean over seeds)" if grouped else ""),
                  title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("configuration" if grouped else "run", overflow="fold")
    if grouped:
        table.add_column("runs", justify="right")
    for f in families:
        setting = next((c[f][0] for c in cells.values() if f in c), "")
        table.add_column(f"{f}\n{setting}".strip(), justify="right")
    for key, names in groups.items():
        row = [key, *([str(len(names))] if grouped else [])]
        for f in families:
            values = [cells[n][f] for n in names if f in cells.get(n, {})]
            if not values:
                row.append("–")
                continue
            value = sum(v[1] for v in values) / len(values)
            row.append(f"{100 * value:.1f}" if values[0][2] else f"{value:.3g}")
        table.add_row(*row)
    console.print(table)
    units = "accuracy in %" + (", DeepFool in L2" if "deepfool" in families else "")
    console.print(f"{units}; every setting: results.csv in each run, and rbg report",
                  highlight=False)
    parents = sorted({str(r.run_dir.parent) for r in reports})
    where = parents[0] if len(parents) == 1 else f"{len(parents)} folders"
    console.print(f"results: results.csv in each of the {len(reports)} run folder(s) in "
                  f"[bold]{escape(where)}[/]", highlight=False)
