"""Evidence bundles: tampering is named file by file, and no encoding of a credential survives."""

import pytest

from leak_forms import written_forms
from runbook_lib import evidence
from runbook_lib.errors import InputError
from runbook_lib.signing import new_run_key

SECRET = "Tr0ub4dor&3-x"
FORMS = written_forms(SECRET)
KEY = new_run_key()


def make_bundle(root):
    (root / "hosts" / "srv01").mkdir(parents=True)
    (root / "hosts" / "srv01" / "facts.json").write_text('{"host": "srv01"}')
    (root / "summary.csv").write_text("host,outcome\nsrv01,fixed\n")
    evidence.write_manifest(root, {"run_id": "r1", "complete": True, "hosts": [{"name": "srv01", "state": "done"}]},
                            KEY)
    return root


def test_an_untouched_bundle_verifies(tmp_path):
    result = evidence.verify(make_bundle(tmp_path), [SECRET])
    assert result.ok and result.checked == 2
    assert result.lines()[-1].startswith("OK: 2 file(s)")


def test_changed_missing_and_added_files_are_each_named(tmp_path):
    root = make_bundle(tmp_path)
    (root / "summary.csv").write_text("host,outcome\nsrv01,compliant\n")
    (root / "hosts" / "srv01" / "facts.json").unlink()
    (root / "hosts" / "srv01" / "extra.txt").write_text("x")
    result = evidence.verify(root)
    assert (result.changed, result.missing, result.added) == (
        ["summary.csv"], ["hosts/srv01/facts.json"], ["hosts/srv01/extra.txt"])
    assert not result.ok


def test_verify_names_every_file_holding_a_credential_in_any_written_form(tmp_path):
    root = make_bundle(tmp_path)
    for index, form in enumerate(FORMS.values()):
        (root / "hosts" / "srv01" / f"leak{index:03}.bin").write_bytes(b"prefix " + form + b" suffix")
    evidence.write_manifest(root, {"run_id": "r1", "complete": True, "hosts": [{"name": "srv01", "state": "done"}]},
                            KEY)
    result = evidence.verify(root, [SECRET])
    assert result.secrets_found == [f"hosts/srv01/leak{index:03}.bin" for index in range(len(FORMS))]
    assert not result.ok and result.lines()[-1].startswith("FAILED")


def test_scrubber_removes_credentials_before_files_enter_the_bundle(tmp_path):
    source = tmp_path / "out.ipynb"
    source.write_bytes(b"\n".join(b'{"text": "' + form + b'"}' for form in FORMS.values()))
    hits = evidence.Scrubber([SECRET]).copy(source, tmp_path / "bundle" / "out.ipynb")
    assert hits >= len(FORMS)
    written = (tmp_path / "bundle" / "out.ipynb").read_bytes()
    assert [name for name, form in FORMS.items() if form in written] == []


def test_a_folder_without_manifest_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="not an evidence bundle"):
        evidence.verify(tmp_path)
