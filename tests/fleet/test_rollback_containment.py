"""`tls-runbook rollback` goes only where it should: a host of that bundle, a bundle that verifies, values the
runbook manages that the host's applies wrote, and files of a sane size. Every refusal is one line and exit 2, and
comes before any host is contacted."""

import json
import subprocess
import sys

import pytest

from conftest import NET4, apply_report

RUN_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
TLS10 = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.0\\Client"
UNREACHABLE = "http://127.0.0.1:9/wsman"  # discard port: a refusal must come before any connection


def rollback(root, host, *extra):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "rollback", "--evidence", str(root), "--host",
                           host, "--target", UNREACHABLE, *extra], capture_output=True, text=True, timeout=60)


def assert_refused(result, words):
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_dry_run_names_only_the_values_the_hosts_apply_wrote(signed_bundle, credential):
    root, _, make = signed_bundle
    report = apply_report()
    report["backup"].append({"path": NET4, "name": "SystemDefaultTlsVersions", "existed": True, "type": "REG_DWORD",
                             "data": 0, "key_existed": True})
    report["backup"][1] = {"path": NET4.replace("v4.0.30319", "v2.0.50727"), "name": "SchUseStrongCrypto",
                           "existed": True, "type": "REG_DWORD", "data": 1, "key_existed": True}
    make(report)  # the second backup entry was never written by the apply: it must not be restored
    result = rollback(root, "srv01")
    assert result.returncode == 0, result.stderr
    assert "DRY RUN: 2 change(s) planned" in result.stdout
    assert "v2.0.50727" not in result.stdout


@pytest.mark.parametrize("host, words", [
    ("../../../outside", "--host '../../../outside'"),
    ("srv01\n", "srv01"),  # refused as a name (full match) or as no host of the run
    ("srv03", "not a host of run"),
])
def test_a_host_outside_the_bundle_is_refused(signed_bundle, credential, tmp_path, host, words):
    root, _, _ = signed_bundle
    outside = tmp_path / "outside" / "apply-report.json"
    outside.parent.mkdir()
    outside.write_text(json.dumps(apply_report()))
    assert_refused(rollback(root, host), words)


def test_a_tampered_bundle_is_refused(signed_bundle, credential):
    root, _, _ = signed_bundle
    path = root / "hosts" / "srv01" / "apply-report.json"
    report = json.loads(path.read_text())
    report["backup"][0].update(existed=True, type="REG_DWORD", data=1)
    path.write_text(json.dumps(report))
    assert_refused(rollback(root, "srv01"), "does not verify (changed: hosts/srv01/apply-report.json)")


def test_a_bundle_from_another_signer_is_refused_when_the_key_is_given(signed_bundle, credential):
    from runbook_lib.signing import new_run_key

    root, _, _ = signed_bundle
    assert_refused(rollback(root, "srv01", "--expect-key", new_run_key().fingerprint), "not with the expected key")


@pytest.mark.parametrize("entry", [
    {"path": RUN_KEY, "name": "Updater", "existed": True, "type": "REG_SZ", "data": "C:\\evil.exe", "key_existed": True},
    {"path": TLS10, "name": "Enabled", "existed": True, "type": "REG_DWORD", "data": 1, "key_existed": True},
], ids=["run key", "tls 1.0 client"])
def test_a_signed_report_asking_for_an_unmanaged_value_is_refused_whole(signed_bundle, credential, entry):
    root, _, make = signed_bundle
    report = apply_report()
    report["backup"].append(entry)
    report["results"].append({"path": entry["path"], "name": entry["name"], "status": "written", "before": None,
                              "after": None, "error": None})
    make(report)
    assert_refused(rollback(root, "srv01", "--apply"), "which the runbook never manages")


@pytest.mark.parametrize("content, words", [
    (b"{not json", "is not valid JSON"),
    (b"[]", "is not an apply report"),
    (json.dumps(apply_report(backup="all")).encode(), "is not an apply report"),
    (json.dumps(apply_report(results=[{"status": "written"}])).encode(), "malformed results"),
    (json.dumps(apply_report(apply_id="../../x")).encode(), "apply_id"),
    (json.dumps(apply_report(backup=[{"path": NET4, "name": "SchUseStrongCrypto"}])).encode(), "backup[0]"),
    (json.dumps(apply_report(pending=True)).encode(), "never recorded"),
], ids=["not json", "a list", "backup not a list", "result without a value", "unsafe apply id",
        "backup entry without state", "pending"])
def test_a_malformed_rollback_report_is_one_line_and_exit_2(signed_bundle, credential, content, words):
    root, _, make = signed_bundle
    make(content)
    assert_refused(rollback(root, "srv01"), words)


def test_a_26_mb_rollback_report_is_refused_without_reading_it_all(signed_bundle, credential):
    root, _, make = signed_bundle
    report = json.dumps(apply_report())
    make(report[:-1] + ', "padding": "' + "x" * (26 * 1024 * 1024) + '"}')
    assert_refused(rollback(root, "srv01"), "larger than 4 MiB")
