"""The papermill engine fleet runs use: papermill's nbclient engine, saving the executed notebook into the bundle at
the moments an auditor needs rather than around every cell.

papermill saves the whole notebook when each cell starts and when it ends, markdown cells included: about forty
serialisations, validations and credential scans per runbook notebook, most of a worker's CPU. What has to be on
disk before the next step is each code cell's outputs (saved when it completes) and the mark that a cell which
changes the host (tagged ``apply``) has started; the notebook's own start and end are saved as before. A runner
that dies mid-cell still leaves every finished cell and the host's own evidence files, which the notebooks write
directly.

Each cell's times are papermill's (start, end, duration, status); nbclient's second set of timestamps per cell (when
the kernel went busy, took the input, replied, went idle) is not recorded.
"""

from __future__ import annotations

import contextlib

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.iorw import papermill_io

ENGINE_NAME = "tls-runbook-evidence"


class _EvidenceSaves(NotebookExecutionManager):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._quiet = False

    def save(self, **kwargs):
        if self._quiet or not self.output_path:
            return
        writer = papermill_io.get_handler(self.output_path)
        if hasattr(writer, "write_notebook"):  # the bundle's writer takes the notebook itself (host_chain._EvidenceIO)
            writer.write_notebook(self.nb, self.output_path)
        else:
            super().save(**kwargs)

    @contextlib.contextmanager
    def _unsaved(self, quiet: bool):
        self._quiet = quiet
        try:
            yield
        finally:
            self._quiet = False

    def cell_start(self, cell, cell_index=None, **kwargs):
        with self._unsaved("apply" not in cell.get("metadata", {}).get("tags", [])):
            super().cell_start(cell, cell_index, **kwargs)

    def cell_complete(self, cell, cell_index=None, **kwargs):
        with self._unsaved(cell.get("cell_type") != "code"):
            super().cell_complete(cell, cell_index, **kwargs)


class EvidenceEngine(NBClientEngine):
    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, **kwargs):
        manager = _EvidenceSaves(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                 autosave_cell_every=autosave_cell_every)
        manager.notebook_start()
        try:
            cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, record_timing=False, **kwargs)
        finally:
            manager.cleanup_pbar()
            manager.notebook_complete()
        return manager.nb


papermill_engines.register(ENGINE_NAME, EvidenceEngine)
