"""``--after``: per host of a fleet run, legacy sign-ins before and after its end, written beside the bundle."""

import json
from pathlib import Path

import nbformat
import papermill
from scope_files import ENTRA_JSON, INVENTORY, LA_CSV, scope_cli

from runbook_lib import evidence
from runbook_lib.inventory import load_inventory
from runbook_lib.signing import new_run_key

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05_fleet_summary.ipynb"
HOSTS = {"srv01": "fixed", "srv02": "fixed", "srv03.contoso.com": "fixed_after_reboot", "srv04": "compliant"}


def fleet_run(folder: Path, inventory_digest: str, summary: dict | None = None) -> Path:
    """A finished run's bundle as the runner leaves it; it ended between the fixtures' last legacy sign-ins of
    srv01 (11-10) and srv03 (11-18) and their first ordinary ones (11-22, 11-21); srv02 goes on (11-21, 11-24)."""
    run = folder / "20261120T110000Z-abc123"
    (run / "hosts" / "srv01").mkdir(parents=True)
    (run / "hosts" / "srv01" / "verdict.json").write_text("{}")
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    evidence.write_manifest(run, {"run_id": run.name, "started_at": "2026-11-20T11:00:00+00:00",
                                  "ended_at": "2026-11-20T12:00:00+00:00",
                                  "inventory": {"name": "inventory.yml", "sha256": inventory_digest},
                                  "complete": True,
                                  "hosts": [{"name": n, "state": "done", "outcome": o} for n, o in HOSTS.items()]},
                            new_run_key())
    return run


def test_after_compares_per_host_and_writes_beside_the_untouched_bundle(tmp_path):
    run = fleet_run(tmp_path, load_inventory(INVENTORY).digest)
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    result = scope_cli(*ENTRA_JSON, "--inventory", INVENTORY, "--after", run, "--format", "json")
    assert result.returncode == 0, result.stderr
    written = tmp_path / f"{run.name}.scope-after.json"
    doc = json.loads(written.read_text())
    assert json.loads(result.stdout) == doc
    assert doc["schema"] == "tls-runbook/scope-after/v1" and doc["run_ended_at"] == "2026-11-20T12:00:00Z"
    assert doc["manifest_sha256"] == evidence.sha256_file(run / "manifest.json")
    assert doc["inventory"]["matches_run"] is True
    rows = {h["name"]: h for h in doc["hosts"]}
    assert {n: (h["legacy_before"], h["failures_before"], h["legacy_after"], h["failures_after"],
                h["sign_ins_after"], h["status"]) for n, h in rows.items()} == {
        "srv01": (3, 1, 0, 0, 1, "stopped"),
        "srv02": (1, 0, 2, 1, 2, "continuing"),
        "srv03.contoso.com": (2, 0, 0, 0, 1, "stopped"),
        "srv04": (0, 0, 0, 0, 0, "none_seen")}
    assert rows["srv03.contoso.com"]["run_outcome"] == "fixed_after_reboot"
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before
    assert evidence.verify(run).ok


def test_after_with_sign_ins_that_end_before_the_run_cannot_say_stopped(tmp_path):
    run = fleet_run(tmp_path, "another inventory")
    result = scope_cli(*ENTRA_JSON, "--until", "2026-11-15", "--inventory", INVENTORY, "--after", run)
    assert result.returncode == 0, result.stderr
    assert "the sign-ins end before the run did" in result.stderr
    assert "the inventory differs from the one the run used" in result.stderr
    doc = json.loads((tmp_path / f"{run.name}.scope-after.json").read_text())
    assert {h["name"]: h["status"] for h in doc["hosts"]}["srv01"] == "no_sign_ins_after"


def test_after_refuses_a_folder_that_is_not_a_run_before_reading_sources(tmp_path):
    result = scope_cli(LA_CSV, "--inventory", INVENTORY, "--after", tmp_path)
    assert result.returncode == 2 and "has no manifest.json: not an evidence bundle" in result.stderr
    assert list(tmp_path.iterdir()) == []


def outputs_text(path: Path) -> str:
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + "".join(str(v) for v in output.get("data", {}).values()))
    return "\n".join(parts)


def test_fleet_summary_notebook_shows_the_comparison_and_notices_a_changed_manifest(tmp_path):
    run = fleet_run(tmp_path, load_inventory(INVENTORY).digest, summary={"run_id": "r", "hosts": []})
    assert scope_cli(*ENTRA_JSON, "--inventory", INVENTORY, "--after", run).returncode == 0
    out = tmp_path / "05.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"run_dir": str(run)}, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    text = outputs_text(out)
    assert "Legacy-TLS sign-ins before and after the run" in text and "continuing" in text and "stopped" in text
    assert "not the one this comparison was made against" not in text
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["operator"] = "someone else"
    (run / "manifest.json").write_text(json.dumps(manifest))
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"run_dir": str(run)}, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    assert "the run's manifest.json is not the one this comparison was made against" in outputs_text(out)
