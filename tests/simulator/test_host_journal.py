"""The simulated host's journal, journal folder and restore answer as apply.ps1, journal.ps1 and restore.ps1 do."""

from __future__ import annotations

import json

import pytest

from runbook_lib.core.errors import RemoteScriptFailed
from runbook_lib.remote import POWERSHELL_COMMAND, compose, invocation, read_output
from runbook_lib.simulator.host import SimulatedHost
from runbook_lib.simulator.profile import builtin_profile
from runbook_lib.simulator.journal_folder import JournalFolder

KEY = "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319"
CHANGES = [{"path": KEY, "name": "SchUseStrongCrypto", "type": "REG_DWORD", "data": 1},
           {"path": KEY, "name": "SystemDefaultTlsVersions", "type": "REG_DWORD", "data": 1}]
STANDARD_USER = ("CONTOSO\\jdoe", "S-1-5-21-1004336348-1177238915-682003330-1104")
USERS = ("BUILTIN\\Users", "S-1-5-32-545")


def run(host: SimulatedHost, operation: str, args: dict) -> dict:
    """One operation delivered exactly as over WinRM, read back as the transport reads it."""
    answer = host(POWERSHELL_COMMAND, invocation(compose(operation, args)).stdin)
    return read_output(operation, answer.stdout, answer.stderr, answer.exit_code).data


@pytest.fixture
def host() -> SimulatedHost:
    return SimulatedHost(builtin_profile("ws2016_untouched"), "web01")


def test_no_journal_is_a_state_not_an_error_and_not_an_empty_document(host):
    data = run(host, "journal", {"apply_id": "never-ran"})
    assert data["state"] == "absent" and data["journal"] is None and host.journal_folder is None


def test_a_claim_where_no_journal_is_keeps_a_late_apply_from_writing(host):
    before = host.snapshot()
    assert run(host, "journal", {"apply_id": "late-1", "claim_if_absent": True})["state"] == "claimed"
    with pytest.raises(RemoteScriptFailed, match="already used"):
        run(host, "apply", {"apply_id": "late-1", "changes": CHANGES})
    assert host.snapshot() == before
    assert run(host, "journal", {"apply_id": "late-1"})["state"] == "claimed"


def test_journal_names_the_apply_process_and_the_live_values(host):
    applied = run(host, "apply", {"apply_id": "a-1", "changes": CHANGES})
    data = run(host, "journal", {"apply_id": "a-1"})
    assert data["state"] == "present" and data["journal"]["revision"] == applied["revision"] > 1
    assert data["journal"]["completed"] and data["apply_running"] is False  # the process has ended
    assert [c["value"] for c in data["current"]] == [{"type": "REG_DWORD", "data": 1}] * 2


def test_the_newest_copy_that_parses_wins_whichever_file_it_is_in(host):
    run(host, "apply", {"apply_id": "a-2", "changes": CHANGES})
    files = host.journal_folder.files
    newer = json.loads(files["a-2.json"])
    newer["revision"] += 1
    newer["journal_error"] = "from the newer copy"
    files["a-2.json.tmp"] = json.dumps(newer)
    assert run(host, "journal", {"apply_id": "a-2"})["journal"]["journal_error"] == "from the newer copy"
    files["a-2.json.tmp"] = files["a-2.json.tmp"][:40]  # torn: the process ended while writing it
    assert run(host, "journal", {"apply_id": "a-2"})["journal"]["journal_error"] is None


@pytest.mark.parametrize("folder, says", [
    (JournalFolder(owner=STANDARD_USER), "is owned by CONTOSO\\jdoe (S-1-5-21-"),
    (JournalFolder(writers=(USERS,)), "lets BUILTIN\\Users (S-1-5-32-545) change it"),
])
def test_a_journal_folder_someone_else_could_have_planted_is_refused_by_every_journal_operation(host, folder, says):
    host.journal_folder = folder
    before = host.snapshot()
    for operation, args in [("apply", {"apply_id": "a-3", "changes": CHANGES}), ("journal", {"apply_id": "a-3"}),
                            ("restore", {"apply_id": "a-3", "values": [{"path": KEY, "name": "SchUseStrongCrypto"}]})]:
        with pytest.raises(RemoteScriptFailed) as caught:
            run(host, operation, args)
        assert says in str(caught.value) and "planted" in str(caught.value)
    assert host.snapshot() == before and folder.files == {}


def test_restore_takes_the_backup_from_the_hosts_journal_and_touches_only_what_the_apply_wrote(host):
    original = host.snapshot()
    run(host, "apply", {"apply_id": "a-4", "changes": CHANGES[:1]})
    other = "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v2.0.50727"
    asked = [{"path": KEY, "name": "SchUseStrongCrypto"}, {"path": other, "name": "SchUseStrongCrypto"}]
    data = run(host, "restore", {"apply_id": "a-4", "values": asked})
    assert [r["status"] for r in data["results"]] == ["deleted", "refused"]
    assert host.snapshot() == original


def test_restore_undoes_a_write_the_process_made_but_never_journaled(host):
    original = host.snapshot()
    run(host, "apply", {"apply_id": "a-5", "changes": CHANGES})
    journal = json.loads(host.journal_folder.files["a-5.json"])
    journal["results"][1].update(status="not_attempted", after=None)  # as if it ended between write and save
    host.journal_folder.files["a-5.json"] = json.dumps(journal)
    values = [{"path": c["path"], "name": c["name"]} for c in CHANGES]
    assert [r["status"] for r in run(host, "restore", {"apply_id": "a-5", "values": values})["results"]] == \
        ["deleted", "deleted"]
    assert host.snapshot() == original


def test_a_scheduled_restart_begins_after_the_delay_shutdown_exe_was_given(host, monkeypatch):
    """shutdown.exe /r /t 5 keeps WinRM up for five seconds, long enough for the answer that scheduled it to get out.
    The simulated host used to go down after two: a loaded client lost that answer ("connection lost after the
    command was sent") where a real host would have given it."""
    from runbook_lib.simulator import host as host_module

    timers = []

    class Timer:
        def __init__(self, interval, function):
            timers.append((interval, function))

        def start(self):
            pass

    monkeypatch.setattr(host_module.threading, "Timer", Timer)
    assert run(host, "reboot", {"delay_s": 5})["scheduled"]
    assert [interval for interval, _ in timers] == [5.0] and timers[0][1] == host.reboot


def test_a_second_restart_asked_for_while_one_is_pending_is_refused_until_the_host_has_booted(host, monkeypatch):
    """Windows keeps one pending shutdown: shutdown.exe /r asked again before it happens exits 1190 ("A system
    shutdown has already been scheduled"); after the boot a restart can be scheduled again."""
    from runbook_lib.simulator import host as host_module

    pending = []
    monkeypatch.setattr(host_module.threading, "Timer", lambda interval, function: pending.append(function) or
                        type("Started", (), {"start": lambda self: None})())
    first = run(host, "reboot", {"delay_s": 5})
    second = run(host, "reboot", {"delay_s": 5})
    assert first["scheduled"] and not second["scheduled"] and second["already_scheduled"]
    assert len(pending) == 1
    host.on_reboot = None
    pending[0]()  # the restart begins
    assert host.reboots == 1 and run(host, "reboot", {"delay_s": 5})["scheduled"]
