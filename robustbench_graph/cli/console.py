"""The consoles and the error boundary every command shares: project errors become one line
on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import signal
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import RbgError

if TYPE_CHECKING:
    import torch

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def show_note(text: str) -> None:
    """``note: text`` on stderr, one line, never markup."""
    err_console.print(f"note: {text}", highlight=False, markup=False, soft_wrap=True)


def busy_machine_note(device: torch.device) -> None:
    """In a terminal, say when other work keeps the CPUs busy (:func:`~..device.busy_cpu_note`);
    logs and pipes, where nobody can act on it at once, stay as they are."""
    from ..device import busy_cpu_note

    if err_console.is_terminal and (text := busy_cpu_note(device)):
        show_note(text)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback
            raise fail("interrupted; finished work is kept, run the command again to resume",
                       130) from None
        except PermissionError as err:
            raise fail(f"permission denied: {err.filename or err}") from None
        except OSError as err:
            if err.errno == 28:
                raise fail("no space left on device; finished work is kept") from None
            raise fail(f"{err.strerror or err}: {err.filename or ''}".rstrip(": ")) from None

    return wrapper  # type: ignore[return-value]
