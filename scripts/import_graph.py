"""The package's import drawing, measured: circles, imports that dodge them, and the layers.

Reads every module of ``robustbench_graph`` with :mod:`ast` (nothing is imported) and prints

- the import circles among modules (strongly connected components of the module-level import
  graph, ``TYPE_CHECKING`` blocks left out since they never run);
- the function-level (and ``TYPE_CHECKING``) imports of the package's own modules that would
  close a circle if they ran at module level (a deferred import kept only to dodge a circle);
- imports that go up the layers declared in ``LAYERS`` (a lower layer never imports a higher
  one; a module imports only from its own layer or below);
- the modules with their line counts, largest first (``--sizes``).

Exit status 1 when any circle, dodging import or upward import is found, so ``make lint`` and CI
enforce it.  Usage: ``python scripts/import_graph.py [--sizes] [--graph]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "robustbench_graph"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Layers, lowest first: a module may import from its own layer and the layers below it only.
# A module is placed by the longest prefix listed here.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["errors", "reading", "registry", "lazy", "device", "allocator", "settings", "config",
              "claims"]),
    ("data", ["data"]),
    ("graph", ["graph"]),
    ("models", ["models", "inference"]),
    ("rundir", ["rundir"]),
    ("losses", ["losses"]),
    ("training", ["train"]),
    ("evaluation", ["perturbations", "attack", "diagnostics"]),
    ("report", ["report"]),
    ("experiment", ["experiment"]),
    ("cli", ["cli", "__main__"]),
    ("api", ["__init__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of the module's layer; -1 for a module no layer names."""
    best, best_len = -1, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute package-internal module names an ``from ... import`` reaches."""
    if node.level:
        base = module.split(".") if module else []
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        if not node.module or not (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
            return []
        target = node.module[len(PACKAGE) + 1 :] if node.module != PACKAGE else ""
    names = [target + "." + alias.name if target else alias.name for alias in node.names]
    return [target] + names


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.top: set[str] = set()
        self.lazy: set[str] = set()
        self.depth = 0

    def _add(self, targets: list[str]) -> None:
        # The module's own packages are already being imported when it runs: no edge to them.
        parts = self.module.split(".")
        ancestors = {".".join(parts[:i]) for i in range(len(parts))}
        if self.is_package:
            ancestors.add(self.module)
        targets = [t for t in targets if t not in ancestors]
        (self.lazy if self.depth else self.top).update(targets)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):  # never runs: deferred like a function-level import
            self.depth += 1
            for child in node.body:
                self.visit(child)
            self.depth -= 1
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self._add(
            [alias.name[len(PACKAGE) + 1 :] for alias in node.names
             if alias.name.startswith(PACKAGE + ".")]
        )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._add(_resolve(self.module, self.is_package, node))


def read_graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, int]]:
    """(module-level edges, function-level edges, line counts) over the package's modules."""
    files = {module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "__pycache__" not in p.parts}
    modules = set(files)
    top: dict[str, set[str]] = {}
    lazy: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for name, path in files.items():
        source = path.read_text()
        sizes[name] = len(source.splitlines())
        collector = _Collector(name, path.name == "__init__.py")
        collector.visit(ast.parse(source))
        top[name] = {t for t in collector.top if t in modules and t != name}
        lazy[name] = {t for t in collector.lazy if t in modules and t != name} - top[name]
    return top, lazy, sizes


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true", help="list modules by line count")
    parser.add_argument("--graph", action="store_true", help="print every module's imports")
    args = parser.parse_args(argv)
    top, lazy, sizes = read_graph()
    graph = top
    problems = 0

    found = circles(graph)
    print(f"modules: {len(top)}, lines: {sum(sizes.values())}")
    print(f"import circles: {len(found)}")
    for component in found:
        print("  circle: " + " <-> ".join(component))
    problems += len(found)

    dodges = []
    for name in sorted(lazy):
        for target in sorted(lazy[name]):
            if name in _reachable(graph, target):
                dodges.append((name, target))
    print(f"function-level imports that dodge a circle: {len(dodges)}")
    for name, target in dodges:
        print(f"  {name} -> {target} (and {target} reaches {name})")
    problems += len(dodges)

    unplaced = sorted(name for name in top if layer_of(name) < 0)
    print(f"modules in no layer: {len(unplaced)}")
    for name in unplaced:
        print(f"  {name}")
    problems += len(unplaced)

    upward = [
        (name, target)
        for name in sorted(top)
        for target in sorted(top[name] | lazy[name])
        if 0 <= layer_of(name) < layer_of(target)
    ]
    print(f"imports up the layers: {len(upward)}")
    for name, target in upward:
        print(f"  {name} [{LAYERS[layer_of(name)][0]}] -> {target} [{LAYERS[layer_of(target)][0]}]")
    problems += len(upward)

    if args.sizes:
        print("modules by lines:")
        for name, count in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {count:5d}  {name}")
    if args.graph:
        for name in sorted(top):
            print(f"{name}: {', '.join(sorted(top[name]))}"
                  + (f" | lazy: {', '.join(sorted(lazy[name]))}" if lazy[name] else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
