"""Evidence that proves itself: each way of tampering with a bundle that used to pass `evidence verify` fails it,
and verify says what it checked and what it could not."""

import json
import os
import subprocess
import sys

import pytest

from runbook_lib import evidence, provenance, signing
from runbook_lib.errors import InputError
from runbook_lib.signing import new_run_key


def verify_cli(root, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "evidence", "verify", str(root), *extra],
                          capture_output=True, text=True, timeout=60, env=env)


def edit_manifest(root, change, key=None):
    """Change the manifest's content; with ``key``, sign it again as an attacker with their own key would."""
    doc = json.loads((root / "manifest.json").read_text())
    change(doc)
    if key is not None:
        doc = signing.sign(doc, key)
    (root / "manifest.json").write_text(json.dumps(doc, indent=2))


def test_an_untouched_signed_bundle_verifies_against_its_key(signed_bundle):
    root, key, _ = signed_bundle
    result = evidence.verify(root, expected_key=key.fingerprint)
    assert result.ok, result.lines()
    assert result.signature.valid and result.signature.fingerprint == key.fingerprint


def test_a_file_edited_together_with_its_hash_breaks_the_signature(signed_bundle):
    root, _, _ = signed_bundle
    facts = root / "hosts" / "srv01" / "facts.json"
    facts.write_text('{"host": "srv01", "affected": false}\n')
    edit_manifest(root, lambda doc: doc["files"].update({"hosts/srv01/facts.json": evidence.sha256_file(facts)}))
    result = evidence.verify(root)
    assert not result.ok and not result.changed
    assert "does not match its signature" in result.signature.line()


def test_a_file_dropped_with_its_entry_and_counts_breaks_the_signature(signed_bundle):
    root, _, _ = signed_bundle
    (root / "hosts" / "srv01" / "apply-report.json").unlink()

    def drop(doc):
        del doc["files"]["hosts/srv01/apply-report.json"]
        doc["file_count"] -= 1
        doc["hosts"][0]["files"] -= 1
    edit_manifest(root, drop)
    result = evidence.verify(root)
    assert not result.ok and not result.missing and not result.problems
    assert not result.signature.valid


def test_a_file_dropped_with_only_its_entry_is_a_shrunken_list_even_when_re_signed(signed_bundle):
    root, key, _ = signed_bundle
    (root / "hosts" / "srv01" / "apply-report.json").unlink()
    edit_manifest(root, lambda doc: doc["files"].pop("hosts/srv01/apply-report.json"), key=new_run_key())
    result = evidence.verify(root)
    assert result.signature.valid, "re-signed by the attacker"
    assert any("file(s) listed" in p for p in result.problems) and not result.ok
    assert not evidence.verify(root, expected_key=key.fingerprint).signature.valid


@pytest.mark.parametrize("change", [
    lambda doc: doc["hosts"][0].update(outcome="compliant"),
    lambda doc: doc["operator"].update(name="mallory"),
    lambda doc: doc.update(started_at="2026-11-30T23:00:00+00:00"),
    lambda doc: doc.update(complete=True, run_id="20261130T000000Z-000000"),
], ids=["outcome", "operator", "start time", "run id"])
def test_metadata_changes_break_the_signature(signed_bundle, change):
    root, _, _ = signed_bundle
    edit_manifest(root, change)
    result = verify_cli(root)
    assert result.returncode == 1 and "signature: FAILED" in result.stdout and result.stdout.rstrip().splitlines()[
        -1].startswith("FAILED")


def test_an_emptied_file_list_fails_whoever_signed_it(signed_bundle):
    root, _, _ = signed_bundle
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and path.name != "manifest.json":
            path.unlink()

    def empty(doc):
        doc.update(files={}, file_count=0)
        for host in doc["hosts"]:
            host["files"] = 0
    edit_manifest(root, empty, key=new_run_key())
    result = evidence.verify(root)
    assert result.signature.valid and "the manifest lists no files" in result.problems and not result.ok
    assert result.lines()[-1].startswith("FAILED: 0 file(s)")


def test_a_symlink_to_identical_content_outside_the_bundle_is_refused(signed_bundle, tmp_path):
    root, key, _ = signed_bundle
    facts = root / "hosts" / "srv01" / "facts.json"
    outside = tmp_path / "outside.json"
    outside.write_bytes(facts.read_bytes())
    facts.unlink()
    facts.symlink_to(outside)
    result = evidence.verify(root, expected_key=key.fingerprint)
    assert result.refused == ["hosts/srv01/facts.json (symbolic link)"] and not result.ok
    assert "refused: hosts/srv01/facts.json (symbolic link)" in result.lines()


def test_a_linked_folder_and_a_fifo_are_refused(signed_bundle, tmp_path):
    root, _, _ = signed_bundle
    (tmp_path / "elsewhere").mkdir()
    (root / "hosts" / "srv02" / "more").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(root / "hosts" / "srv02" / "pipe")
    result = evidence.verify(root)
    assert result.refused == ["hosts/srv02/more (symbolic link)", "hosts/srv02/pipe (special file)"]


def test_a_bundle_signed_with_one_key_fails_with_another(signed_bundle, tmp_path):
    root, key, _ = signed_bundle
    other = new_run_key()
    wrong = verify_cli(root, "--expect-key", other.fingerprint)
    assert wrong.returncode == 1 and f"not with the expected key {other.fingerprint}" in wrong.stdout
    public = tmp_path / "ticket.pub"
    public.write_text(key.public_text + " change-4711\n")
    assert verify_cli(root, "--expect-key", str(public)).returncode == 0
    assert verify_cli(root, "--expect-key", key.public_text).returncode == 0


def test_re_signing_a_tampered_bundle_is_caught_only_against_the_tickets_key(signed_bundle):
    root, key, _ = signed_bundle
    edit_manifest(root, lambda doc: doc["hosts"][1].update(outcome="fixed"), key=new_run_key())
    unpinned = verify_cli(root)
    assert unpinned.returncode == 0 and "not compared with an expected key" in unpinned.stdout
    pinned = verify_cli(root, "--expect-key", key.fingerprint)
    assert pinned.returncode == 1 and "not with the expected key" in pinned.stdout


def test_verify_says_when_no_credential_was_available_for_the_leak_scan(signed_bundle):
    root, _, _ = signed_bundle
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLS_RUNBOOK_")}
    result = verify_cli(root, env=env)
    assert result.returncode == 0
    assert "leak scan SKIPPED: no credential value at hand" in result.stdout
    assert "env:TLS_RUNBOOK: not looked for (environment variable TLS_RUNBOOK_USER is not set)" in result.stdout


def test_verify_looks_for_the_credential_when_it_is_available(signed_bundle, credential):
    root, _, _ = signed_bundle
    result = verify_cli(root)
    assert "leak scan: 1 credential value(s) looked for" in result.stdout and "SKIPPED" not in result.stdout


@pytest.mark.parametrize("content, words", [
    (b"[]", "not a tls-runbook/evidence-manifest/v2"),
    (b'{"schema": "tls-runbook/evidence-manifest/v2", "files": {}, "files": {"a": "b"}}', "unreadable manifest"),
    (b'{"schema": "tls-runbook/evidence-manifest/v1", "files": {}}', "v1 manifest"),
    (b"\xff\xfe", "unreadable manifest"),
])
def test_a_malformed_manifest_is_one_line_and_exit_2(tmp_path, content, words):
    (tmp_path / "manifest.json").write_bytes(content)
    result = verify_cli(tmp_path)
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_operator_is_the_accounts_logon_name_not_an_environment_variable(monkeypatch):
    import pwd

    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("USER", "mallory")
    identity = provenance.operator_identity()
    assert identity["name"] == pwd.getpwuid(os.geteuid()).pw_name != "mallory"
    assert identity["uid"] == os.geteuid()


def test_an_operator_key_signs_by_reference_and_verifies_against_its_pub_file(signed_bundle, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"correct horse")))
    monkeypatch.setenv(signing.PASSPHRASE_VARIABLE, "correct horse")
    key = signing.load_signing_key(f"file:{key_file}")
    assert key.origin == f"operator key file:{key_file}" and key.fingerprint == signing.fingerprint(
        signing.public_text(private.public_key()))
    root, _, _ = signed_bundle
    evidence.write_manifest(root, {"run_id": "r", "complete": True, "hosts": [
        {"name": "srv01", "state": "done"}, {"name": "srv02", "state": "done"}]}, key)
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text(key.public_text + "\n")
    assert evidence.verify(root, expected_key=signing.expected_fingerprint(str(pub))).ok
    monkeypatch.setenv(signing.PASSPHRASE_VARIABLE, "wrong")
    with pytest.raises(InputError, match="wrong passphrase"):
        signing.load_signing_key(f"file:{key_file}")


@pytest.mark.parametrize("reference, words", [
    ("id_ed25519", "file:PATH or env:NAME"),
    ("file:/nonexistent/key", "No such file"),
    ("env:TLS_RUNBOOK_NO_SUCH_KEY", "not set"),
    ("rsa", "not an Ed25519 key"),
])
def test_a_bad_signing_key_is_one_line_and_exit_2(reference, words, tmp_path, credential):
    if reference == "rsa":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        path = tmp_path / "rsa.pem"
        path.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        reference = f"file:{path}"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("hosts:\n  - name: srv01\n")
    result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", str(inventory),
                             "--signing-key", reference, "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
