"""The user documentation covers every registered loss, perturbation and model with the code's
defaults; `rbg list` shows every option with its default and meaning; the docs' anchors that
the code and README cite exist; the README stays short and every link in it and in docs/
resolves; docs/cli.md has every command and option of the CLI."""

import dataclasses
import re
from pathlib import Path

import pytest

from robustbench_graph.losses import LOSSES
from robustbench_graph.models import MODELS
from robustbench_graph.perturbations import PERTURBATIONS
from robustbench_graph.settings import describe_fields, typed_text

from conftest import cli, load_script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _sections(name: str) -> dict[str, str]:
    """``{heading: body}`` of the ``## `` sections of a docs page."""
    parts = re.split(r"^## (.+?)\s*$", (DOCS / name).read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _without_code(text: str) -> str:
    """Markdown text without its fenced code blocks (a ``# comment`` there is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of every heading of a markdown file."""
    headings = re.findall(r"^#+ (.+?)\s*$", _without_code(path.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def _anchors(name: str) -> set[str]:
    """GitHub's anchors of every heading of a docs page."""
    return _heading_anchors(DOCS / name)


def _table_row(body: str, name: str, default: str) -> bool:
    """Whether ``body`` has a table row ``| `name` | default |`` (empty defaults: anything)."""
    shown = re.escape(default) if default else r"[^|]*"
    return re.search(rf"^\| `{re.escape(name)}` \| {shown} \|", body, re.MULTILINE) is not None


@pytest.mark.parametrize(("doc", "registry"), [("losses.md", LOSSES),
                                                ("perturbations.md", PERTURBATIONS),
                                                ("models.md", MODELS)])
def test_every_entry_has_a_section(doc, registry) -> None:
    assert set(registry.names()) <= set(_sections(doc))


def test_the_loss_docs_list_every_option_with_the_codes_default() -> None:
    sections = _sections("losses.md")
    for entry in LOSSES:
        for name, _type, default, _meaning in describe_fields(entry.factory.Options):
            assert _table_row(sections[entry.name], name, default), (entry.name, name, default)


def test_the_perturbation_docs_list_settings_metrics_and_default_strengths() -> None:
    sections = _sections("perturbations.md")
    for entry in PERTURBATIONS:
        cls, body = entry.factory, sections[entry.name]
        for name, _type, default, _meaning in describe_fields(cls.Settings):
            assert _table_row(body, name, default), (entry.name, name, default)
        for metric in cls.metrics:
            assert f"`{metric.name}`" in body, (entry.name, metric.name)
        # One editable line per family: the swept defaults per dataset family, as in the code.
        (line,) = [ln for ln in body.splitlines() if ln.startswith("**Default strengths:**")]
        defaults = {f.name: f.default for f in dataclasses.fields(cls.Settings)}
        for field in cls.sweep_fields():
            for family in ("colour", "grey"):
                value = typed_text(cls.presets.get(family, {}).get(field, defaults[field]))
                if value:
                    assert f"{field}={value}" in line, (entry.name, family, field, value)
        for value in cls.headline_setting.values():
            assert re.search(rf"headline {value:g}\b", line), (entry.name, value)


def test_every_docs_anchor_the_code_and_readme_cite_exists() -> None:
    sources = [ROOT / "README.md", *sorted((ROOT / "robustbench_graph").rglob("*.py"))]
    cited = {m for path in sources
             for m in re.findall(r"docs/([\w-]+\.md)#([\w-]+)", path.read_text())}
    assert cited
    for page, anchor in cited:
        assert anchor in _anchors(page), f"docs/{page}#{anchor}"


def test_every_loss_option_has_a_meaning_and_rbg_list_shows_it() -> None:
    result = cli("list", "losses")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "docs/losses.md#parseval-training" in text
    for entry in LOSSES:
        assert f"docs/losses.md#{entry.name}" in text
        for field in dataclasses.fields(entry.factory.Options):
            assert field.metadata.get("help"), (entry.name, field.name)
        for name, _type, default, _meaning in describe_fields(entry.factory.Options):
            assert re.search(rf"\b{re.escape(name)} +{re.escape(default)}\b", result.output), \
                (entry.name, name, default)


def test_rbg_list_perturbations_points_to_every_section() -> None:
    result = cli("list", "perturbations")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for entry in PERTURBATIONS:
        assert f"docs/perturbations.md#{entry.name}" in text, entry.name


def test_rbg_list_without_argument_stays_compact() -> None:
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "options (rbg train" not in result.output
    assert "settings (-p" not in result.output


def test_user_facing_text_cites_the_docs_not_the_spec() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/" in readme and "METHODS" not in readme
    for cmd in (["list"], ["list", "losses"], ["list", "perturbations"], ["attack", "--help"],
                ["train", "--help"], ["report", "--help"]):
        assert "METHODS" not in cli(*cmd).output, cmd
    for folder in ("losses", "graph", "models"):
        for path in (ROOT / "robustbench_graph" / folder).glob("*.py"):
            assert "METHODS" not in path.read_text(), path
    for name in ("models/parseval.py", "data/datasets.py", "config.py", "cli/cmd_list.py"):
        assert "METHODS" not in (ROOT / "robustbench_graph" / name).read_text(), name


MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_the_readme_is_short() -> None:
    """The README says what rbg is, how to start and where the docs are; the reference is in
    docs/ (issue 26)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 130, len(lines)
    text = "\n".join(lines)
    for needed in ("make demo", "make test", "rbg train", "rbg attack", "rbg report",
                   "docs/README.md", "load_run", "load_dataset"):
        assert needed in text, needed


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    """Every relative link of the README and the docs pages names an existing file, and an
    existing heading where it has an anchor."""
    links = re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text()))
    for link in links:
        if re.match(r"^[a-z]+:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link}"
        if anchor:
            assert path.suffix == ".md", f"{page.name}: {link}"
            assert anchor in _heading_anchors(path), f"{page.name}: {link}"


def test_the_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def test_the_readme_layout_names_every_package() -> None:
    """The layout block of the README lists exactly the packages of robustbench_graph/."""
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"^```\nrobustbench_graph/\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    listed = set(re.findall(r"^  (\w+)/", block, re.MULTILINE))
    package = ROOT / "robustbench_graph"
    packages = {p.parent.name for p in package.glob("*/__init__.py")}
    assert listed == packages
    assert (package / "experiment" / "shipped").is_dir() and "shipped/" in block


def _commands() -> dict:
    import typer.main

    from robustbench_graph.cli.app import app

    return typer.main.get_command(app).commands


def test_every_command_has_a_section_in_the_cli_docs() -> None:
    sections = _sections("cli.md")
    commands = _commands()
    assert len(commands) >= 8
    for name in commands:
        assert f"rbg {name}" in sections, name
        assert f"rbg-{name}" in _anchors("cli.md"), name


def test_every_option_of_every_command_is_in_the_cli_docs() -> None:
    """Each command's section of docs/cli.md names every option (and its --no- form) and
    every argument of the command as the Typer app defines them."""
    sections = _sections("cli.md")
    for name, command in _commands().items():
        body = sections[f"rbg {name}"]
        for param in command.params:
            if param.param_type_name == "argument":
                assert f"`{param.name.upper()}" in body, (name, param.name)
                continue
            for flag in [*param.opts, *param.secondary_opts]:
                assert f"`{flag}`" in body, (name, flag)


def test_the_cli_page_option_tables_are_current() -> None:
    """docs/cli.md's option tables are what scripts/cli_docs.py writes from the Typer app."""
    module = load_script("cli_docs")
    page = (ROOT / "docs" / "cli.md").read_text()
    assert page.count("<!-- options: ") == 9
    assert module.render(page) == page, "docs/cli.md is stale: run python scripts/cli_docs.py"


def test_every_shipped_claim_has_its_row_in_the_reproduction_page() -> None:
    """docs/reproduction.md (scripts/reproduction.py) has a row for every claim of every
    shipped experiment file, and is linked from the docs index."""
    module = load_script("reproduction")
    page = (ROOT / "docs" / "reproduction.md").read_text()
    assert module.missing_rows(page) == []
    assert module.missing_rows("# nothing\n")  # the check sees a page without rows
    assert "reproduction.md" in (ROOT / "docs" / "README.md").read_text()
