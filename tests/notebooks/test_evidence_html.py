"""The HTML copies written as evidence: everything a reader sees in the notebook, self-contained, offline, small."""

import html
import re

import nbformat
import pytest
from nbconvert import HTMLExporter

from runbook_lib.runbook import notebook_html


def _text(body: str) -> str:
    """What a reader sees: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@pytest.fixture(scope="module")
def chain_03(runs):
    """Notebook 03 of the URL chain (apply and reboot against a simulated host), as its evidence HTML."""
    run = runs[("chain",)]["03"]
    return nbformat.read(run.output, as_version=4), notebook_html.write_html(run.output).read_text(encoding="utf-8")


def test_every_source_and_output_of_the_notebook_is_in_its_html(chain_03):
    notebook, body = chain_03
    seen, outputs = _text(body), 0
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.source in seen, cell.source[:80]
        else:
            heading = next((line.lstrip("# ") for line in cell.source.splitlines() if line.startswith("#")), None)
            assert heading is None or heading in seen, heading
        for output in cell.get("outputs", []):
            outputs += 1
            if output.output_type == "stream":
                assert output.text in seen, output.text[:80]
            else:  # the markup is re-serialised by nbconvert (quotes, void tags); what it says must be intact
                assert _text(output.data["text/html"]) in seen, output.data["text/plain"][:80]
    assert outputs > 10


def test_verdict_plan_read_back_and_simulated_banners_are_in_the_html(chain_03):
    notebook, body = chain_03
    for needle in ("Verdict for 127.0.0.1", "Remediation plan for 127.0.0.1", "Read-back diff",
                   "Every planned value reads back as planned", "restarted: last boot"):
        assert needle in body, needle
    banners = sum("SIMULATED HOST" in output.data.get("text/html", "") for cell in notebook.cells
                  for output in cell.get("outputs", []) if "data" in output)
    assert banners > 5 and body.count("SIMULATED HOST") == banners


def test_the_html_opens_offline_without_javascript(chain_03):
    _, body = chain_03
    assert not re.search(r"<script|<link|<iframe|<object|@import|url\(", body, re.IGNORECASE)
    assert all(source.startswith("data:") for source in re.findall(r'\ssrc="([^"]*)"', body))
    styles = re.findall(r"<style>(.*?)</style>", body, re.DOTALL)
    assert len(styles) == 1 and len(styles[0]) < 4096, "one small stylesheet, inline"


def test_the_html_is_a_fraction_of_nbconverts_default_and_smaller_than_the_notebook(runs, chain_03):
    notebook, body = chain_03
    default, _ = HTMLExporter().from_notebook_node(notebook)
    assert len(body) * 4 < len(default)
    assert len(body) < runs[("chain",)]["03"].output.stat().st_size


def test_a_failed_notebook_shows_its_error_in_the_html(runs):
    run = runs[("bad", "apply")]
    assert run.returncode != 0
    notebook = nbformat.read(run.output, as_version=4)
    error = next(o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error")
    seen = _text(notebook_html.render(notebook))
    assert error.ename in seen and error.evalue in seen


def test_table_cells_are_aligned_left_once_by_the_stylesheet_not_inline_in_each_cell(chain_03):
    notebook, body = chain_03
    inline = sum(output.data.get("text/html", "").count("style='text-align:left'") for cell in notebook.cells
                 for output in cell.get("outputs", []) if "data" in output)
    assert inline > 10, "JupyterLab right-aligns output tables: the notebook keeps its inline alignment"
    assert "text-align:left'" not in body.replace("text-align:left;", "")
    assert re.search(r"th,td\{[^}]*text-align:left", body)


def test_a_render_validates_the_notebook_once_not_after_each_preprocessor(chain_03, monkeypatch):
    notebook, body = chain_03
    validations = []
    validate = nbformat.validate
    monkeypatch.setattr(nbformat, "validate", lambda *a, **k: validations.append(1) or validate(*a, **k))
    assert notebook_html.render(notebook) == body
    assert len(validations) == 1
