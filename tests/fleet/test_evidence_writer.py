"""The executed notebook as it enters a host's folder: compact JSON that Jupyter and nbformat read as the same
notebook, and no credential in any save, whichever cell or save it first appears in."""

import base64
import copy
import uuid

import nbformat
import papermill
from papermill.iorw import papermill_io

from runbook_lib.fleet.evidence_engine import ENGINE_NAME
from runbook_lib.fleet.host_chain import _EvidenceIO
from runbook_lib.remote.scrub import REDACTED, Scrubber

SECRET = "Winter2026!pa55"


def _writer() -> tuple[_EvidenceIO, str]:
    prefix = f"evidence-test-{uuid.uuid4().hex}:"
    writer = _EvidenceIO(prefix, Scrubber([SECRET]))
    papermill_io.register(prefix, writer)
    return writer, prefix


def test_an_executed_notebook_is_saved_compact_valid_and_without_the_credential(tmp_path):
    encoded = base64.b64encode(f"admin:{SECRET}".encode()).decode()
    cells = [nbformat.v4.new_markdown_cell("# a run"),
             nbformat.v4.new_code_cell("print('first line')\nprint('second line')"),
             nbformat.v4.new_code_cell(f"print('Authorization: Basic {encoded}')"),
             nbformat.v4.new_code_cell("from IPython.display import HTML\n"
                                       f"HTML('<b>{SECRET[:7]}</b>{SECRET[7:]}')")]
    source = tmp_path / "in.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), source)
    _, prefix = _writer()
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(source), prefix + str(output), kernel_name="python3", progress_bar=False,
                               engine_name=ENGINE_NAME)
    raw = output.read_bytes()
    assert b"\n" not in raw, "one line of compact JSON"
    assert not Scrubber([SECRET]).contains(raw)
    notebook = nbformat.read(output, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[1].outputs[0].text == "first line\nsecond line\n"
    assert REDACTED in notebook.cells[2].outputs[0].text
    assert [c.metadata.papermill.status for c in notebook.cells] == ["completed"] * 4


def _saved(writer: _EvidenceIO, path: str, cells: list, stdout: str) -> nbformat.NotebookNode:
    """A notebook whose first cell printed ``stdout``, as the engine saves it."""
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=stdout)]
    writer.write_notebook(notebook, path)
    return notebook


def test_a_credential_that_appears_in_a_cell_already_saved_is_removed_from_the_next_save(tmp_path):
    writer, prefix = _writer()
    target = tmp_path / "03.ipynb"
    notebook = _saved(writer, prefix + str(target),
                      [nbformat.v4.new_code_cell("read()"), nbformat.v4.new_code_cell("apply()")], "read\n")
    later = copy.deepcopy(notebook)
    later.cells[0].outputs.append(nbformat.v4.new_output("stream", name="stderr", text=f"pw={SECRET}\n"))
    later.metadata["papermill"] = {"parameters": {"note": SECRET}}
    writer.write_notebook(later, prefix + str(target))
    raw = target.read_bytes()
    assert not Scrubber([SECRET]).contains(raw)
    saved = nbformat.read(target, as_version=4)
    assert saved.cells[0].outputs[1].text == f"pw={REDACTED}\n"
    assert saved.metadata.papermill.parameters.note == REDACTED
    writer.write(nbformat.writes(later), prefix + str(target))  # papermill's own final write, as nbformat text
    assert nbformat.read(target, as_version=4) == saved


def test_papermills_final_write_of_the_notebook_last_saved_scans_no_cell_again(tmp_path):
    writer, prefix = _writer()
    target = tmp_path / "02.ipynb"
    notebook = _saved(writer, prefix + str(target),
                      [nbformat.v4.new_code_cell("read()\ncheck()"), nbformat.v4.new_markdown_cell("# two\nlines")],
                      "one\ntwo\n")
    saved = target.read_bytes()
    scanned = []
    scan = writer.scrubber.scrub_bytes
    writer.scrubber.scrub_bytes = lambda data: scanned.append(data) or scan(data)
    writer.write(nbformat.writes(notebook), prefix + str(target))  # its lines split into lists, as papermill sends it
    assert target.read_bytes() == saved
    assert scanned and not [data for data in scanned if b"check()" in data or b"lines" in data or b"two\\n" in data]
