"""The layers of runbook_lib, read from the source: every import (module-level or inside a function) must point
down or sideways, never up, and the layers must not form a cycle. docs/architecture.md explains the layers.

    core  <-  remote  <-  simulator
                 ^            ^ (only to start a simulated host; see ALLOWED_EXCEPTIONS)
              runbook  <-  fleet  <-  scope  <-  cli, demo, fidelity

Also: no module over MAX_LINES, so no module grows back into a dozen concerns.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runbook_lib"
MAX_LINES = 500

# Each layer and the layers it may import (besides itself). The order is the direction: lower layers first.
LAYERS = {
    "core": set(),
    "remote": {"core"},
    "simulator": {"core", "remote"},
    "runbook": {"core", "remote"},
    "fleet": {"core", "remote", "runbook"},
    "scope": {"core", "remote", "runbook", "fleet"},
    "top": {"core", "remote", "simulator", "runbook", "fleet", "scope"},
}
# Modules directly under runbook_lib/ and the layer each belongs to. The package root only carries __version__.
TOP_LEVEL = {"runbook_lib": "root", "runbook_lib.notebook": "runbook", "runbook_lib.cli": "top",
             "runbook_lib.demo": "top", "runbook_lib.fidelity": "top"}
# Imports against the rule above, each with the reason it is allowed. Nothing else may point across.
ALLOWED_EXCEPTIONS = {
    ("runbook_lib.runbook.session", "runbook_lib.simulator.fleet"):
        "an empty target parameter means 'a built-in simulated host': the session starts one in the kernel",
    ("runbook_lib.runbook.session", "runbook_lib.simulator.profile"):
        "the simulator_profile parameter names a built-in profile; the session checks and loads it",
    ("runbook_lib.runbook.parameters", "runbook_lib.simulator.profile"):
        "validating simulator_profile needs the names of the built-in profiles",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    part = module.split(".")[1]
    if part not in LAYERS:
        raise AssertionError(f"{module} is in no layer: put it in a layer package or name it in TOP_LEVEL")
    return part


def imports_of(path: Path) -> set[str]:
    """Every runbook_lib module ``path`` imports, anywhere in it, resolved to absolute names."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "runbook_lib")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "runbook_lib":
                continue
            # "from runbook_lib.core import facts" imports runbook_lib.core.facts.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                exists = any((PACKAGE.parent / Path(*candidate.split("."))).with_suffix(s).exists() or
                             (PACKAGE.parent / Path(*candidate.split("."))).is_dir() for s in (".py",))
                found.add(candidate if exists else target)
    return found


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    return {module: imports_of(path) for module, path in all_modules().items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if here == "root" or there in ("root", here) or there in LAYERS.get(here, set()):
                continue
            if (module, target) in ALLOWED_EXCEPTIONS:
                continue
            wrong.append(f"{module} ({here}) imports {target} ({there})")
    return wrong


def layer_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles in the graph of layers (an edge for every import between two different layers)."""
    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            here, there = layer_of(module), layer_of(target)
            if here != there and "root" not in (here, there):
                edges.setdefault(here, set()).add(there)
    cycles, state = [], {}

    def visit(layer: str, trail: list[str]) -> None:
        state[layer] = "open"
        for nxt in sorted(edges.get(layer, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[layer] = "done"

    for layer in sorted(edges):
        if layer not in state:
            visit(layer, [layer])
    return cycles


def test_every_import_points_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_layers_form_no_cycle():
    assert layer_cycles(import_graph()) == []


def test_every_allowed_exception_is_still_needed():
    graph = import_graph()
    unused = [edge for edge in ALLOWED_EXCEPTIONS if edge[1] not in graph.get(edge[0], set())]
    assert unused == [], "remove exceptions no import needs any more"


def test_cell_functions_and_widgets_do_not_import_each_other():
    """Both call the one orchestration of a host's steps; neither is built on the other."""
    graph = import_graph()
    widgets = "runbook_lib.runbook.widgets"
    assert "runbook_lib.notebook" not in graph[widgets]
    assert [m for m, targets in graph.items() if widgets in targets and m != "runbook_lib.notebook"] == []


@pytest.mark.parametrize("module", sorted(all_modules()))
def test_no_module_is_over_the_line_limit(module):
    lines = all_modules()[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it along its concerns"


def test_the_checker_sees_an_upward_import_and_a_cycle():
    """The checks above can fail: a core module importing the fleet is both an upward import and a cycle."""
    graph = import_graph()
    before_upward, before_cycles = upward_imports(graph), layer_cycles(graph)
    graph["runbook_lib.core.facts"] = graph["runbook_lib.core.facts"] | {"runbook_lib.fleet.evidence"}
    assert sorted(set(upward_imports(graph)) - set(before_upward)) == [
        "runbook_lib.core.facts (core) imports runbook_lib.fleet.evidence (fleet)"]
    assert len(layer_cycles(graph)) > len(before_cycles)
    assert any(cycle[0] == cycle[-1] and "core" in cycle and "fleet" in cycle for cycle in layer_cycles(graph))


def test_the_reader_resolves_relative_and_function_level_imports():
    source = PACKAGE / "runbook" / "operations.py"
    found = imports_of(source)
    assert "runbook_lib.core.engine" in found  # imported inside a function, relatively
    assert "runbook_lib.core.facts" in found  # "from ..core import facts as facts_module"
