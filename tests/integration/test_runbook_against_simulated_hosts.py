"""The remote half of the runbook end to end: pywinrm -> WS-Management -> simulated Windows -> engine."""

import json

import pytest

from runbook_lib.engine import assess
from runbook_lib.errors import AuthenticationFailed, RemoteScriptFailed
from runbook_lib.plan import RemediationPlan
from runbook_lib.remote.scripts import OPERATIONS, compose, invocation
from runbook_lib.simulator.host import builtin_profile, builtin_profile_names
from runbook_lib.steps import apply_plan, inspect_host, probe_host, reboot_and_wait, session_fix
from runbook_lib.target import connect

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


def test_dry_run_writes_reg_files_but_nothing_on_the_host(simulated, tmp_path):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    host_facts = inspect_host(target)
    before = node.host.snapshot()
    report = apply_plan(target, RemediationPlan.from_verdict(assess(host_facts), host_facts), evidence_dir=tmp_path)
    assert report.dry_run and report.summary().startswith("DRY RUN")
    assert node.host.snapshot() == before
    assert (tmp_path / "fix.reg").exists() and (tmp_path / "rollback.reg").exists()


def test_dropped_connection_during_apply_leaves_a_backup_a_report_and_converges(simulated, tmp_path):
    node = simulated("win7_wmf51")
    node.host.drop_apply_after = 3
    target = connect(node.url)
    host_facts = inspect_host(target)
    plan = RemediationPlan.from_verdict(assess(host_facts), host_facts)
    report = apply_plan(target, plan, apply=True, evidence_dir=tmp_path)
    assert not report.completed and "connection lost" in report.error
    assert [r["status"] for r in report.results].count("written") == 3
    assert [r["status"] for r in report.results].count("not_attempted") == len(plan.changes) - 3
    rollback = (tmp_path / "rollback.reg").read_bytes().decode("utf-16")
    assert rollback.count('"=-') == len(plan.changes), "the host's backup covers every planned value"
    saved = json.loads((tmp_path / "apply-report.json").read_text())
    assert saved["completed"] is False and len(saved["backup"]) == len(plan.changes)
    # A second run converges: it plans only what is still missing and completes.
    second_facts = inspect_host(target)
    second = assess(second_facts)
    assert len(second.changes) == len(plan.changes) - 3
    assert apply_plan(target, RemediationPlan.from_verdict(second, second_facts), apply=True).completed
    assert assess(inspect_host(target)).changes == ()


def test_session_fix_bor_adds_tls12_in_the_same_process(simulated):
    target = connect(simulated("ws2016_untouched").url)
    report = session_fix(target, "bor")
    assert report.security_protocol == (240, 240 | 3072)
    assert report.ok and report.simulated


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
            "reboot": {"delay_s": 5}, "journal": {"apply_id": "clm-1"},
            "restore": {"apply_id": "clm-1", "backup": [{"path": "HKLM\\SOFTWARE\\X", "name": "V", "existed": False,
                                                         "type": None, "data": None, "key_existed": True}]}}


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
