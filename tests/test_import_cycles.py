"""No import cycle between the modules of ``edge_runtime`` or of ``converters``.

A cycle means neither module can be understood, tested or moved without the other (``model`` ↔
``model_lists`` was one: each imported the other to pick a class). Every import counts, also
those inside functions and under ``TYPE_CHECKING``: a lazy import hides a cycle from Python, not
from a reader. grimp (installed with import-linter) builds the graph from the source.
"""

from __future__ import annotations

import grimp
import pytest


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each
    sorted: every module in one reaches every other through imports."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _described(graph: grimp.ImportGraph, component: list[str]) -> str:
    lines = []
    for a in component:
        for b in component:
            if b in graph.find_modules_directly_imported_by(a):
                at = [d["line_number"] for d in graph.get_import_details(importer=a, imported=b)]
                lines.append(f"  {a} -> {b} (line {', '.join(map(str, at))})")
    return "\n".join(lines)


def _graph(edges: list[tuple[str, str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in edges:
        graph.add_import(importer=importer, imported=imported)
    return graph


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    graph = _graph([("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"),  # a 3-cycle
                    ("p.c", "p.d"), ("p.d", "p.e"),                  # a chain out of it
                    ("p.e", "p.f"), ("p.f", "p.e"),                  # a 2-cycle
                    ("p.g", "p.a")])                                 # into the 3-cycle
    assert cycles(graph) == [["p.a", "p.b", "p.c"], ["p.e", "p.f"]]
    assert cycles(_graph([("p.a", "p.b"), ("p.b", "p.c"), ("p.a", "p.c")])) == []


@pytest.mark.parametrize("package", ["edge_runtime", "converters"])
def test_no_import_cycle_between_modules(package):
    graph = grimp.build_graph(package)
    assert len(graph.modules) > 10  # the package's own modules, not an empty graph
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_described(graph, c) for c in found)
