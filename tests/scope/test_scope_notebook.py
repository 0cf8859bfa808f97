"""notebooks/00_scope.ipynb headless (papermill): sources, a static chart, entities, hosts and the --limit."""

from pathlib import Path

import nbformat
import papermill
from scope_files import ENTRA_JSON, INVENTORY

from runbook_lib.remote.inventory import load_inventory

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "00_scope.ipynb"


def test_scope_notebook_is_committed_clean_and_thin():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert [c for c in code if "parameters" in c.metadata.get("tags", [])] == [code[0]]
    assert all(c.source.startswith("scope.") and "\n" not in c.source for c in code[2:])
    declared = [line.split(":")[0] for line in code[0].source.splitlines()[1:]]
    assert not [n for n in declared if any(w in n for w in ("password", "secret", "token")) and not n.endswith("_ref")]


def test_scope_notebook_shows_sources_chart_entities_hosts_and_a_limit_that_selects_them(tmp_path):
    out = tmp_path / "00_scope.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
                               parameters={"sources": ",".join(map(str, ENTRA_JSON)), "inventory": str(INVENTORY)})
    cells = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    by_source = {c.source: c.outputs for c in cells}
    text = {source: "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("data", {}).get("text/html", ""))
                            + o.get("text", "") for o in outputs) for source, outputs in by_source.items()}
    assert "15 sign-in(s), 9 over legacy TLS, 2 refused with AADSTS1002016" in text["scope.sources(run)"]
    assert any("image/png" in o.get("data", {}) for o in by_source["scope.chart(run)"])
    assert "Legacy-TLS sign-ins per day by application" in text["scope.chart(run)"]
    assert "203.0.113.7" in text["scope.entities(run)"]
    assert "srv03.contoso.com" in text["scope.hosts(run)"] and "198.51.100.9" in text["scope.hosts(run)"]
    plain = "".join(o["data"]["text/plain"] for o in by_source["scope.limit(run)"])
    expression = plain.splitlines()[0].removeprefix("--limit ")
    assert f"tls-runbook run --inventory {INVENTORY} --limit '{expression}'" in plain
    assert sorted(h.name for h in load_inventory(INVENTORY).select(expression)) == ["srv01", "srv02",
                                                                                   "srv03.contoso.com"]
