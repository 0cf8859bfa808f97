"""The fleet's papermill engine saves each code cell's outputs as it completes and marks an apply cell's start,
and no longer saves around markdown cells or at the start of read-only cells."""

import json
import uuid

import nbformat
import papermill
from papermill.iorw import papermill_io

from runbook_lib.fleet.evidence_engine import ENGINE_NAME


class Recording:
    """A papermill writer that keeps every save."""

    def __init__(self):
        self.saves: list[dict] = []

    def write(self, buf: str, path: str) -> None:
        self.saves.append(json.loads(buf))

    def read(self, path: str) -> str:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    def pretty_path(self, path: str) -> str:
        return path


def test_saves_follow_code_cells_and_the_start_of_an_apply_cell(tmp_path):
    cells = [nbformat.v4.new_markdown_cell("# read"), nbformat.v4.new_code_cell("x = 1\nprint('read', x)"),
             nbformat.v4.new_markdown_cell("## change"),
             nbformat.v4.new_code_cell("print('apply')", metadata={"tags": ["apply"]}),
             nbformat.v4.new_code_cell("print('verify')")]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                              "display_name": "Python 3",
                                                                              "language": "python"}})
    source = tmp_path / "in.ipynb"
    nbformat.write(notebook, source)
    prefix = f"recording-{uuid.uuid4().hex}:"
    recording = Recording()
    papermill_io.register(prefix, recording)
    papermill.execute_notebook(str(source), prefix + "out.ipynb", kernel_name="python3", progress_bar=False,
                               engine_name=ENGINE_NAME)
    statuses = [[c["metadata"]["papermill"]["status"] for c in save["cells"]] for save in recording.saves]
    assert statuses == [
        ["pending"] * 5,  # notebook start
        ["completed", "completed", "pending", "pending", "pending"],  # first code cell's outputs on disk
        ["completed", "completed", "completed", "running", "pending"],  # the apply cell has started
        ["completed"] * 4 + ["pending"],  # ... and completed
        ["completed"] * 5,  # the last code cell
        ["completed"] * 5,  # notebook end
        ["completed"] * 5,  # papermill's own write of the result
    ]
    assert "".join(recording.saves[1]["cells"][1]["outputs"][0]["text"]) == "read 1\n"
