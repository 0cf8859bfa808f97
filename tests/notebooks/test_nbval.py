"""nbval over the runbook notebooks: every cell runs, and the # NBVAL_CHECK_OUTPUT cells print what they should.

The committed notebooks have no outputs and no execution counts, and nbval compares only cells that have both.
So the check cells' reference outputs live in ``nbval_reference.json`` and go into a copy of the notebooks, which
is also where the kernel's default evidence folder ends up (nbval runs kernels in the notebooks' folder).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from notebook_runs import NOTEBOOKS

HERE = Path(__file__).parent
MARKER = "# NBVAL_CHECK_OUTPUT"


def reference() -> dict:
    return {key: value for key, value in json.loads((HERE / "nbval_reference.json").read_text()).items()
            if not key.startswith("_")}


def with_reference_outputs(source: Path, target: Path) -> int:
    notebook = nbformat.read(source, as_version=4)
    expected, checked = reference(), 0
    for cell in notebook.cells:
        if cell.cell_type == "code" and MARKER in cell.source:
            cell.outputs = [new_output("stream", name="stdout", text=expected[cell.id])]
            cell.execution_count = 1
            checked += 1
    nbformat.write(notebook, target)
    return checked


def run_nbval(folder: Path) -> subprocess.CompletedProcess:
    """As a user runs nbval on the notebooks, with a configuration of its own: the project's (two xdist workers)
    would spread one notebook's cells over two kernels."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(folder / "pytest.ini"), "--nbval-lax", "--nbval-sanitize-with",
         str(HERE / "sanitize.cfg"), "--nbval-current-env", "-p", "no:cacheprovider", "-q", str(folder)],
        cwd=folder, capture_output=True, text=True, timeout=600, env={**os.environ, "TLS_RUNBOOK_INTERACTIVE": "0"})


def test_every_check_output_cell_has_a_reference():
    marked = {cell.id for path in NOTEBOOKS.glob("*.ipynb") for cell in nbformat.read(path, as_version=4).cells
              if cell.cell_type == "code" and MARKER in cell.source}
    assert marked and marked == set(reference())


def test_nbval_lax_passes_on_every_notebook(tmp_path):
    copy = tmp_path / "notebooks"
    copy.mkdir()
    checked = sum(with_reference_outputs(path, copy / path.name) for path in sorted(NOTEBOOKS.glob("*.ipynb")))
    assert checked == len(reference())
    done = run_nbval(copy)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "failed" not in done.stdout


def test_nbval_fails_when_a_checked_cell_prints_something_else(tmp_path):
    copy = tmp_path / "notebooks"
    copy.mkdir()
    with_reference_outputs(NOTEBOOKS / "01_cause.ipynb", copy / "01_cause.ipynb")
    notebook = nbformat.read(copy / "01_cause.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if c.get("id") == "cause-example")
    cell.outputs[0].text = "kind=other_aadsts, code=AADSTS50076\n"
    nbformat.write(notebook, copy / "01_cause.ipynb")
    done = run_nbval(copy)
    assert done.returncode != 0 and "1 failed" in done.stdout
