"""Fleet runs end to end: papermill per host against simulated hosts, the bundle, verify, faults, rollback."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.fleet import evidence
from runbook_lib.fleet.runner import RunOptions, run_fleet
from runbook_lib.simulator.profile import builtin_profile

from conftest import FLEET_PROFILES, INTENDED
from leak_forms import written_forms

NOTEBOOKS = ["01_cause", "02_os_check", "03_registry_remediation", "04_powershell_session_fix"]


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def assert_no_credential_anywhere(root: Path, password: str):
    forms = written_forms(password)
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert [name for name, form in forms.items() if form in data] == [], path


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_six_host_fleet_runs_end_to_end_into_a_verifiable_bundle(executor, simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(FLEET_PROFILES, base=30 if executor == "local" else 40)
    run = run_fleet(inventory, RunOptions(apply=True, reboot=True, parallel=4, executor=executor), tmp_path / "out")
    outcomes = {row.host: row.outcome for row in run.rows}
    for node, profile in zip(nodes, FLEET_PROFILES):
        assert outcomes[node.name] in INTENDED[builtin_profile(profile).intent], (node.name, outcomes)
    assert run.exit_code == 1, "a blocked host makes the run exit 1"
    assert run.verify.ok, run.verify.lines()
    root = run.root
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["run_id"] == run.run_id and manifest["simulated"] is True
    assert manifest["parameters"]["apply"] is True and manifest["credential_references"] == ["env:TLS_RUNBOOK"]
    assert {h["name"] for h in manifest["hosts"]} == set(outcomes)
    for name in ("summary.csv", "summary.json", "summary.html"):
        assert (root / name).is_file()
    assert "data:image/png;base64," in (root / "summary.html").read_text() and "<script" not in \
        (root / "summary.html").read_text()
    for node in nodes:
        folder = root / "hosts" / node.name
        for notebook in NOTEBOOKS:
            assert (folder / f"{notebook}.ipynb").is_file() and (folder / f"{notebook}.html").is_file()
        for artefact in ("facts.json", "verdict.json", "outcome.json", "verdict-after.json"):
            assert (folder / artefact).is_file(), (node.name, artefact)
        if json.loads((folder / "verdict.json").read_text())["changes"]:
            assert {"fix.reg", "rollback.reg", "apply-report.json"} <= {p.name for p in folder.iterdir()}
        assert manifest["files"][f"hosts/{node.name}/02_os_check.ipynb"] == \
            evidence.sha256_file(folder / "02_os_check.ipynb")
    assert_no_credential_anywhere(root, credential.password)
    assert_private_key_nowhere(root, run.key)
    assert manifest["signature"]["fingerprint"] == run.key.fingerprint and manifest["complete"] is True
    assert_manifest_records_its_making(manifest, root, nodes)


def assert_manifest_records_its_making(manifest: dict, root: Path, nodes):
    import hashlib
    import os
    import pwd
    import socket

    from runbook_lib.fleet import provenance

    assert manifest["operator"]["name"] == pwd.getpwuid(os.geteuid()).pw_name
    assert manifest["machine"]["hostname"] == socket.gethostname() and manifest["command_line"]
    assert manifest["tool"]["sha256"] == provenance.tool_digest()
    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    assert manifest["notebooks"] == {f"{name}.ipynb": hashlib.sha256((notebooks / f"{name}.ipynb").read_bytes())
                                     .hexdigest() for name in NOTEBOOKS}
    records = {h["name"]: h for h in manifest["hosts"]}
    for node in nodes:
        folder_reports = list((root / "hosts" / node.name).glob("apply-report.json"))
        ids = {json.loads(p.read_text())["apply_id"] for p in folder_reports} - {None}
        assert set(records[node.name]["apply_ids"]) == ids and records[node.name]["state"] == "done"


def assert_private_key_nowhere(root: Path, key):
    """Only the public half of the signing key may be in the bundle, in no encoding of the private half."""
    from cryptography.hazmat.primitives import serialization

    raw = key.raw()
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    forms = [raw, raw.hex().encode(), base64.b64encode(raw), base64.b64encode(raw).rstrip(b"="), pem.splitlines()[1]]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(form in data for form in forms), path


def test_tampering_is_named_by_evidence_verify_and_rollback_restores_a_host(simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["ws2016_untouched", "ws2022_healthy"], base=50)
    original = nodes[0].host.snapshot()
    run = run_fleet(inventory, RunOptions(apply=True, parallel=2), tmp_path / "out")
    assert run.exit_code == 0 and [r.outcome for r in run.rows] == ["fixed", "compliant"]
    assert nodes[0].host.snapshot() != original
    assert cli("evidence", "verify", run.root).returncode == 0

    dry = cli("rollback", "--evidence", run.root, "--host", nodes[0].name, "--inventory", inventory)
    assert dry.returncode == 0 and "DRY RUN" in dry.stdout and nodes[0].host.snapshot() != original
    applied = cli("rollback", "--evidence", run.root, "--host", nodes[0].name, "--inventory", inventory, "--apply")
    assert applied.returncode == 0, applied.stderr
    assert sorted(nodes[0].host.snapshot(), key=str) == sorted(original, key=str)

    verdict = run.root / "hosts" / nodes[0].name / "verdict.json"
    verdict.write_text(verdict.read_text().replace('"affected": true', '"affected": false'))
    (run.root / "hosts" / nodes[1].name / "notes.txt").write_text("added after the run")
    result = cli("evidence", "verify", run.root)
    assert result.returncode == 1
    assert f"changed: hosts/{nodes[0].name}/verdict.json" in result.stdout
    assert f"added: hosts/{nodes[1].name}/notes.txt" in result.stdout


def test_a_dropped_connection_and_an_auth_failure_stop_only_their_own_hosts(simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["win7_wmf51", "ws2016_untouched", "ws2016_wow6432node_only",
                                        "ws2022_healthy"], base=70)
    # The network drops after 2 values; the shell delete ends the apply while its 3rd value waits to be journaled.
    nodes[0].host.drop_apply_after, nodes[0].host.apply_value_s = 2, 0.5
    nodes[1].server.faults.refuse_auth = True
    run = run_fleet(inventory, RunOptions(apply=True, reboot=True, parallel=4, retries=1, retry_backoff_s=0.2),
                    tmp_path / "out")
    rows = {row.host: row for row in run.rows}
    dropped, refused = rows[nodes[0].name], rows[nodes[1].name]
    assert dropped.outcome == "failed" and dropped.failed_notebook == "03_registry_remediation"
    assert "ApplyIncomplete" in dropped.error
    partial = run.root / "hosts" / nodes[0].name
    assert (partial / "03_registry_remediation.ipynb").is_file() and not (partial / "04_powershell_session_fix.ipynb").exists()
    report = json.loads((partial / "apply-report.json").read_text())
    assert [r["status"] for r in report["results"]].count("written") == 3 and report["backup"]
    assert report["recovered"] and "before it journaled" in report["results"][2]["note"]
    assert refused.outcome == "failed" and refused.failed_notebook == "01_cause"
    assert "AuthenticationFailed" in refused.error and credential.password not in refused.error
    assert {rows[nodes[2].name].outcome, rows[nodes[3].name].outcome} == {"fixed", "compliant"}
    assert run.exit_code == 1 and run.verify.ok
    assert_no_credential_anywhere(run.root, credential.password)


def test_a_locked_down_host_fails_with_its_reason_and_a_winrm_2_host_listed_twice_stays_within_its_quota(
        simulated_fleet, credential, tmp_path):
    from winrm.protocol import Protocol

    from runbook_lib.simulator.fleet import write_inventory

    nodes, _ = simulated_fleet(["ws2019_constrained_language", "ws2008r2_untouched"], base=100)
    locked, old = nodes
    held = Protocol(old.url, transport="ntlm", username=credential.username, password=credential.password)
    for _ in range(4):  # other sessions of this account hold 4 of the 5 shells WinRM 2.0 allows it
        held.open_shell()
    inventory = write_inventory(tmp_path / "fleet.yml", [
        (locked.name, locked.server.address, locked.server.port), ("old-by-name", old.server.address, old.server.port),
        ("old-by-alias", old.server.address, old.server.port)])
    run = run_fleet(inventory, RunOptions(notebooks=("01", "02"), parallel=3), tmp_path / "out")
    rows = {row.host: row for row in run.rows}
    assert rows[locked.name].outcome == "failed"
    assert rows[locked.name].error.endswith("Constrained Language Mode: the runbook needs FullLanguage or a signed "
                                            "script")
    assert rows["old-by-name"].outcome == rows["old-by-alias"].outcome == "blocked"
    assert old.server.quota_faults == 0, "the two names of one host never held shells at the same time"


@pytest.mark.parametrize("inventory", ["ansible_fleet.ini", "ansible_fleet.yml"])
def test_ansible_inventories_run_unchanged(inventory, simulated_fleet, credential, tmp_path):
    from runbook_lib.simulator.fleet import start_node
    from runbook_lib.simulator.profile import builtin_profile as profile

    nodes = [start_node(profile(name), [(credential.username, credential.password)], hostname=host, address=address, port=5985,
                        strict=True)
             for host, address, name in (("app01", "127.0.0.61", "ws2016_untouched"),
                                         ("app02", "127.0.0.62", "ws2022_healthy"),
                                         ("dmz01", "127.0.0.63", "ws2019_tls12_disabled_by_gpo"))]
    try:
        result = cli("run", "--inventory", Path(__file__).parent / "fixtures" / inventory, "--notebooks", "01,02",
                     "--limit", "windows:!edge", "--out", tmp_path / "out")
    finally:
        for node in nodes:
            node.stop()
    assert result.returncode == 1, result.stderr  # app01 needs a fix: a dry run does not make it compliant
    summary = json.loads(next((tmp_path / "out").glob("*/summary.json")).read_text())
    assert {h["host"]: h["outcome"] for h in summary["hosts"]} == {"app01": "fixable", "app02": "compliant"}


@pytest.mark.parametrize("content, words", [
    ("hosts: [name: x\n", "YAML"),
    ("hosts:\n  - name: srv01\n  - name: SRV01\n", "listed twice"),
    ("hosts:\n  - name: srv01\n    colour: blue\n", "colour"),
    ("hosts:\n  - name: 'srv01; Remove-Item C:\\\\'\n", "srv01"),
    ("hosts:\n  - name: '$(calc)'\n", "host"),
    ("hosts:\n  - name: srv01\n    password: hunter2-secret\n", "by reference"),
])
def test_bad_inventories_fail_in_one_line_before_anything_runs(content, words, tmp_path, credential):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(content)
    result = cli("run", "--inventory", inventory, "--out", tmp_path / "out", timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert "hunter2-secret" not in result.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for a bad inventory"


def test_papermill_cli_runs_the_os_check_against_an_inventory_host(simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["ws2016_untouched"], base=90)
    papermill = Path(sys.executable).with_name("papermill")
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "02_os_check.ipynb"
    result = subprocess.run([str(papermill), str(notebook), str(tmp_path / "out.ipynb"), "-p", "target", nodes[0].name,
                             "-p", "inventory", str(inventory), "-p", "evidence_dir", str(tmp_path / "ev"),
                             "--cwd", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    verdict = json.loads((tmp_path / "ev" / "verdict.json").read_text())
    assert verdict["host"] == nodes[0].name and verdict["affected"] is True and verdict["simulated"] is True


def test_a_host_over_its_wall_clock_limit_is_stopped_and_reported(simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["ws2016_untouched"], base=95)
    nodes[0].server.faults.latency = 1.0  # every WinRM request now takes a second
    run = run_fleet(inventory, RunOptions(notebooks=("01", "02"), timeout_s=4, parallel=1), tmp_path / "out")
    [row] = run.rows
    assert row.outcome == "failed" and "timed out after 4 s" in row.error
    assert run.exit_code == 1 and run.verify.ok


def test_run_record_saves_each_hosts_exchanges_and_they_replay_to_the_bundles_verdict(simulated_fleet, credential,
                                                                                      tmp_path):
    from runbook_lib.remote import recording

    nodes, inventory = simulated_fleet(["ws2016_tls12_disabled_by_admx"], base=100)
    result = cli("run", "--inventory", inventory, "--notebooks", "02", "--out", tmp_path / "out",
                 "--record", tmp_path / "rec")
    assert result.returncode == 1, result.stderr[-2000:]  # the host is blocked by its GPO
    [folder] = recording.host_folders(tmp_path / "rec")
    assert folder.name == nodes[0].name
    [replayed] = recording.replay_host(folder)
    [bundle_verdict] = (tmp_path / "out").glob(f"*/hosts/{nodes[0].name}/verdict.json")
    assert replayed.verdict.to_dict() == json.loads(bundle_verdict.read_text())
    assert_no_credential_anywhere(tmp_path / "rec", credential.password)
