"""Imported last by the workers' fork server (see :data:`runbook_lib.fleet.workers.PRELOAD`), after everything a
worker uses.

First it does once what every worker would otherwise do at its first notebook: nbformat compiles its schema into a
validator (a strict one for papermill's writes, a relaxed one for nbconvert), the evidence exporter is built and its
templates compiled, and the markdown parser loads its plugins. Measured across a fleet run: about half a second of
CPU per worker.

Then the objects imported and built so far are moved out of the garbage collector's sight, as the kernel template
does, so that a worker's first collection does not write to every one of them and copy their pages. Without it each
worker ends up with a private copy of the whole preloaded heap (about 60 MB) instead of sharing it."""

import gc

import nbformat

from runbook_lib.runbook import notebook_html


def _first_notebook() -> None:
    """Validate and render a small executed notebook with what the runbook's have: markdown, a stream, HTML."""
    v4 = nbformat.v4
    notebook = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Heading\n\nText with `code`, a [link](https://example.invalid) and a list:\n\n- one"),
        v4.new_code_cell("print(1)", execution_count=1, outputs=[
            v4.new_output("stream", name="stdout", text="1\n"),
            v4.new_output("display_data", data={"text/html": "<b>1</b>", "text/plain": "1"})])])
    nbformat.validate(notebook)
    notebook_html.render(notebook)


_first_notebook()
gc.collect()
gc.freeze()
