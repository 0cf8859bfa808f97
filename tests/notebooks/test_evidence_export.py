"""Executed notebooks as change-ticket evidence: complete as static HTML, and never holding the password."""

import subprocess
import sys

import nbformat
import pytest
from nbconvert import HTMLExporter

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def exported(runs):
    """Notebook 03 of the URL chain (apply + reboot) exported with nbconvert, as an operator attaches it."""
    run = runs[("chain",)]["03"]
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(run.output, as_version=4))
    path = run.output.with_suffix(".html")
    path.write_text(body, encoding="utf-8")
    return run, body


def test_html_export_shows_verdict_plan_diff_and_simulated_banner(exported):
    run, body = exported
    for needle in ("Verdict for 127.0.0.1", "Remediation plan for 127.0.0.1", "Read-back diff",
                   "Every planned value reads back as planned", "tls-runbook-simulated", "restarted: last boot"):
        assert needle in body, needle


def test_every_displayed_result_has_static_html_and_no_widget_state(exported):
    run, _ = exported
    notebook = nbformat.read(run.output, as_version=4)
    assert "widgets" not in notebook.metadata
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type in ("display_data", "execute_result"):
                assert WIDGET_MIME not in output.data and "text/html" in output.data


def test_every_output_of_a_simulated_host_starts_with_the_banner(exported):
    run, _ = exported
    cells = [c for c in nbformat.read(run.output, as_version=4).cells if c.cell_type == "code"]
    connected = next(i for i, c in enumerate(cells) if "open_session" in c.source)  # a URL says nothing before
    for cell in cells[connected:]:
        for output in cell.get("outputs", []):
            if output.output_type == "display_data":
                assert "SIMULATED HOST" in output.data["text/html"][:400], output.data["text/plain"][:80]


def test_password_is_nowhere_in_notebooks_html_or_evidence(runs, exported, password):
    chain, twice = runs[("chain",)], runs[("twice",)]
    folders = {run.output.parent for run in [*(chain[n] for n in ("01", "02", "03", "04")),
                                              twice["first"], twice["second"]]}
    folders |= {chain["03"].evidence, twice["first"].evidence}
    files = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".ipynb" for p in files)
    assert any(p.name == "outcome.json" for p in files)
    leaked = subprocess.run(["grep", "-rlF", password, *map(str, folders)], capture_output=True, text=True)
    assert leaked.stdout == "" and leaked.returncode == 1
    for path in files:  # the same check without grep, for Windows runners
        assert password.encode() not in path.read_bytes(), path


def test_the_cli_renders_html_and_maps_failures_to_exit_codes(tmp_path, credential_env):
    def cli(*args, env=None):
        return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "notebook", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, "TLS_RUNBOOK_INTERACTIVE": "0", **(env or {})})

    ok = cli("02", "--simulator-profile", "ws2022_healthy", "-o", str(tmp_path / "ok" / "02.ipynb"))
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "ok" / "02.html").exists()
    assert (tmp_path / "evidence" / "ws2022-healthy" / "verdict.json").exists()
    assert "papermill" in nbformat.read(tmp_path / "ok" / "02.ipynb", as_version=4).cells[1].metadata

    bad = cli("02", "--target", "srv01;shutdown", "--inventory", __file__, "-o", str(tmp_path / "bad.ipynb"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "must be a DNS name" in bad.stderr
    assert not (tmp_path / "bad.ipynb").exists(), "bad input must stop before a kernel starts"

    assert cli("07", "-o", str(tmp_path / "x.ipynb")).returncode == 2

    down = cli("02", "--target", "http://127.0.0.1:9/wsman", "-o", str(tmp_path / "down" / "02.ipynb"),
               env=credential_env)
    assert down.returncode == 1 and "HostUnreachable" in down.stderr
    assert (tmp_path / "down" / "02.html").exists(), "a failed run keeps its partial notebook as HTML"
