"""The remote half of the runbook end to end: pywinrm -> WS-Management -> simulated Windows -> engine."""

import json

import pytest

from runbook_lib.core.acceptance import LEGACY, entra_answer
from runbook_lib.core.engine import assess
from runbook_lib.core.errors import AuthenticationFailed, RemoteScriptFailed
from runbook_lib.core.facts import probe_from_dict
from runbook_lib.core.plan import RemediationPlan
from runbook_lib.remote.scripts import OPERATIONS, compose, invocation
from runbook_lib.simulator.profile import builtin_profile, builtin_profile_names
from runbook_lib.runbook.operations import apply_plan, inspect_host, probe_host, session_fix
from runbook_lib.runbook.reboot import reboot_and_wait
from runbook_lib.remote.target import connect

PROFILES = [name for name in builtin_profile_names() if builtin_profile(name).intent != "failed"]


@pytest.mark.parametrize("name", PROFILES)
def test_inspect_yields_facts_the_engine_assesses_as_the_profile_intends(name, simulated):
    node = simulated(name)
    target = connect(node.url)
    host_facts = inspect_host(target)
    assert host_facts.simulated and target.simulated
    verdict = assess(host_facts)
    profile = builtin_profile(name)
    assert verdict.outcome == profile.intent
    assert set(verdict.blockers) == set(profile.intent_blockers)
    assert not [f for f in verdict.findings if f.id == "observed.disagrees"], "simulator and engine disagree"


@pytest.mark.parametrize("name", PROFILES)
def test_apply_reboot_probe_fixes_every_fixable_profile_and_leaves_blocked_ones_blocked(name, simulated, tmp_path):
    node = simulated(name)
    target = connect(node.url)
    before = inspect_host(target)
    verdict = assess(before)
    report = apply_plan(target, RemediationPlan.from_verdict(verdict, before), apply=True, evidence_dir=tmp_path)
    assert report.completed and report.error is None
    assert len(report.written) == len(verdict.changes)
    if verdict.restart == "reboot":
        reboot_and_wait(target, poll_s=0.2)
        assert node.host.reboots == 1
    after = assess(inspect_host(target))
    assert after.changes == ()
    probes = probe_host(target)
    if builtin_profile(name).intent == "blocked":
        assert after.blockers
    else:
        assert probes.ok, probes.render_text()
        assert not after.affected


def test_second_apply_changes_nothing_and_says_so(simulated, tmp_path):
    target = connect(simulated("ws2016_untouched").url)
    host_facts = inspect_host(target)
    plan = RemediationPlan.from_verdict(assess(host_facts), host_facts)
    assert apply_plan(target, plan, apply=True).changed_anything
    again = apply_plan(target, plan, apply=True)
    assert not again.changed_anything and again.completed
    assert {r["status"] for r in again.results} == {"unchanged"}
    assert again.summary().startswith("Nothing changed")


def test_plan_under_a_gpo_that_keeps_tls12_off_by_default_leaves_windows_powershell_working(simulated, tmp_path):
    node = simulated("ws2016_tls12_off_default_gpo")
    target = connect(node.url)
    before = inspect_host(target)
    verdict = assess(before)
    assert verdict.clients["windows_powershell"] == "ok"
    assert "guard.change_dropped" in {f.id for f in verdict.findings}
    assert apply_plan(target, RemediationPlan.from_verdict(verdict, before), apply=True, evidence_dir=tmp_path).completed
    if verdict.restart == "reboot":
        reboot_and_wait(target, poll_s=0.2)
    after = inspect_host(target)
    # The simulated host, not the engine, says what a new Windows PowerShell asks for and gets.
    assert after.observed.security_protocol == {"x64": 3072 | 768 | 192, "x86": 3072 | 768 | 192}
    assert [p.protocol for p in after.observed.probes if p.mode == "default"] == ["Tls12"]
    assert assess(after).clients["windows_powershell"] == "ok"


def test_dry_run_writes_reg_files_but_nothing_on_the_host(simulated, tmp_path):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    host_facts = inspect_host(target)
    before = node.host.snapshot()
    report = apply_plan(target, RemediationPlan.from_verdict(assess(host_facts), host_facts), evidence_dir=tmp_path)
    assert report.dry_run and report.summary().startswith("DRY RUN")
    assert node.host.snapshot() == before
    assert (tmp_path / "fix.reg").exists() and (tmp_path / "rollback.reg").exists()


def plan_for(target):
    host_facts = inspect_host(target)
    return RemediationPlan.from_verdict(assess(host_facts), host_facts)


def assert_second_run_converges(target, first_plan, written):
    second_facts = inspect_host(target)
    second = assess(second_facts)
    assert len(second.changes) == len(first_plan.changes) - written
    assert apply_plan(target, RemediationPlan.from_verdict(second, second_facts), apply=True).completed
    assert assess(inspect_host(target)).changes == ()


def test_connection_lost_and_shell_deleted_mid_apply_reports_exactly_what_was_written(simulated, tmp_path):
    node = simulated("win7_wmf51")
    # The network drops after 3 values and is back at once: the transport's shell delete reaches the host and ends
    # the apply process while it waits between writing the 4th value and journaling it.
    node.host.drop_apply_after, node.host.apply_value_s = 3, 0.4
    target = connect(node.url)
    plan = plan_for(target)
    report = apply_plan(target, plan, apply=True, evidence_dir=tmp_path, poll_s=0.2)
    assert not report.completed and "ended part-way" in report.error and "connection lost" in report.recovered
    statuses = [r["status"] for r in report.results]
    assert statuses[:4] == ["written"] * 4 and statuses[4:] == ["not_attempted"] * (len(plan.changes) - 4)
    assert "before it journaled" in report.results[3]["note"]
    written_on_host = [c for c in plan.changes if node.host.registry.get(c.path, c.name) is not None]
    assert len(written_on_host) == 4, "the report says exactly what the host holds"
    rollback = (tmp_path / "rollback.reg").read_bytes().decode("utf-16")
    assert rollback.count('"=-') == len(plan.changes), "the host's backup covers every planned value"
    saved = json.loads((tmp_path / "apply-report.json").read_text())
    assert saved["completed"] is False and len(saved["backup"]) == len(plan.changes) and saved["recovered"]
    assert_second_run_converges(target, plan, 4)


def test_connection_lost_while_the_apply_keeps_writing_waits_for_it_and_reports_it_complete(simulated, tmp_path):
    node = simulated("win7_wmf51")
    # The network stays down for 1.5 s: the shell delete cannot reach the host, the process writes on to the end.
    node.host.drop_apply_after, node.host.network_down_s, node.host.apply_value_s = 3, 1.5, 0.1
    target = connect(node.url)
    plan = plan_for(target)
    report = apply_plan(target, plan, apply=True, evidence_dir=tmp_path, poll_s=0.2)
    assert report.completed and report.error is None and "completed" in report.recovered
    assert [r["status"] for r in report.results] == ["written"] * len(plan.changes)
    assert json.loads((tmp_path / "apply-report.json").read_text())["completed"] is True
    assert assess(inspect_host(target)).changes == ()


def test_connection_lost_before_apply_started_claims_it_so_it_never_writes(simulated):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    plan = plan_for(target)
    node.server.faults.drop_after_requests = 2  # Create is answered; the Command request never is
    before = node.host.snapshot()
    report = apply_plan(target, plan, apply=True, poll_s=0.2)
    assert report.error == "apply did not start: nothing was written" and "claimed" in report.recovered
    assert {r["status"] for r in report.results} == {"not_attempted"} and node.host.snapshot() == before
    with pytest.raises(RemoteScriptFailed, match="already used"):  # an apply that starts late writes nothing
        target.run("apply", {"apply_id": report.apply_id, "changes": [
            {"path": c.path, "name": c.name, "type": c.type, "data": c.data} for c in plan.changes]})
    assert node.host.snapshot() == before


def test_session_fix_bor_adds_tls12_in_the_same_process(simulated):
    target = connect(simulated("ws2016_untouched").url)
    report = session_fix(target, "bor")
    assert report.security_protocol == (240, 240 | 3072)
    assert report.ok and report.simulated
    assert [(p.mode, p.aadsts) for p in report.probes] == [("session", None), ("app", 700016)]


def test_session_fix_on_powershell_2_reports_the_runtime_refusing_tls12(simulated):
    target = connect(simulated("ws2008r2_untouched").url)
    report = session_fix(target, "pin")
    assert report.fix_error == "The requested security protocol is not supported."
    assert report.security_protocol == (240, 240) and not report.ok
    assert [p.aadsts for p in report.probes if p.mode == "app"] == [1002016]


def test_operation_scripts_are_far_past_the_command_line_limit_and_still_run(simulated):
    run = invocation(compose("inspect", {"values": [{"path": "HKLM\\SOFTWARE\\X", "name": "V"}] * 50, "host": "h"}))
    assert run.stdin is not None and len(run.stdin) > 3 * 8191 and len(run.command_line) < 8191
    assert inspect_host(connect(simulated("ws2022_healthy").url)).host


def test_hostile_names_and_values_travel_as_data(simulated):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    hostile = "x'; Remove-Item -Recurse C:\\ ; $(Get-Date) `n \" & echo pwned"
    change = {"path": "HKLM\\SOFTWARE\\Test\\" + hostile.replace("\\", "/"), "name": hostile, "type": "REG_SZ",
              "data": hostile + "\n second line"}
    journal = target.run("apply", {"apply_id": "hostile-1", "changes": [change]})
    assert journal["completed"] and journal["results"][0]["after"]["data"] == change["data"]
    stored = node.host.registry.get(change["path"], change["name"])
    assert stored is not None and stored.data == change["data"]


def test_wrong_password_is_an_authentication_error_without_the_password(simulated, credential, caplog):
    from runbook_lib.remote.credentials import Credential

    node = simulated("ws2016_untouched")
    wrong = Credential(credential.username, credential.password + "-wrong")
    with pytest.raises(AuthenticationFailed) as caught:
        inspect_host(connect(node.url, credential=wrong))
    assert credential.password not in str(caught.value) and credential.password not in caplog.text


CLM_ARGS = {"inspect": {"host": "h", "values": [{"path": "HKLM\\SOFTWARE\\X", "name": "V"}]},
            "apply": {"apply_id": "clm-1", "changes": [{"path": "HKLM\\SOFTWARE\\X", "name": "V", "type": "REG_DWORD",
                                                         "data": 1}]},
            "probe": {"endpoints": ["login.microsoftonline.com:443"]},
            "session_fix": {"mode": "bor", "endpoints": ["login.microsoftonline.com:443"]},
            "reboot": {"delay_s": 5}, "last_boot": {}, "journal": {"apply_id": "clm-1"},
            "restore": {"apply_id": "clm-1", "values": [{"path": "HKLM\\SOFTWARE\\X", "name": "V"}]},
            "preflight": {}}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_constrained_language_host_answers_every_operation_with_one_clear_line_and_changes_nothing(operation,
                                                                                                   simulated):
    node = simulated("ws2019_constrained_language")
    before = node.host.snapshot()
    with pytest.raises(RemoteScriptFailed) as caught:
        connect(node.url).run(operation, CLM_ARGS[operation])
    assert str(caught.value) == (f"127.0.0.1: {operation}: Constrained Language Mode: the runbook needs FullLanguage "
                                 "or a signed script")
    assert node.host.snapshot() == before and node.host.reboots == 0


def run_raw(node, credential, stdin: bytes) -> tuple[bytes, bytes, int]:
    """One process start on the simulated host with exactly these stdin bytes (pywinrm's Protocol, no runbook)."""
    from winrm.protocol import Protocol

    from runbook_lib.remote import POWERSHELL_COMMAND

    protocol = Protocol(node.url, transport="ntlm", username=credential.username, password=credential.password)
    shell = protocol.open_shell()
    try:
        command = protocol.run_command(shell, POWERSHELL_COMMAND, console_mode_stdin=False)
        protocol.send_command_input(shell, command, stdin, end=True)
        return protocol.get_command_output(shell, command)
    finally:
        protocol.close_shell(shell)


def test_simulated_powershell_reads_stdin_as_a_console_does(simulated, credential):
    node = simulated("ws2016_untouched")
    script = compose("probe", {"endpoints": ["login.microsoftonline.com:443"]})
    whole = run_raw(node, credential, invocation(script).stdin)
    assert b"<<<TLS-RUNBOOK-RESULT" in whole[0] and whole[2] == 0
    never_ended = run_raw(node, credential, invocation(script.rstrip("\n")).stdin)
    assert never_ended == (b"", b"", 0), "an unfinished last statement is dropped without a word"
    cut = script.replace("\nfunction ConvertTo-TrJson(", "\n\nfunction ConvertTo-TrJson(", 1)
    stdout, stderr, code = run_raw(node, credential, invocation(cut).stdin)
    assert stdout == b"" and b"Missing closing '}'" in stderr and code == 1


def test_a_journal_folder_a_standard_user_created_is_refused_and_nothing_is_written(simulated, tmp_path):
    from runbook_lib.simulator.journal_folder import JournalFolder

    node = simulated("ws2016_untouched")
    node.host.journal_folder = JournalFolder(owner=("CONTOSO\\jdoe", "S-1-5-21-1004336348-1177238915-682003330-1104"))
    target = connect(node.url)
    plan = plan_for(target)
    before = node.host.snapshot()
    report = apply_plan(target, plan, apply=True, evidence_dir=tmp_path, poll_s=0.1)
    assert "journal folder C:\\ProgramData\\tls-runbook is owned by CONTOSO\\jdoe" in report.error
    assert not report.completed and {r["status"] for r in report.results} == {"not_attempted"}
    assert node.host.snapshot() == before


def test_a_forged_backup_cannot_make_rollback_write_what_the_apply_did_not(simulated, tmp_path):
    from runbook_lib.core import knowledge as k
    from runbook_lib.runbook.operations import rollback_host

    node = simulated("ws2016_untouched")
    target = connect(node.url)
    original = node.host.snapshot()
    report = apply_plan(target, plan_for(target), apply=True, evidence_dir=tmp_path)
    backup = json.loads((tmp_path / "apply-report.json").read_text())["backup"]
    tls10 = k.schannel_key("TLS 1.0", "Client")
    forged = backup + [
        {"path": tls10, "name": "Enabled", "existed": True, "type": "REG_DWORD", "data": 1, "key_existed": True},
        {"path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "name": "evil", "existed": True,
         "type": "REG_SZ", "data": "C:\\evil.exe", "key_existed": True}]
    restored = rollback_host(target, report.apply_id, forged, apply=True)
    statuses = {(r["path"], r["name"]): r["status"] for r in restored.results}
    assert statuses[(tls10, "Enabled")] == "refused"  # managed, but not in the host's own backup
    assert statuses[("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "evil")] == "refused"
    assert restored.completed and sorted(node.host.snapshot(), key=str) == sorted(original, key=str)


def test_restore_and_rollback_reg_undo_an_apply_to_the_same_registry(simulated, tmp_path):
    from runbook_lib.core import regfile
    from runbook_lib.runbook.operations import rollback_host

    node = simulated("win7_wmf51")  # its plan creates keys (SCHANNEL TLS 1.2, .NET) as well as values
    target = connect(node.url)
    original = node.host.registry
    report = apply_plan(target, plan_for(target), apply=True, evidence_dir=tmp_path)
    applied = node.host.registry
    by_file = regfile.apply(applied, regfile.parse((tmp_path / "rollback.reg").read_bytes()))
    backup = json.loads((tmp_path / "apply-report.json").read_text())["backup"]
    assert rollback_host(target, report.apply_id, backup, apply=True).completed
    assert node.host.registry == by_file == original
    assert "[-HKEY" not in (tmp_path / "rollback.reg").read_bytes().decode("utf-16")


def test_session_fix_in_a_clr2_powershell_is_refused_as_on_windows_unless_the_tls12_hotfix_is_there(simulated,
                                                                                                         credential):
    import dataclasses

    from runbook_lib.simulator.fleet import start_node

    args = {"mode": "bor", "endpoints": ["login.microsoftonline.com:443"]}
    node = simulated("ws2008r2_untouched")  # Windows PowerShell 2.0 on .NET 3.5.1, no KB3154518
    data = connect(node.url).run("session_fix", args)
    assert data["error"] == "The requested security protocol is not supported."
    assert data["after"] == data["before"] == 240
    session = [p for p in data["probes"] if p["mode"] == "session"]
    assert [(p["ok"], p["protocol"]) for p in session] == [(True, "Tls")]  # TLS 1.0 completes; Entra refuses it
    assert [entra_answer(probe_from_dict(p, "probe")).outcome for p in session] == [LEGACY]
    profile = builtin_profile("ws2008r2_untouched")
    patched = dataclasses.replace(profile, state={**profile.state, "hotfixes": ["KB976902", "KB3154518"]})
    node = start_node(patched, [(credential.username, credential.password)], strict=True)
    try:
        data = connect(node.url).run("session_fix", args)
    finally:
        node.stop()
    assert data["error"] is None and data["after"] == 240 | 3072


def test_a_value_whose_data_does_not_fit_its_kind_is_a_warning_not_a_failed_inspect(credential):
    import dataclasses

    from runbook_lib.core import knowledge as k
    from runbook_lib.simulator.fleet import start_node

    key = k.schannel_key("TLS 1.2", "Client")
    profile = dataclasses.replace(builtin_profile("win7_wmf51"), faults={
        "malformed_values": [{"path": key, "name": "Enabled", "reads_as": "Int64"}]})
    node = start_node(profile, [(credential.username, credential.password)], strict=True)
    try:
        target = connect(node.url)
        args = {"values": [{"path": p, "name": n} for p, n in k.values_read()], "host": "h"}
        outcome = target.transport.run("inspect", args)
        assert f"left out {key}\\Enabled: REG_DWORD whose data is not 4 bytes (reads as Int64)" in outcome.warnings
        plan = plan_for(target)
        assert any(c.path == key and c.name == "Enabled" for c in plan.changes)
        before = node.host.snapshot()
        report = apply_plan(target, plan, apply=True, poll_s=0.1)
        assert "cannot be backed up (REG_DWORD whose data is not 4 bytes" in report.error
        assert node.host.snapshot() == before
    finally:
        node.stop()
