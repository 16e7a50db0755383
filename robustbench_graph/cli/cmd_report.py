"""``rbg report``: summaries, comparisons with a baseline, box plots and an HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from .console import console, err_console, guarded

if TYPE_CHECKING:
    from ..report import Report
    from ..report.tables import Table

CELL_WIDTH = 19  # "97.5 [96.1–98.0]*" plus padding


SKIPPED_EXIT = 3  # the report was written, but some run folders were left out


@guarded
def report(
    runs: Annotated[Path, typer.Option(help="Folder of run folders to report on.")] = Path(
        "runs"),
    out: Annotated[Path, typer.Option(help="Folder that receives the report files.")] = Path(
        "report"),
    baseline: Annotated[str, typer.Option(
        help="Method every other method is compared with (e.g. ce).")] = "ce",
    plots: Annotated[bool, typer.Option(help="Draw the box plots (PNG and SVG).")] = True,
) -> None:
    """Summarise every results.csv under --runs; write tables, plots and index.html to --out."""
    # The core (pandas, matplotlib) is imported by the command: `rbg --help` stays fast.
    from ..report import NoUsableResults, build_report

    try:
        result = build_report(runs, out, baseline=baseline, plots=plots)
    except NoUsableResults as err:
        _warn(err.warnings)
        raise
    _warn(result.warnings)
    _render(result)
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


def _chunks(table: Table, width: int) -> list[list[int]]:
    name = max((len(m) for m in table.methods), default=6) + 4
    per = max(1, (width - name) // CELL_WIDTH)
    idx = list(range(len(table.columns)))
    return [idx[i:i + per] for i in range(0, len(idx), per)] or [[]]


def _render_table(table: Table) -> None:
    chunks = _chunks(table, console.width)
    for k, cols in enumerate(chunks):
        part = f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        rich = RichTable(title=escape(f"{table.title}{part}"), title_style="bold")
        rich.add_column("method", style="cyan", no_wrap=True)
        for j in cols:
            col = table.columns[j]
            rich.add_column(escape(f"{col.label}\n{col.unit}"), justify="right")
        for method in table.methods:
            row = [escape(method)]
            for j in cols:
                cell = table.cell(method, j)
                if cell is None:
                    row.append("–")
                else:
                    text = escape(cell.text)
                    row.append(f"[bold green]{text}[/]" if cell.best else text)
            rich.add_row(*row)
        console.print(rich)


def _render(result: Report) -> None:
    for info in result.failed_runs:
        console.print("[bold red]failed run:[/] " + escape(
            f"{info.run} ({info.method}): {info.message or 'no message'}"), highlight=False)
    for note in result.notes:
        console.print(f"[dim]note:[/] {escape(note)}", highlight=False)
    for table in result.tables:
        _render_table(table)
    console.print(
        "Cells: median \\[q25–q75], seeds and repeats pooled; accuracy in %, DeepFool in L2. "
        f"[bold green]green[/]: best per column; *: differs from {escape(result.baseline)} "
        f"(Mann–Whitney U, Holm p < {result.alpha:g}).", highlight=False, markup=True)
    comps = result.comparisons
    used = sum(r.used for r in result.runs)
    console.print(f"{used} of {len(result.runs)} runs reported, {len(result.failed_runs)} "
                  f"failed; {int(comps['significant'].sum()) if not comps.empty else 0} of "
                  f"{len(comps)} comparisons significant.", highlight=False)
    index = escape(str((result.out_dir / "index.html").resolve()))
    console.print(f"report written to [bold]{index}[/]", highlight=False)
