"""The Typer application: it registers every command module's command (``cmd_*.py``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from ..allocator import tune_malloc
from . import cmd_attack, cmd_list, cmd_report, cmd_smoothness, cmd_train
from .console import console, err_console

app = typer.Typer(
    name="rbg",
    help="Train image classifiers with robustness-oriented losses and measure their robustness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"rbg {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    # No docstring: the app's help= stays the text of `rbg --help`.
    pass


app.command("train")(cmd_train.train)
app.command("attack")(cmd_attack.attack)
app.command("report")(cmd_report.report)
app.command("smoothness")(cmd_smoothness.smoothness)
app.command("list")(cmd_list.list_cmd)


def main() -> None:
    tune_malloc()
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
