"""The import drawing is enforced: no circles, no deferred import that dodges one, no import up
the layers (``scripts/import_graph.py``), and the checker itself sees what it must."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("import_graph", None)


def test_the_package_has_no_circle_dodge_or_upward_import(import_graph, capsys):
    code = import_graph.main([])
    out = capsys.readouterr().out
    assert "import circles: 0" in out, out
    assert "function-level imports that dodge a circle: 0" in out, out
    assert "modules in no layer: 0" in out, out
    assert "imports up the layers: 0" in out, out
    assert code == 0, out


def test_every_module_is_in_a_layer_that_exists(import_graph):
    top, _lazy, _sizes = import_graph.read_graph()
    for name in top:
        assert 0 <= import_graph.layer_of(name) < len(import_graph.LAYERS), name


def test_the_checker_finds_a_circle_and_a_dodge(import_graph, tmp_path):
    """The detection on a hand-made graph: a circle a <-> b, and c whose deferred import of a
    would close the circle a -> c -> a."""
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": set(), "d": {"a"}}
    assert import_graph.circles(graph) == [["a", "b"]]
    assert "c" in import_graph._reachable(graph, "a")
    assert import_graph.circles({"a": {"b"}, "b": set()}) == []


def test_the_collector_tells_module_level_from_deferred_imports(import_graph):
    import ast

    source = (
        "from typing import TYPE_CHECKING\n"
        "from .errors import RbgError\n"
        "if TYPE_CHECKING:\n"
        "    from .report.build import Report\n"
        "def f():\n"
        "    from ..data import load_dataset\n"
    )
    collector = import_graph._Collector("rundir.folder", False)
    collector.visit(ast.parse(source))
    assert "rundir.errors" in collector.top
    assert "rundir.report.build" in collector.lazy
    assert "data" in collector.lazy and "data.load_dataset" in collector.lazy


def test_the_largest_module_is_under_300_lines(import_graph):
    _top, _lazy, sizes = import_graph.read_graph()
    name, lines = max(sizes.items(), key=lambda kv: kv[1])
    assert lines < 300, f"{name} has {lines} lines"
