"""Executed notebooks as evidence HTML: the same cells and outputs in a fraction of the bytes.

nbconvert's standard template inlines JupyterLab's whole stylesheet (about 300 KB) into every file and loads
require.js and MathJax from a CDN. Evidence is opened by auditors, often as one file attached to a change ticket,
often offline: so each file stays self-contained, with a small stylesheet for what the runbook's outputs use (text,
tables, code, tracebacks) inline, and no script at all. Outputs that only work with JavaScript (widgets) show
their text form.

Building an exporter costs about half a second (templates, filters), so each process keeps one and reuses it.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from ..core.files import write_atomic

TEMPLATE = "evidence_html"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# The richest form a reader can see without running anything, in order; a widget or script falls to text/plain.
STATIC_PRIORITY = ["text/html", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "text/latex",
                   "text/plain"]
_lock = threading.Lock()  # one exporter per process, used by one thread at a time


@functools.lru_cache(maxsize=1)
def _exporter():
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
    from traitlets.config import Config

    class EvidenceExporter(HTMLExporter):
        """HTMLExporter without what only its own templates need: its BeautifulSoup pass over the finished page
        (alt text for images, ``tabindex`` for JupyterLab's cell classes; this template writes images with alt
        text and has no such classes), a third of the time of a render. Markdown cells are rendered once per
        distinct text: every host runs the same notebooks."""

        def from_notebook_node(self, nb, resources=None, **kw):
            resources = self._init_resources(resources)
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

        @pass_context
        def markdown2html(self, context, source):
            if context.get("cell", {}).get("attachments"):
                return super().markdown2html(context, source)
            return _markdown(self, source)

    @functools.lru_cache(maxsize=256)
    def _markdown(exporter, source: str) -> str:
        return HTMLExporter.markdown2html(exporter, {}, source)

    # optimistic_validation: nbformat validates the notebook once, after all of nbconvert's preprocessors (eleven,
    # most disabled), rather than after each of them: a render took 8.4 ms and now takes 3.2.
    return EvidenceExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATES)],
                            exclude_anchor_links=True, optimistic_validation=True,
                            config=Config({"NbConvertBase": {"display_data_priority": STATIC_PRIORITY}}))


def render(notebook) -> str:
    """The evidence HTML of a notebook node."""
    with _lock:
        body, _ = _exporter().from_notebook_node(notebook)
    return body


def write_html(notebook_path: Path) -> Path | None:
    """``X.html`` beside the executed ``X.ipynb``, written whole and privately; None when there is no notebook, as
    when the kernel never started."""
    import nbformat

    notebook_path = Path(notebook_path)
    if not notebook_path.exists():
        return None
    return write_atomic(notebook_path.with_suffix(".html"),
                        render(nbformat.read(notebook_path, as_version=4)).encode("utf-8"))
