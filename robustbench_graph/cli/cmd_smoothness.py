"""``rbg smoothness``: per-layer label-signal smoothness of trained runs (LapNet Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import console, err_console, guarded
from .options import ensure_writable_dir


@guarded
def smoothness(
    runs: Annotated[list[Path], typer.Argument(
        help="Run folders, or folders searched for run folders.")],
    out: Annotated[Path, typer.Option(
        help="Folder for smoothness.csv and smoothness.png.")] = Path("smoothness"),
    batch_size: Annotated[int, typer.Option(
        help="Test images per graph (LapNet: 100); only full batches are used.")] = 100,
    limit: Annotated[int | None, typer.Option(
        help="Use only the first N test images \\[default: all].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder of torchvision datasets \\[default: $RBG_DATA_DIR or "
             "~/.cache/robustbench_graph/data].")] = None,
    trust_code: Annotated[bool, typer.Option(
        "--trust-code", help="Run the model code of imported run folders you have not "
                             "trusted (rbg trust RUN shows it and trusts it for good).")
    ] = False,
) -> None:
    """Smoothness tr(S^T L^m S), m = 1 and 2, of the label signals after every ReLU."""
    # The core (torch) is imported by the command: `rbg --help` stays fast.
    from ..device import resolve_device
    from ..diagnostics.smoothness import (
        collect_runs,
        plot_smoothness,
        smoothness_table,
        write_table,
    )
    from ..rundir.trust import trusting_code

    complete, skipped = collect_runs(runs)
    for path in skipped:
        err_console.print(f"[yellow]skipping unfinished run[/] {path}")
    dev = resolve_device(device)
    ensure_writable_dir(out, "--out")
    with trusting_code(trust_code), console.status("measuring smoothness") as status:
        df = smoothness_table(
            complete, batch_size=batch_size, limit=limit, device=dev, data_dir=data_dir,
            on_run=lambda name: status.update(f"measured {name}"),
        )
    csv_path, png_path = out / "smoothness.csv", out / "smoothness.png"
    write_table(df, csv_path)
    plot_smoothness(df, png_path)
    _render(df)
    console.print(f"wrote [bold]{csv_path}[/] and [bold]{png_path}[/]")


def _render(df) -> None:  # noqa: ANN001
    means = df[df["m"] == 2].groupby(["method", "layer"])["value"].mean().unstack("layer")
    table = Table(title="sigma (m = 2), mean over seeds and test batches")
    table.add_column("method")
    for layer in means.columns:
        table.add_column(str(layer), justify="right")
    for method, row in means.iterrows():
        table.add_row(str(method), *(f"{v:.3g}" for v in row))
    console.print(table)
