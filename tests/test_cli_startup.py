"""`rbg --help` and `rbg --version` start without the heavy libraries (torch, pandas,
matplotlib, foolbox): the commands import the core only when they run."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "matplotlib", "foolbox")
COMMANDS = ("train", "attack", "report", "smoothness", "list")


def _rbg(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from robustbench_graph.cli import main; sys.argv[0] = 'rbg'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


def test_the_cli_imports_no_heavy_library() -> None:
    # Build the click app with every command registered and render every help text in the
    # same process: typer evaluates the commands' annotations there.
    code = ("import sys, typer.main, robustbench_graph\n"
            "from typer.testing import CliRunner\n"
            "from robustbench_graph.cli import app\n"
            "typer.main.get_command(app)\n"
            f"for args in [['--help'], ['--version'], *[[c, '--help'] for c in {COMMANDS!r}]]:\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
            f"print(*[m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_version() -> None:
    from robustbench_graph import __version__

    result = _rbg("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"rbg {__version__}"


@pytest.mark.parametrize("command", ("", *COMMANDS))
def test_every_command_has_help(command: str) -> None:
    result = _rbg(*filter(None, [command]), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_no_arguments_show_the_help() -> None:
    result = _rbg()
    assert "Usage" in result.stdout + result.stderr
    assert all(c in result.stdout + result.stderr for c in COMMANDS)


def test_public_api_still_resolves() -> None:
    import robustbench_graph

    assert callable(robustbench_graph.load_run) and callable(robustbench_graph.load_dataset)
    with pytest.raises(AttributeError):
        robustbench_graph.no_such_name  # noqa: B018


def test_help_shows_the_dataset_dependent_defaults() -> None:
    """Brackets in help texts are escaped, so rich does not take them for markup."""
    text = " ".join(_rbg("train", "--help").stdout.split())
    assert "[default: per dataset: 0.05 for" in text.replace("│ ", "").replace(" │", "")
