"""``rbg list``: the registries with one-line descriptions; each loss's options and each
perturbation's settings, with defaults and meanings."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

from ..errors import RbgError
from ..settings import describe_fields, typed_text
from .console import console, guarded

REGISTRIES = ("datasets", "models", "losses", "perturbations")


def _registry(name: str):  # noqa: ANN202
    # The core (torch) is imported by the command, not at start-up: `rbg --help` stays fast.
    if name == "datasets":
        from ..data import DATASETS as registry
    elif name == "models":
        from ..models import MODELS as registry
    elif name == "losses":
        from ..losses import LOSSES as registry
    else:
        from ..perturbations import PERTURBATIONS as registry
    return registry


def _options_table(name: str, options: type) -> Table:
    table = Table(title=f"{name} options (rbg train --loss {name} -o KEY=VALUE)",
                  title_justify="left", box=None, pad_edge=False)
    for col in ("option", "default", "meaning"):
        table.add_column(col, style="bold" if col == "option" else None)
    for field, _type, default, meaning in describe_fields(options):
        table.add_row(field, default, meaning)
    table.caption = f"see docs/losses.md#{name}"
    table.caption_justify = "left"
    return table


def _settings_table(cls) -> Table:  # noqa: ANN001
    table = Table(title=f"{cls.name} settings (-p {cls.name}.KEY=VALUE)", title_justify="left",
                  box=None, pad_edge=False)
    for col in ("setting", "default", "grey-image default", "meaning"):
        table.add_column(col, style="bold" if col == "setting" else None)
    grey = cls.presets.get("grey", {})
    for name, _type, default, meaning in describe_fields(cls.Settings):
        table.add_row(name, default, "" if name not in grey else typed_text(grey[name]),
                      meaning)
    metrics = ", ".join(
        f"{m.name} ({'diagnostic' if m.better == 'none' else m.better + ' is more robust'})"
        for m in cls.metrics)
    table.caption = (f"metrics: {metrics}; headline: {cls.headline}; see "
                     f"docs/perturbations.md#{cls.name}")
    table.caption_justify = "left"
    return table


@guarded
def list_cmd(
    what: Annotated[str | None, typer.Argument(
        help="datasets, models, losses or perturbations (with their settings) "
             "\\[default: all, without settings].")] = None,
) -> None:
    """List the registered datasets, models, losses and perturbations."""
    if what is not None and what not in REGISTRIES:
        raise RbgError(f"unknown registry {what!r}; valid: {', '.join(REGISTRIES)}")
    for name in REGISTRIES:
        if what is not None and name != what:
            continue
        table = Table(title=name, title_justify="left", show_header=False, box=None)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        entries = list(_registry(name))
        if name == "perturbations":
            from ..perturbations import suite_order

            order = {n: i for i, n in enumerate(suite_order())}
            entries.sort(key=lambda e: order[e.name])
        for entry in entries:
            table.add_row(entry.name, entry.description)
        console.print(table)
        if name == "losses" and what == "losses":
            for entry in entries:
                console.print()
                if dataclasses.fields(entry.factory.Options):
                    console.print(_options_table(entry.name, entry.factory.Options))
                else:
                    console.print(f"[bold]{entry.name}[/]: no options (see "
                                  f"docs/losses.md#{entry.name})", highlight=False)
            console.print()
            console.print("[bold]--parseval[/]: Parseval training with any loss "
                          "(rbg train --parseval --parseval-beta 0.01); see "
                          "docs/losses.md#parseval-training", highlight=False)
        if name == "perturbations" and what == "perturbations":
            for entry in entries:
                console.print()
                if dataclasses.fields(entry.factory.Settings):
                    console.print(_settings_table(entry.factory))
                else:
                    console.print(f"[bold]{entry.name}[/]: no settings (see "
                                  f"docs/perturbations.md#{entry.name})", highlight=False)
