"""``rbg report``: summaries, comparisons with a baseline, box plots and an HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table as RichTable

from ..claims import load_claims
from ..config import ReportConfig
from ..settings import default_of
from .console import console, err_console, guarded

if TYPE_CHECKING:
    from ..report import Report
    from ..report.model import Headline

HEADLINE_WIDTH = 100  # the headline fits this many terminal columns


SKIPPED_EXIT = 3  # the report was written, but some run folders were left out


@guarded
def report(
    runs: Annotated[Path, typer.Option(help="Folder of run folders to report on.")] = Path(
        "runs"),
    out: Annotated[Path, typer.Option(help="Folder that receives the report files.")] = Path(
        "report"),
    baseline: Annotated[str, typer.Option(
        help="Method every other method is compared with (e.g. ce).")
    ] = default_of(ReportConfig, "baseline"),
    plots: Annotated[bool, typer.Option(
        help="Draw the curves and box plots (PNG and SVG).")] = default_of(ReportConfig, "plots"),
    columns: Annotated[str | None, typer.Option(
        help="Headline columns, comma-separated: clean, a family at its headline setting "
             "(gaussian), at another strength (gaussian@0), or its curve's area "
             "(auc:gaussian) \\[default: clean, every family, every curve's area].")
    ] = default_of(ReportConfig, "columns"),
    claims: Annotated[Path | None, typer.Option(
        help="A TOML file of \\[\\[claims]] (an experiment file, or claims only): test each "
             "declared claim on these runs and show its verdict first (docs/statistics.md).")
    ] = None,
    export: Annotated[list[str] | None, typer.Option(
        "--export", help="Also export the results: robustbench (model_info JSON per network), "
                         "mlflow, tensorboard; repeat or comma-separate (docs/exporting.md).")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI for --export mlflow \\[default: a file store in "
             "--out/mlruns].")] = None,
) -> None:
    """Summarise every results.csv under --runs; write the headline, curves, tables
    (index.html, tables.md, tables.tex, CSVs) to --out. The network is the unit of every
    statistic (docs/statistics.md)."""
    # The core (pandas, matplotlib) is imported by the command: `rbg --help` stays fast.
    from ..report import NoUsableResults, build_report
    from ..report.export_targets import plan_exports, run_exports

    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    declared = load_claims(claims) if claims is not None else ()
    config = ReportConfig(baseline, plots, tuple(chosen) if chosen else None, declared)
    config.validate()  # before any run is read: a column named twice is one line
    plan = plan_exports(export, out, tracking_uri)  # extras and the tracking URI, first
    try:
        with err_console.status("report: starting") as status:
            result = build_report(runs, out, config,
                                  on_step=lambda name: status.update(f"report: {name}"))
    except NoUsableResults as err:
        _warn(err.warnings)
        raise
    _warn(result.warnings)
    _render(result)
    if plan.names:
        with err_console.status("report: exporting"):
            exported = run_exports(result, plan)
        for done in exported:
            console.print(f"exported {done.name}: {escape(done.summary)}", highlight=False)
    skipped = [r for r in result.runs if r.skipped]
    if skipped:
        _warn([f"{len(skipped)} run folder(s) skipped for unreadable files (above); the report "
               f"of the other {len(result.runs) - len(skipped)} is written (exit code "
               f"{SKIPPED_EXIT})"])
        raise typer.Exit(SKIPPED_EXIT)


def _warn(lines: list[str]) -> None:
    for line in lines:
        err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False,
                          soft_wrap=True)


def _fits(columns: list, width: int, name: int) -> list[list[int]]:
    """Column indices split into groups whose table fits ``width`` (the curve areas apart
    from the settings first, then as many as fit)."""
    fixed = name + 8  # method and n columns, borders
    widths = [max(5, *(len(line) for line in c.short)) + 2 for c in columns]
    if fixed + sum(widths) <= width:
        return [list(range(len(columns)))]
    groups: list[list[int]] = []
    kinds = [[j for j, c in enumerate(columns) if not c.is_area],
             [j for j, c in enumerate(columns) if c.is_area]]
    for kind in kinds:
        current: list[int] = []
        used = fixed
        for j in kind:
            if current and used + widths[j] > width:
                groups.append(current)
                current, used = [], fixed
            current.append(j)
            used += widths[j]
        if current:
            groups.append(current)
    return groups


def _render_headline(head: Headline, width: int) -> None:
    name = min(24, max(6, *(len(m) for m in head.methods)))
    for cols in _fits(head.columns, width - 2, name):
        areas = all(head.columns[j].is_area for j in cols)
        title = f"{head.title}: " + ("area under each curve" if areas else "headline")
        rich = RichTable(title=escape(title), title_style="bold", box=box.SIMPLE_HEAD,
                         pad_edge=False)
        rich.add_column("method", style="cyan", min_width=name, max_width=name, overflow="fold")
        rich.add_column("n", justify="right")
        for j in cols:
            rich.add_column(escape("\n".join(head.columns[j].short)), justify="right")
        for method in head.methods:
            row = [escape(method), str(head.n.get(method, ""))]
            for j in cols:
                cell = head.cell(method, j)
                if cell is None:
                    row.append("–")
                else:
                    text = escape(cell.text)
                    row.append(f"[bold green]{text}[/]" if cell.best else text)
            rich.add_row(*row)
        console.print(rich)
    for line in head.missing[:5]:
        console.print(f"[dim]not measured:[/] {escape(line)}", highlight=False)
    if len(head.missing) > 5:
        console.print(f"[dim]... and {len(head.missing) - 5} more (see index.html)[/]")


def render_claims(result: Report, width: int | None = None) -> None:
    """The declared claims' verdicts as a compact table that fits ``width`` columns (the
    terminal's, at most 100); ``rbg run`` shows them the same way."""
    if not result.claims:
        return
    width = width or min(console.width, HEADLINE_WIDTH)
    colour = {"supported": "bold green", "contradicted": "bold red",
              "cannot be shown": "yellow", "not shown": "dim", "not measured": "dim"}
    tested = sum(r.measured for r in result.claims)
    rich = RichTable(title=f"Claims: one-sided, Holm over {tested} measured, α = "
                           f"{result.alpha:g}", title_style="bold", box=box.SIMPLE_HEAD,
                     pad_edge=False)
    # The claim's id over its measure (two lines), so that ids of 30+ characters fit 100
    # columns unfolded.
    rich.add_column("claim / measure", max_width=36, overflow="fold")
    rich.add_column("effect [95% CI]", justify="right", no_wrap=True)
    rich.add_column("p Holm", justify="right", no_wrap=True)
    rich.add_column("n", justify="right", no_wrap=True)
    rich.add_column("verdict", min_width=12, max_width=16)
    for r in result.claims:
        style = colour.get(r.verdict, "")
        verdict = (f"[{style}]{escape(r.verdict)}[/]" if style else escape(r.verdict))
        if r.needed:
            verdict += f" (needs {r.needed}/method)"
        claim = f"[cyan]{escape(r.claim.id)}[/]\n[dim]  {escape(r.claim.measure.text)}[/]"
        rich.add_row(claim, escape(r.effect_text), escape(r.p_text),
                     escape(r.n_text.replace(" vs ", "+")), verdict)
    console.print(rich, width=width)
    for r in result.claims:
        if not r.measured:
            console.print(f"[dim]not measured:[/] {escape(r.claim.id)}: {escape(r.note)}",
                          highlight=False, width=width)
    console.print("Effect: median of the method minus the baseline's (accuracies in points); "
                  "every claim's text, source and paper number: index.html, claims.csv.",
                  highlight=False, width=width)


def render_headlines(result: Report, width: int | None = None) -> None:
    """The headline tables of a report, each fitting ``width`` columns; ``rbg run`` ends
    with them where the experiment declares no claims."""
    width = width or min(console.width, HEADLINE_WIDTH)
    for head in result.headlines:
        _render_headline(head, width)


def _render(result: Report) -> None:
    for info in result.failed_runs:
        console.print("[bold red]failed run:[/] " + escape(
            f"{info.run} ({info.method}): {info.message or 'no message'}"), highlight=False)
    for note in result.notes:
        console.print(f"[dim]note:[/] {escape(note)}", highlight=False)
    width = min(console.width, HEADLINE_WIDTH)
    render_claims(result, width)
    render_headlines(result, width)
    console.print(escape(result.footer) + " [bold green]Green[/]: best per column. "
                  "Every setting, Δ with intervals and effect sizes: index.html, tables.md.",
                  highlight=False, markup=True, width=width)
    comps = result.comparisons
    used = sum(r.used for r in result.runs)
    significant = int(comps["significant"].sum()) if not comps.empty else 0
    console.print(f"{used} of {len(result.runs)} runs reported, {len(result.failed_runs)} "
                  + (f"failed. {escape(result.power)}" if result.power else
                     f"failed; {significant} of {len(comps)} comparisons significant."),
                  highlight=False)
    index = escape(str((result.out_dir / "index.html").resolve()))
    console.print(f"report written to [bold]{index}[/]", highlight=False)
