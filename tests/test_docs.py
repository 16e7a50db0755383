"""The user documentation covers every registered loss, perturbation and model with the code's
defaults; `rbg list` shows every option with its default and meaning; the docs' anchors that
the code and README cite exist."""

import dataclasses
import re
from pathlib import Path

import pytest

from robustbench_graph.losses import LOSSES
from robustbench_graph.models import MODELS
from robustbench_graph.perturbations import PERTURBATIONS
from robustbench_graph.settings import describe_fields, typed_text

from conftest import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _sections(name: str) -> dict[str, str]:
    """``{heading: body}`` of the ``## `` sections of a docs page."""
    parts = re.split(r"^## (.+?)\s*$", (DOCS / name).read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _anchors(name: str) -> set[str]:
    """GitHub's anchors of every heading of a docs page."""
    headings = re.findall(r"^#+ (.+?)\s*$", (DOCS / name).read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


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
             for m in re.findall(r"docs/(\w+\.md)#([\w-]+)", path.read_text())}
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
    for name in ("parseval.py", "data.py", "config.py", "cli/cmd_list.py"):
        assert "METHODS" not in (ROOT / "robustbench_graph" / name).read_text(), name
