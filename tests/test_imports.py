"""The package's import graph: no cycle, and the top floors (runner, cluster, chapter) are imported
only by the modules that drive a book run. Every import counts, at module level or inside a function."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
TOP = {"unlearnkit.runner", "unlearnkit.cluster", "unlearnkit.chapter", "unlearnkit.__main__"}
"""Modules that drive a book run; nothing below them imports them."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, relative imports resolved; ``from .x import
    name`` counts as importing ``x`` (or the package ``x`` where ``name`` is a module of it)."""
    files = {_module_name(p): p for p in SRC.joinpath("unlearnkit").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _package_graph(graph):
    """The graph between a module's parent packages' members folded: ``unlearnkit.data.splits`` →
    ``unlearnkit.data``; imports inside one package are left out."""
    fold = lambda m: ".".join(m.split(".")[:2])
    folded: dict[str, set[str]] = {}
    for v, targets in graph.items():
        folded.setdefault(fold(v), set()).update(fold(t) for t in targets if fold(t) != fold(v))
    for targets in list(folded.values()):
        for t in targets:
            folded.setdefault(t, set())
    return folded


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "unlearnkit.data.splits" in graph and graph["unlearnkit.experiments.tasks"]
    assert _cycles(graph) == []
    assert _cycles(_package_graph(graph)) == [], "a cycle between the package's rooms (e.g. data <-> dryrun)"


def test_nothing_below_the_top_floor_imports_it():
    graph = import_graph()
    users = {t: sorted(v for v, targets in graph.items() if t in targets and v not in TOP) for t in TOP}
    assert users == {t: [] for t in TOP}


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
