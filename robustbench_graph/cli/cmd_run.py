"""``rbg run`` and ``rbg status``: a whole experiment file (docs/experiments.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..experiment.spec import Experiment, shipped_experiments
from .console import console, err_console, guarded, show_note
from .progress import StudyProgress

EXPERIMENT_HELP = ("An experiment file (.toml), or the name of one shipped with rbg: "
                   f"{', '.join(shipped_experiments())}.")
MAX_LISTED = 30  # --dry-run lists each unit up to this many, else counts per configuration
MAX_FAILED = 20  # rbg status names each failed unit up to this many
OUT_HELP = "Folder of the experiment's runs and report \\[default: the file's 'out']."


@guarded
def run(
    experiment: Annotated[str, typer.Argument(help=EXPERIMENT_HELP)],
    out: Annotated[Path | None, typer.Option(help=OUT_HELP)] = None,
    executor: Annotated[str, typer.Option(
        help="Where the units run: local (worker processes on this machine), slurm "
             "(submitit job arrays), ray (Ray tasks).")] = "local",
    workers: Annotated[int | None, typer.Option(
        help="local: worker processes \\[default: cores / threads per unit]; slurm: the "
             "array's parallelism.")] = None,
    address: Annotated[str | None, typer.Option(
        help="ray: the cluster's address (e.g. auto, or host:6379) \\[default: a new local "
             "cluster].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda, in every unit.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder of the datasets' files \\[default: $RBG_DATA_DIR or "
             "~/.cache/robustbench_graph/data].")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the units and their state; run nothing.")] = False,
    report: Annotated[bool, typer.Option(help="Write the report when the units are done.")
    ] = True,
    probe: Annotated[bool, typer.Option(
        "--probe", help="With --dry-run, time the attack's estimate on an untrained network "
                        "(loads torch); without it the dry run counts the passes only.")
    ] = False,
) -> None:
    """Run an experiment: plan every training and attack unit, skip what is done, run the
    rest, write the report. Interrupted? Run the same command again."""
    from ..experiment import spec, units
    from ..experiment.executors import make_executor
    from ..experiment.runner import describe, run_experiment
    from ..experiment.scheduler import STARTED

    exp = spec.load(experiment, out=out, data_dir=data_dir)
    if dry_run:
        rows = describe(units.plan(exp, device))
        title = f"{exp.name}: {len(rows)} units in {exp.out}"
        if len(rows) <= MAX_LISTED:
            _units_table(rows, title)
        else:  # hundreds of rows are read by no one: counts per configuration
            _config_table(rows, f"{title}, per configuration (each unit is listed up to "
                                f"{MAX_LISTED} units)")
        _power(exp)
        _estimate(exp, device, probe)
        return
    ex = make_executor(executor, workers=workers, resources=exp.resources, address=address,
                       folder=exp.out / ".submitit")
    plan = units.plan(exp, device)
    console.print(f"{exp.name}: {len(plan)} units ({exp.source}) into {exp.out}, executor "
                  f"{executor}", highlight=False)
    from ..perturbations import left_out_note

    if note := left_out_note(exp.suite):
        show_note(note)
    _power(exp)
    _estimate(exp, device)
    with StudyProgress(console, len(plan), "units") as progress:
        def on_outcome(outcome: dict) -> None:
            if outcome["status"] == STARTED:
                progress.start(outcome["id"])
                return
            progress.finish(outcome["id"], outcome["status"], outcome.get("seconds"),
                            outcome.get("message") or "")
            if outcome["status"] == "failed" and not progress.plain:
                err_console.print(f"failed: {outcome['id']}: {outcome.get('message', '')}",
                                  highlight=False, markup=False, soft_wrap=True)

        def on_planned(done: int) -> None:  # units already done count as skipped at once
            progress.counts["skipped"] += done

        summary = run_experiment(exp, ex, device=device, on_outcome=on_outcome,
                                 report=report, on_planned=on_planned)
    done = len(summary.already_done)
    console.print(f"{len(summary.outcomes) - len(summary.failed)} unit(s) run, {done} "
                  f"already done, {len(summary.failed)} failed", highlight=False)
    if summary.report is not None:
        from . import cmd_report

        if summary.built is not None:  # the answer first: the claims, else the headline
            width = min(console.width, cmd_report.HEADLINE_WIDTH)
            if summary.built.claims:
                cmd_report.render_claims(summary.built, width)
            else:
                cmd_report.render_headlines(summary.built, width)
        console.print(f"report: {summary.report}", highlight=False, markup=False,
                      soft_wrap=True)
    elif summary.report_error:
        err_console.print(f"no report: {summary.report_error}", highlight=False)
    if summary.failed:
        raise typer.Exit(1)


@guarded
def status(
    experiment: Annotated[str, typer.Argument(help=EXPERIMENT_HELP)],
    out: Annotated[Path | None, typer.Option(help=OUT_HELP)] = None,
) -> None:
    """Done / running / failed / pending units of an experiment, per configuration."""
    from ..experiment import spec, units
    from ..experiment.runner import describe

    exp = spec.load(experiment, out=out)
    rows = describe(units.plan(exp))
    _config_table(rows, f"{exp.name} in {exp.out}")
    failed = [r for r in rows if r["state"] == "failed"]
    for r in failed[:MAX_FAILED]:
        err_console.print(f"failed: {r['id']}: {r['message']}", highlight=False,
                          markup=False, soft_wrap=True)
    if len(failed) > MAX_FAILED:
        err_console.print(f"... and {len(failed) - MAX_FAILED} more failed units",
                          highlight=False, markup=False)


def _config_table(rows: list[dict], title: str) -> None:
    """Units counted by state, one row per configuration and kind, then a totals row."""
    from ..experiment.units import STATES

    console.print(title, highlight=False, markup=False, soft_wrap=True)  # never cut
    table = Table(show_footer=True)
    by_config: dict[str, Counter] = {}
    for row in rows:
        config = row["run"].rsplit("-seed", 1)[0] + f" ({row['kind']})"
        by_config.setdefault(config, Counter())[row["state"]] += 1
    total = Counter(row["state"] for row in rows)
    table.add_column("configuration", footer=f"total ({len(rows)} units)")
    for st in STATES:
        table.add_column(st, justify="right", footer=str(total.get(st, 0)))
    for config, c in by_config.items():
        table.add_row(config, *(str(c.get(st, 0)) for st in STATES))
    console.print(table)


def _units_table(rows: list[dict], title: str) -> None:
    from ..experiment.units import STATES

    total = Counter(r["state"] for r in rows)
    table = Table(show_footer=True)
    table.add_column("unit", footer="total", overflow="fold")
    table.add_column("state", footer=", ".join(f"{total[st]} {st}" for st in STATES
                                               if total[st]))
    table.add_column("note", overflow="fold")
    console.print(title, highlight=False, markup=False, soft_wrap=True)
    if not console.is_terminal:  # a log, a pipe: one line per unit, nothing cut
        for r in rows:
            console.print("  ".join(filter(None, (r["id"], r["state"], r["message"]))),
                          highlight=False, markup=False, soft_wrap=True)
        console.print("total: " + ", ".join(f"{total[st]} {st}" for st in STATES
                                            if total[st]), highlight=False)
        return
    for r in rows:
        table.add_row(r["id"], r["state"], r["message"])
    console.print(table)


def power_lines(exp: Experiment) -> list[str]:
    """What the grid's seeds can show of its claims: one line per claim that cannot be
    shown, then a total (none without claims)."""
    from ..experiment.claims_check import claims_power

    power = claims_power(exp.claims, exp.seeds)
    if power is None:
        return []
    k, n = power.claims, power.networks
    claims = f"{k} claim{'s' if k != 1 else ''}"
    lines = [f"claim {cid} cannot be shown with {n} networks per method ({power.needed} "
             "needed)" for cid in power.cannot]
    head = f"{claims} (level {power.alpha:g}, Holm)"
    if power.shown:
        which = "each" if k != 1 else "it"
        lines.append(f"{head}: {which} can be shown with {n} networks per method "
                     f"({power.needed} needed)")
    else:
        lines.append(f"{head}: none can be shown with {n} networks per method; use "
                     f'seeds = "{power.seeds_needed}"')
    return lines


def _power(exp: Experiment) -> None:
    for line in power_lines(exp):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _estimate(exp: Experiment, device: str, probe: bool = True) -> None:
    """The attack's estimated passes and time per family, before any unit runs (without
    ``probe``, the passes only: no network is built, torch is not imported)."""
    from .cmd_attack import SLOW_S
    from .cost import declared_estimate_lines, experiment_estimate_lines

    if exp.suite.strip():
        lines = (experiment_estimate_lines(exp, device, SLOW_S) if probe
                 else declared_estimate_lines(exp))
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
