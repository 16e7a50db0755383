"""`rbg --help` and `rbg --version` start without the heavy libraries (torch, pandas,
matplotlib, foolbox): the commands import the core only when they run."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "matplotlib", "foolbox")
COMMANDS = ("train", "attack", "report", "smoothness", "list", "run", "status")


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


# `rbg list`, `rbg status`, `rbg run --dry-run` and `rbg report` compute nothing with torch
# (issue #32). What they load is measured in a subprocess: whether torch was imported, and
# which loaded modules of the package import it at their top.
RECORD = """
import ast, atexit, sys
def record():
    top = []
    for name, mod in sorted(sys.modules.items()):
        path = getattr(mod, '__file__', None)
        if not name.startswith('robustbench_graph') or not path:
            continue
        for node in ast.parse(open(path).read()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ''] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            if any(n == 'torch' or n.startswith(('torch.', 'safetensors.torch')) for n in names):
                top.append(name)
                break
    print('LOADED', 'torch' in sys.modules, *top, file=sys.stderr)
atexit.register(record)
from robustbench_graph.cli import main
sys.argv[0] = 'rbg'
main()
"""
def _loaded(*args: str) -> tuple[bool, list[str]]:
    result = subprocess.run([sys.executable, "-c", RECORD, *args], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("LOADED ")]
    _, torch_loaded, *top = line.split()
    return torch_loaded == "True", top


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from test_report import CE_CLEAN, CE_DEEPFOOL, CE_GAUSS, make_run, rows_for

    root = tmp_path_factory.mktemp("startup")
    for seed in (0, 1):
        rows = rows_for(CE_GAUSS[seed], CE_CLEAN[seed], CE_DEEPFOOL[seed])
        make_run(root / "runs", "ce", seed, rows)
        make_run(root / "runs", "laplacian", seed, rows)
    (root / "grid.toml").write_text('name = "grid"\n[train]\ndatasets = ["digits"]\n'
                                    'losses = ["ce", "laplacian"]\nseeds = "0-1"\n'
                                    'epochs = 1\n[attack]\nsuite = "clean"\n')
    return root


def test_list_datasets_and_report_help_import_no_torch() -> None:
    for args in (("list", "datasets"), ("report", "--help")):
        assert _loaded(*args) == (False, []), args


# about 2-4 s each on 2 busy cores (before issue #32 each loaded torch: about 20 s each)
@pytest.mark.parametrize("command", ("list", "status", "dry-run", "report"))
def test_the_commands_that_compute_nothing_import_no_torch(command: str, study) -> None:  # noqa: ANN001
    grid, out = str(study / "grid.toml"), str(study / "out")
    args = {"list": ["list"], "status": ["status", grid, "--out", out],
            "dry-run": ["run", grid, "--out", out, "--dry-run", "--no-report"],
            "report": ["report", "--runs", str(study / "runs"), "--out", str(study / "page"),
                       "--no-plots"]}[command]
    torch_loaded, top = _loaded(*args)
    # the perturbations' and losses' declarations, the model registry's names, the datasets,
    # the run folders' files and the report import no torch, and no module that imports it
    # at its top is loaded
    assert top == []
    assert torch_loaded is False


def _dry_run(study, family: str, settings: str) -> tuple[list[str], int]:  # noqa: ANN001
    """``rbg run --dry-run`` of the study's grid with ``family`` added to its suite: the
    output's lines and the index of the estimate's first line."""
    from conftest import cli

    grid = study / "grid.toml"
    (grid.parent / f"{family}.toml").write_text(grid.read_text().replace(
        'suite = "clean"', f'suite = "clean,{family}"\n[attack.settings]\n{settings}'))
    result = cli("run", grid.parent / f"{family}.toml", "--out", study / "out", "--dry-run",
                 "--no-report")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    return lines, next(i for i, ln in enumerate(lines) if "passes per run" in ln)


def test_the_dry_run_counts_the_passes_without_a_probe_and_probes_on_request(study) -> None:  # noqa: ANN001
    from conftest import cli

    lines, head = _dry_run(study, "pgd", "pgd = { eps = [0.1], steps = 3 }")
    assert lines[head].startswith("digits-smallcnn: passes per run per 1,000 test images")
    assert "time not probed" in lines[head]
    assert lines[head + 1].strip().startswith("clean 1.0k fwd, pgd ≤")
    assert "for the 4 run(s)" in lines[head + 2] and " s " not in lines[head + 2]
    probed = cli("run", study / "pgd.toml", "--out", study / "out", "--dry-run", "--no-report",
                 "--probe", "--device", "cpu")
    assert probed.exit_code == 0, probed.output
    assert "a probe of an untrained smallcnn on cpu" in probed.output
    assert "time not probed" not in probed.output


def test_the_dry_run_shows_an_early_stopping_attack_typical_run_and_its_bound(study) -> None:  # noqa: ANN001
    lines, head = _dry_run(study, "deepfool", "deepfool = { samples = 100, steps = 50 }")
    assert "a typical run, then the most" in lines[head]
    # 100 images: typically 8 steps of 1 forward + 9 backwards (+ 3 forwards), at most 50
    assert lines[head + 1].strip() == ("clean 1.0k fwd, deepfool 1.1k fwd + 7.2k bwd "
                                       "(at most 5.2k fwd + 45.0k bwd)")
    assert lines[head + 2].endswith("(at most 6.2k fwd + 45.0k bwd per run)")
