"""``rbg trust``: show the code an imported run folder runs and record that you trust it
(docs/models.md#trusting-code-in-run-folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .console import console, guarded


@guarded
def trust(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="Imported run folders whose model code you trust.")],
    show: Annotated[bool, typer.Option(
        "--show", help="Only show what each folder runs; record nothing.")] = False,
) -> None:
    """Show what an imported run folder's model runs (its code file and SHA-256, the factory
    and its arguments, the weights), then trust it: rbg attack and smoothness run it from
    then on, as long as the folder is unchanged."""
    from ..rundir.run_code import run_code, trust_run

    for run_dir in run_dirs:
        code = run_code(run_dir)
        if code is None or not code.runs_code:
            console.print(f"{run_dir}: its model is rbg's, torchvision's, timm's or an ONNX "
                          "file's and runs no code of the folder; nothing to trust",
                          highlight=False, markup=False, soft_wrap=True)
            continue
        for line in code.describe():
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if show:
            state = "trusted" if code.trusted else "not trusted"
            console.print(f"{run_dir}: {state} (--show: nothing recorded)", highlight=False,
                          markup=False, soft_wrap=True)
            continue
        trust_run(code)
        console.print(f"trusted {run_dir}: rbg runs this code when it loads the folder, "
                      "until the folder changes", highlight=False, markup=False,
                      soft_wrap=True)
