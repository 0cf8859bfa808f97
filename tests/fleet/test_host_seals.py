"""A host's state change is signed into its own seal, not into the run's manifest, and verify trusts a seal only
when the run's key signed it for that host's files."""

import json
import shutil

import pytest

from runbook_lib.core.files import private_folder
from runbook_lib.fleet import evidence, signing
from runbook_lib.fleet.bundle import LiveBundle
from runbook_lib.fleet.signing import new_run_key

HOSTS = ["srv01", "srv02"]


@pytest.fixture
def live(tmp_path):
    bundle = LiveBundle(tmp_path / "out" / "run-1", new_run_key())
    bundle.create({"run_id": "run-1"}, HOSTS)
    for host in HOSTS:
        private_folder(bundle.root / "hosts" / host)
        evidence.write_scrubbed(bundle.root / "hosts" / host / "facts.json", f'{{"host": "{host}"}}',
                                evidence.Scrubber([]))
    return bundle


def record(root, host: str) -> dict:
    return next(h for h in evidence.current_manifest(root)["hosts"] if h["name"] == host)


def test_a_host_change_leaves_the_manifest_untouched_and_verifies_from_the_host_seal(live):
    before = (live.root / "manifest.json").read_bytes()
    live.seal_hosts({"srv01": {"state": "running"}})
    live.seal_hosts({"srv01": {"state": "done", "outcome": "fixed"}}, finished=True)
    assert (live.root / "manifest.json").read_bytes() == before
    assert record(live.root, "srv01")["state"] == "done" and record(live.root, "srv02")["state"] == "pending"
    live.seal_hosts({"srv02": {"state": "running"}})
    assert "hosts/srv01/facts.json" in evidence.current_manifest(live.root)["files"]
    result = evidence.verify(live.root)
    assert result.ok and result.hosts_finished == 1, result.lines()
    assert not result.added  # the seal is not evidence of its own


def test_a_host_seal_names_only_its_host_files(live):
    live.seal_hosts({"srv01": {"state": "running"}})
    seal = json.loads(evidence.seal_path(live.root, "srv01").read_text())
    assert set(seal["files"]) == {"hosts/srv01/facts.json"}


def test_a_file_changed_after_its_host_was_sealed_is_named(live):
    live.seal_hosts({"srv01": {"state": "done"}}, finished=True)
    (live.root / "hosts" / "srv01" / "facts.json").write_text('{"host": "elsewhere"}')
    assert evidence.verify(live.root).changed == ["hosts/srv01/facts.json"]


def test_the_run_folds_the_seals_into_the_signed_manifest_and_removes_them_at_its_end(live):
    for host in HOSTS:
        live.seal_hosts({host: {"state": "done"}}, finished=True)
    live.update(run_files=True, fold=True, complete=True)
    assert not (live.root / evidence.SEALS).exists()
    doc = evidence.load_manifest(live.root)
    assert {h["state"] for h in doc["hosts"]} == {"done"} and len(doc["files"]) == 2
    assert evidence.verify(live.root).ok


def test_a_later_seal_wins_over_what_the_runner_folded_earlier(live):
    live.seal_hosts({"srv01": {"state": "running"}})
    live.update(run_files=True)  # folds without removing: the host's worker still writes
    live.seal_hosts({"srv01": {"state": "done"}}, finished=True)
    assert record(live.root, "srv01")["state"] == "done"
    live.update(fold=True)
    assert evidence.load_manifest(live.root)["hosts"][0]["state"] == "done"


@pytest.mark.parametrize("tamper, problem", [
    (lambda seal: seal["record"].update(state="done", outcome="fixed"), "does not match its signature"),
    (lambda seal: seal["files"].update({"hosts/srv02/facts.json": "0" * 64}), "does not match its signature"),
])
def test_a_seal_edited_after_signing_fails_verify_and_is_not_read(live, tamper, problem):
    live.seal_hosts({"srv01": {"state": "running"}})
    path = evidence.seal_path(live.root, "srv01")
    seal = json.loads(path.read_text())
    tamper(seal)
    path.write_text(json.dumps(seal))
    result = evidence.verify(live.root)
    assert not result.ok and any("seals/srv01.json" in p and problem in p for p in result.problems), result.lines()
    assert record(live.root, "srv01")["state"] == "pending"


def test_a_seal_signed_with_another_key_or_for_another_host_fails_verify(live, tmp_path):
    other = LiveBundle(tmp_path / "elsewhere" / "run-1", new_run_key())
    other.create({"run_id": "run-1"}, HOSTS)
    other.seal_hosts({"srv01": {"state": "done", "outcome": "fixed"}})
    private_folder(live.root / evidence.SEALS)
    shutil.copy(evidence.seal_path(other.root, "srv01"), evidence.seal_path(live.root, "srv01"))
    live.seal_hosts({"srv02": {"state": "running"}})
    shutil.copy(evidence.seal_path(live.root, "srv02"), live.root / evidence.SEALS / "srv03.json")
    (live.root / evidence.SEALS / "notes.txt").write_text("hidden from the file list?")
    problems = evidence.verify(live.root).problems
    assert any(p.startswith("seals/srv01.json: signed with") for p in problems), problems
    assert "seals/srv03.json: not a seal of a host of this run" in problems
    assert "seals/notes.txt: not a seal of a host of this run" in problems
    assert record(live.root, "srv01")["state"] == "pending"


def test_a_seal_that_does_not_count_is_kept_when_the_run_folds_so_verify_still_names_it(live):
    live.seal_hosts({"srv01": {"state": "done"}, "srv02": {"state": "done"}}, finished=True)
    path = evidence.seal_path(live.root, "srv02")
    seal = json.loads(path.read_text())
    seal["record"]["outcome"] = "fixed"
    path.write_text(json.dumps(seal))
    live.update(run_files=True, fold=True, complete=True)
    assert not evidence.seal_path(live.root, "srv01").exists() and path.is_file()
    result = evidence.verify(live.root)
    assert not result.ok and any(p.startswith("seals/srv02.json: the seal does not match") for p in result.problems)


def test_a_link_in_the_seals_folder_is_not_followed_and_fails_verify(live):
    private_folder(live.root / evidence.SEALS)
    evidence.seal_path(live.root, "srv01").symlink_to(live.root / "hosts" / "srv01" / "facts.json")
    assert "seals/srv01.json: not a seal of a host of this run" in evidence.verify(live.root).problems
    assert record(live.root, "srv01")["state"] == "pending"


def test_an_unfinished_seal_is_passed_over_while_the_run_is_written_and_named_once_it_is_complete(live):
    live.seal_hosts({"srv01": {"state": "done"}, "srv02": {"state": "done"}}, finished=True)
    leftover = live.root / evidence.SEALS / ".srv01.json.99999.tmp"
    leftover.write_text("{}")
    assert evidence.verify(live.root).ok
    live.update(run_files=True, complete=True)  # a killed writer's leftover is debris: removed
    assert not leftover.exists()
    leftover.write_text("{}")  # one put there after the run
    assert "seals/.srv01.json.99999.tmp: not a seal of a host of this run" in evidence.verify(live.root).problems


def test_a_killed_writers_staging_file_in_a_host_folder_is_named_but_passes_while_the_run_is_unfinished(live):
    """A worker killed with its runner mid-write leaves ``.<name>.<pid>.tmp``: the file it was replacing (or
    nothing) still stands, so a partial bundle verifies and says so; once the run is complete it is an addition."""
    live.seal_hosts({"srv01": {"state": "running"}, "srv02": {"state": "running"}})
    leftover = live.root / "hosts" / "srv01" / ".facts-after.json.99999.tmp"
    leftover.write_text('{"half": ')
    result = evidence.verify(live.root)
    assert result.ok, result.lines()
    assert result.unfinished == ["hosts/srv01/.facts-after.json.99999.tmp"] and not result.added
    assert any(line.startswith("unfinished write") and line.endswith(".facts-after.json.99999.tmp")
               for line in result.lines())
    live.seal_hosts({"srv01": {"state": "done"}, "srv02": {"state": "done"}}, finished=True)
    assert not leftover.exists()  # the host's own finish removes its folder's debris
    leftover.write_text('{"half": ')  # one put there after the run
    live.update(run_files=True, fold=True, complete=True)
    leftover.write_text('{"half": ')
    result = evidence.verify(live.root)
    assert not result.ok and result.added == ["hosts/srv01/.facts-after.json.99999.tmp"]


def _edited(seal: dict) -> dict:
    seal["record"]["outcome"] = "fixed"
    seal["files"]["hosts/srv01/planted.txt"] = "0" * 64
    return seal


def _re_signed_with_another_key(seal: dict) -> dict:
    seal = _edited(seal)
    del seal["signature"]
    return signing.sign(seal, new_run_key())


@pytest.mark.parametrize("tamper", [_edited, _re_signed_with_another_key])
def test_a_seal_changed_during_the_run_is_set_aside_not_re_signed_and_verify_names_it(live, tamper):
    live.seal_hosts({"srv01": {"state": "running"}})
    path = evidence.seal_path(live.root, "srv01")
    path.write_text(json.dumps(tamper(json.loads(path.read_text()))))
    live.seal_hosts({"srv01": {"state": "done"}}, finished=True)
    assert "outcome" not in record(live.root, "srv01")
    live.seal_hosts({"srv01": {"state": "done", "outcome": "blocked"}}, finished=True)  # the new seal is built on
    assert record(live.root, "srv01")["outcome"] == "blocked"
    assert "hosts/srv01/planted.txt" not in evidence.current_manifest(live.root)["files"]
    aside = path.with_name("srv01.json~refused-1")
    assert json.loads(aside.read_text())["record"]["outcome"] == "fixed"
    assert not path.with_name("srv01.json~refused-2").exists()
    assert "seals/srv01.json~refused-1: not a seal of a host of this run" in evidence.verify(live.root).problems
