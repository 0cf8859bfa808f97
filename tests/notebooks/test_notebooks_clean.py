"""The committed notebooks: clean, thin, parameterised the same way, and host changes only in cells tagged apply."""

import ast

import nbformat
import pytest

from runbook_lib import notebook as nb

from notebook_runs import NAMES, NOTEBOOKS

PATHS = [NOTEBOOKS / f"{name}.ipynb" for name in NAMES.values()]
HOST_CHANGING_CALLS = {"apply_fix", "reboot_if_needed"}


def code_cells(path):
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def tags(cell):
    return set(cell.metadata.get("tags", []))


def calls(cell):
    return {node.func.attr for node in ast.walk(ast.parse(cell.source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_execution_counts_or_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in code_cells(path):
        assert cell.execution_count is None, cell.source
        assert cell.outputs == [], f"{path.name}: outputs in {cell.source[:60]!r}"
    assert "widgets" not in notebook.metadata and "papermill" not in notebook.metadata


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_followed_by_the_validation_cell(path):
    cells = code_cells(path)
    tagged = [index for index, cell in enumerate(cells) if "parameters" in tags(cell)]
    assert len(tagged) == 1
    following = cells[tagged[0] + 1].source
    assert "nb.parameters_from(globals())" in following


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_parameters_cell_declares_the_common_parameters_with_the_documented_defaults(path):
    cell = next(c for c in code_cells(path) if "parameters" in tags(c))
    namespace: dict = {}
    exec(cell.source, namespace)  # noqa: S102 - our own parameters cell: plain assignments
    declared = {name: value for name, value in namespace.items() if not name.startswith("__")}
    defaults = nb.Parameters()
    common = ["target", "inventory", "profile", "apply", "reboot", "endpoints", "evidence_dir", "simulator_profile"]
    assert [name for name in declared if name in common] == common
    for name in common:
        expected = ",".join(defaults.endpoints) if name == "endpoints" else getattr(defaults, name)
        assert declared[name] == expected, name
    assert set(declared) - set(common) <= {"error_text", "session_fix_mode", "wait_for_reboot"}
    assert declared.get("wait_for_reboot", defaults.wait_for_reboot) is defaults.wait_for_reboot is True
    assert ("wait_for_reboot" in declared) == (path.stem == "03_registry_remediation")
    assert ("error_text" in declared) == (path.stem == "01_cause")
    assert ("session_fix_mode" in declared) == (path.stem == "04_powershell_session_fix")
    assert not [n for n in declared if any(w in n.lower() for w in ("password", "secret", "token", "credential"))]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_apply_tag_marks_exactly_the_cells_that_change_the_host(path):
    for cell in code_cells(path):
        changes_host = bool(calls(cell) & HOST_CHANGING_CALLS)
        assert changes_host == ("apply" in tags(cell)), cell.source


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_cell_after_validation_is_one_call_into_the_notebook_module(path):
    cells = code_cells(path)
    start = next(i for i, cell in enumerate(cells) if "parameters" in tags(cell)) + 2
    for cell in cells[start:]:
        body = ast.parse(cell.source).body
        assert len(body) == 1, cell.source
        statement = body[0].value if isinstance(body[0], (ast.Expr, ast.Assign)) else None
        assert isinstance(statement, ast.Call), cell.source
        names = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
        assert "nb" in names, cell.source
