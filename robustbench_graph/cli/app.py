"""The Typer application and the error boundary shared by every command module."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from .. import __version__
from ..allocator import tune_malloc
from ..errors import RbgError

app = typer.Typer(
    name="rbg",
    help="Train image classifiers with robustness-oriented losses and measure their robustness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


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


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def guarded(func: F) -> F:
    """Turn project errors into one line on stderr and exit 1; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
        try:
            return func(*args, **kwargs)
        except RbgError as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            raise fail("interrupted; finished work is kept, run the command again to resume",
                       130) from None
        except PermissionError as err:
            raise fail(f"permission denied: {err.filename or err}") from None
        except OSError as err:
            if err.errno == 28:
                raise fail("no space left on device; finished work is kept") from None
            raise fail(f"{err.strerror or err}: {err.filename or ''}".rstrip(": ")) from None

    return wrapper  # type: ignore[return-value]


def main() -> None:
    from . import commands  # noqa: F401  (registers the commands)

    tune_malloc()
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
