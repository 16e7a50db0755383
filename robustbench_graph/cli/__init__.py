"""Command-line interface: the only place that imports typer and rich.

Each command lives in its own module under ``robustbench_graph/cli/`` and registers itself
on :data:`app`; commands only parse options, call the core and render.
"""

from .app import app, main

__all__ = ["app", "main"]
