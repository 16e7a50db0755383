"""Write the option tables of docs/cli.md from the Typer app, the source of ``--help``.

Each block between ``<!-- options: CMD ... -->`` and ``<!-- /options -->`` in docs/cli.md is
replaced by the argument and option tables of ``rbg CMD``: the help text, and the default from
the option's ``[default: ...]`` note or its value. ``--check`` writes nothing and exits 1 when
the page is not what this script would write (tests/test_docs.py runs it).

Usage: ``python scripts/cli_docs.py [--check]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import click
import typer.main

from robustbench_graph.cli.app import app

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
BLOCK = re.compile(r"(<!-- options: (\w+)[^>]*-->\n)(.*?)(<!-- /options -->)", re.S)


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: pipes escaped, angle brackets not read as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _help(text: str | None) -> tuple[str, str | None]:
    """The help text without its ``[default: ...]`` note, and that note's default."""
    text = (text or "").replace("\\[", "[")
    match = re.search(r"\s*\[default: (.*?)\]\.?$", text, re.S)
    default = None
    if match:
        default = _cell(match.group(1))
        text = text[: match.start()].rstrip()
        if not text.endswith("."):
            text += "."
    return _cell(" ".join(text.split())), default


def _value(param: click.Parameter) -> str:
    if isinstance(param.default, bool) and getattr(param, "secondary_opts", None):
        return (param.opts[0] if param.default else param.secondary_opts[0]).lstrip("-")
    if isinstance(param.default, bool):
        return "on" if param.default else "off"
    if param.default is None or param.default == ():
        return ""
    return _cell(str(param.default))


def tables(command: click.Command) -> str:
    """The Markdown tables of a command's arguments and options."""
    lines: list[str] = []
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if arguments:
        lines += ["| argument | meaning |", "|---|---|"]
        for param in arguments:
            text, default = _help(getattr(param, "help", None))
            shown = param.name.upper() + ("..." if param.nargs == -1 else "")
            required = " Required." if param.required else ""
            noted = f" Default: {default}." if default else ""
            lines.append(f"| `{shown}` | {text}{required}{noted} |")
        lines.append("")
    lines += ["| option | default | meaning |", "|---|---|---|"]
    for param in command.params:
        if param.param_type_name != "option":
            continue
        text, default = _help(param.help)
        names = " / ".join(f"`{o}`" for o in param.opts + param.secondary_opts)
        if getattr(param, "metavar", None):
            names += f" `{param.metavar}`"
        lines.append(f"| {names} | {default if default is not None else _value(param)} "
                     f"| {text} |")
    lines.append("| `--help` | | Show the command's help and exit. |")
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    group = typer.main.get_command(app)
    return BLOCK.sub(lambda m: m.group(1) + tables(group.commands[m.group(2)]) + m.group(4),
                     page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale")
    args = parser.parse_args(argv)
    page = PAGE.read_text()
    new = render(page)
    if args.check:
        if new != page:
            print("docs/cli.md is stale: run python scripts/cli_docs.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
