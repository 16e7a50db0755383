"""The user documentation covers every registered loss and perturbation; `rbg list` shows
every option with its default and meaning."""

import dataclasses
import re
from pathlib import Path

import pytest

from robustbench_graph.losses import LOSSES
from robustbench_graph.perturbations import PERTURBATIONS
from robustbench_graph.settings import describe_fields

from conftest import cli

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _sections(name: str) -> set[str]:
    return set(re.findall(r"^## (\S+)\s*$", (DOCS / name).read_text(), re.MULTILINE))


@pytest.mark.parametrize(("doc", "registry"), [("losses.md", LOSSES),
                                                ("perturbations.md", PERTURBATIONS)])
def test_every_entry_has_a_section(doc, registry) -> None:
    assert set(registry.names()) <= _sections(doc)


def test_every_loss_option_has_a_meaning_and_rbg_list_shows_it() -> None:
    result = cli("list", "losses")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for entry in LOSSES:
        assert f"docs/losses.md#{entry.name}" in text
        for field in dataclasses.fields(entry.factory.Options):
            assert field.metadata.get("help"), (entry.name, field.name)
        for name, _type, default, _meaning in describe_fields(entry.factory.Options):
            assert re.search(rf"\b{re.escape(name)} +{re.escape(default)}\b", result.output), \
                (entry.name, name, default)


def test_user_facing_text_cites_the_docs_not_the_spec() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "docs/" in readme
    for cmd in (["list"], ["list", "losses"], ["list", "perturbations"], ["attack", "--help"],
                ["train", "--help"], ["report", "--help"]):
        assert "METHODS" not in cli(*cmd).output, cmd
