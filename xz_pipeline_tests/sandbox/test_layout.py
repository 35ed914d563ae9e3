"""The sandbox's layout: one package per wing, and no import circle anywhere inside it."""

from __future__ import annotations

import grimp


def _cycles(graph, modules: set[str]) -> list[list[str]]:
    """Every import circle among `modules` (depth-first search; each circle reported once by its nodes)."""
    found: dict[frozenset[str], list[str]] = {}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if state.get(target) == 1:
                circle = stack[stack.index(target) :]
                found.setdefault(frozenset(circle), circle)
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)
    return list(found.values())


def test_the_sandbox_has_no_import_circle():
    # Imports under `if TYPE_CHECKING:` name a type for the reader and run nowhere: they make no circle.
    graph = grimp.build_graph("xz_pipeline", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m.startswith("xz_pipeline.sandbox.")}
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_sees_a_circle():
    graph = grimp.ImportGraph()
    for name in ("p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert [sorted(c) for c in _cycles(graph, {"p.a", "p.b", "p.c"})] == [["p.a", "p.b", "p.c"]]


def test_each_wing_is_a_package_and_no_file_carries_a_wing_prefix():
    graph = grimp.build_graph("xz_pipeline")
    for wing in ("world", "xero", "zoho"):
        assert f"xz_pipeline.sandbox.{wing}.emulator" in graph.modules or wing == "world"
    flat = {m.rsplit(".", 1)[1] for m in graph.find_children("xz_pipeline.sandbox")}
    assert not {m for m in flat if m.startswith(("xero_", "zoho_", "world_"))}
