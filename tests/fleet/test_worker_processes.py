"""Worker processes start as forks of a fork server that has imported what they use, and share those pages: the
imported objects are out of the garbage collector's sight, so a worker's first collection does not copy them."""

import gc
import multiprocessing

import pytest

from runbook_lib.fleet import workers


def _report(connection) -> None:
    import sys

    connection.send((gc.get_freeze_count(), "papermill" in sys.modules))
    connection.close()


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="spawn has no shared heap")
def test_a_worker_starts_with_the_preloaded_heap_imported_and_frozen():
    context = workers.worker_context()
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_report, args=(writer,))
    process.start()
    writer.close()
    frozen, imported = reader.recv()
    process.join(30)
    assert imported, "the fork server imported papermill before forking the worker"
    assert frozen > 10_000, "the preloaded objects are frozen, as the kernel template's are"


def _report_first_notebook_work(connection) -> None:
    import sys

    from nbformat.validator import validators

    from runbook_lib.runbook import notebook_html

    connection.send((sorted(key[1:] for key in validators), notebook_html._exporter.cache_info().currsize,
                     "IPython" in sys.modules, "mistune.plugins.url" in sys.modules))
    connection.close()


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="spawn has no shared heap")
def test_a_worker_starts_with_its_first_notebooks_work_done_by_the_fork_server():
    """Every worker used to compile nbformat's schema twice, build the evidence exporter and import IPython (for
    jupyter_client's kernel spec lookup) and the markdown plugins at its first notebook: about half a second."""
    context = workers.worker_context()
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_report_first_notebook_work, args=(writer,))
    process.start()
    writer.close()
    validators, exporters, ipython, markdown_plugins = reader.recv()
    process.join(30)
    assert validators == [(4, 5, False), (4, 5, True)], "strict for papermill's writes, relaxed for nbconvert"
    assert exporters == 1 and ipython and markdown_plugins
