"""``rbg run`` and ``rbg status``: a whole experiment file (docs/experiments.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..experiment.spec import Experiment, shipped_experiments
from .console import console, err_console, guarded

EXPERIMENT_HELP = ("An experiment file (.toml), or the name of one shipped with rbg: "
                   f"{', '.join(shipped_experiments())}.")
MAX_LISTED = 1000  # --dry-run lists each unit up to this many, else counts per configuration
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
) -> None:
    """Run an experiment: plan every training and attack unit, skip what is done, run the
    rest, write the report. Interrupted? Run the same command again."""
    from ..experiment import spec, units
    from ..experiment.executors import make_executor
    from ..experiment.runner import describe, run_experiment

    exp = spec.load(experiment, out=out, data_dir=data_dir)
    if dry_run:
        rows = describe(units.plan(exp, device))
        title = f"{exp.name}: {len(rows)} units in {exp.out}"
        if len(rows) <= MAX_LISTED:
            _units_table(rows, title)
        else:  # a table of 10^5 rows takes minutes to draw and is read by no one
            _config_table(rows, f"{title} (per configuration; each unit listed up to "
                                f"{MAX_LISTED})")
        _power(exp)
        return
    ex = make_executor(executor, workers=workers, resources=exp.resources, address=address,
                       folder=exp.out / ".submitit")
    total = len(units.plan(exp, device))
    count = Counter()

    def on_outcome(outcome: dict) -> None:
        count[outcome["status"]] += 1
        n = sum(count.values())
        text = f"[{n}] {outcome['id']}: {outcome['status']}"
        if outcome["status"] == "done":
            text += f" in {outcome['seconds']:.1f} s"
        if outcome.get("message"):
            text += f" ({outcome['message']})"
        (err_console if outcome["status"] == "failed" else console).print(
            text, highlight=False, markup=False, soft_wrap=True)

    console.print(f"{exp.name}: {total} units ({exp.source}) into {exp.out}, executor "
                  f"{executor}", highlight=False)
    from ..perturbations import left_out_note

    if note := left_out_note(exp.suite):
        err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    _power(exp)
    summary = run_experiment(exp, ex, device=device, on_outcome=on_outcome, report=report)
    done = len(summary.already_done)
    console.print(f"{len(summary.outcomes) - len(summary.failed)} unit(s) run, {done} "
                  f"already done, {len(summary.failed)} failed", highlight=False)
    if summary.report is not None:
        from .cmd_report import HEADLINE_WIDTH, render_claims

        if summary.built is not None:
            render_claims(summary.built, min(console.width, HEADLINE_WIDTH))
        console.print(f"report: {summary.report}", highlight=False)
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
    for r in failed:
        err_console.print(f"failed: {r['id']}: {r['message']}", highlight=False,
                          markup=False, soft_wrap=True)


def _config_table(rows: list[dict], title: str) -> None:
    """Units counted by state, one row per configuration and kind."""
    from ..experiment.units import STATES

    table = Table(title=title, title_justify="left")
    table.add_column("configuration")
    for st in STATES:
        table.add_column(st, justify="right")
    by_config: dict[str, Counter] = {}
    for row in rows:
        config = row["run"].rsplit("-seed", 1)[0] + f" ({row['kind']})"
        by_config.setdefault(config, Counter())[row["state"]] += 1
    for config, c in by_config.items():
        table.add_row(config, *(str(c.get(st, 0)) for st in STATES))
    console.print(table)


def _units_table(rows: list[dict], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("unit", "state", "note"):
        table.add_column(col)
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
