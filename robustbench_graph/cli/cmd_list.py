"""``rbg list``: the registries with one-line descriptions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import RbgError
from .app import app, console, guarded


def _registries() -> dict:
    from ..data import DATASETS
    from ..losses import LOSSES
    from ..models import MODELS

    regs = {"datasets": DATASETS, "models": MODELS, "losses": LOSSES}
    try:
        from ..perturbations import PERTURBATIONS

        regs["perturbations"] = PERTURBATIONS
    except ImportError:  # pragma: no cover - before the attack suite exists
        pass
    return regs


@app.command("list")
@guarded
def list_cmd(
    what: Annotated[str | None, typer.Argument(
        help="datasets, models, losses or perturbations (default: all)")] = None,
) -> None:
    """List the registered datasets, models, losses and perturbations."""
    regs = _registries()
    if what is not None and what not in regs:
        raise RbgError(f"unknown registry {what!r}; valid: {', '.join(regs)}")
    for name, reg in regs.items():
        if what is not None and name != what:
            continue
        table = Table(title=name, title_justify="left", show_header=False, box=None)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        for entry in reg:
            table.add_row(entry.name, entry.description)
        console.print(table)
