"""The Typer application: it registers every command module's command (``cmd_*.py``)."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer import Abort

try:  # newer typer vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException

from .. import __version__
from ..allocator import tune_malloc
from . import (
    cmd_attack,
    cmd_import,
    cmd_list,
    cmd_report,
    cmd_run,
    cmd_smoothness,
    cmd_train,
    cmd_trust,
)
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
app.command("import")(cmd_import.import_cmd)
app.command("trust")(cmd_trust.trust)
app.command("attack")(cmd_attack.attack)
app.command("report")(cmd_report.report)
app.command("smoothness")(cmd_smoothness.smoothness)
app.command("list")(cmd_list.list_cmd)
app.command("run")(cmd_run.run)
app.command("status")(cmd_run.status)


def _tolerant_streams() -> None:
    """Never crash on printing: characters the terminal's encoding lacks (``–`` under
    ``PYTHONIOENCODING=ascii``, a non-UTF-8 path) are escaped instead."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main() -> None:
    """The ``rbg`` entry point: usage errors become one ``error:`` line (exit 2), like every
    other failure, instead of a boxed panel."""
    _tolerant_streams()
    tune_malloc()
    try:
        code = app(standalone_mode=False)
    except ClickException as err:
        if type(err).__name__ != "NoArgsIsHelpError":  # that one has printed the help
            ctx = getattr(err, "ctx", None)
            where = ctx.command_path if ctx is not None else "rbg"
            err_console.print(f"[bold red]error:[/] {escape(err.format_message())} "
                              f"(see '{escape(where)} --help')", highlight=False,
                              soft_wrap=True)
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, Abort):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
