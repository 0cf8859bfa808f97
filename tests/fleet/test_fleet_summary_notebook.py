"""notebooks/05_fleet_summary.ipynb shows a run folder's summary and re-checks its bundle."""

from pathlib import Path

import nbformat
import papermill

from runbook_lib import evidence, report
from runbook_lib.signing import new_run_key

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05_fleet_summary.ipynb"


def outputs_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + "".join(str(v) for v in output.get("data", {}).values()))
    return "\n".join(parts)


def test_fleet_summary_notebook_shows_hosts_outcomes_and_bundle_check(tmp_path):
    run = tmp_path / "20261125T100000Z-abc123"
    (run / "hosts" / "srv01").mkdir(parents=True)
    rows = [report.HostSummary("srv01", "fixed", True, "Microsoft Windows Server 2016 Standard", "fixable", True, 8,
                               "new_process", "compliant", notebooks=["hosts/srv01/02_os_check.html"]),
            report.HostSummary("srv02", "blocked", True, "Microsoft Windows Server 2019 Datacenter", "blocked",
                               True, 0, "none", "blocked", ["gpo.managed"])]
    report.write_summary(run, run.name, rows)
    evidence.write_manifest(run, {"run_id": run.name, "complete": True}, new_run_key())
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters={"run_dir": str(run)},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    text = outputs_text(tmp_path / "out.ipynb")
    assert "srv01" in text and "gpo.managed" in text and "SIMULATED" in text
    assert "data:image/png;base64," in text
    assert "OK: 3 file(s) checked" in text  # summary.csv, .json, .html
