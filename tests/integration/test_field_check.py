"""tls-runbook check: every operation a run uses, read-only, one screen, against simulated hosts over real WinRM."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from runbook_lib.runbook.check import CheckItem, check_host
from runbook_lib.cli import main
from runbook_lib.remote.recording import replay_host
from runbook_lib.remote.scripts import LANGUAGE_MODE_ERROR
from runbook_lib.remote.transport import LARGEST_REQUEST_KB
from runbook_lib.simulator.fleet import SimulatedFleet, start_node
from runbook_lib.simulator.profile import builtin_profile, builtin_profile_names
from runbook_lib.simulator.journal_folder import JournalFolder
from runbook_lib.remote.target import connect

OPERATIONS = ["connect", "language mode", "inspect", "probe tcp", "probe default", "probe tls12", "probe app",
              "probe session", "journal folder", "WinRM quotas"]  # written out: the screen's order is a promise
STANDARD_USER = ("CONTOSO\\jdoe", "S-1-5-21-1004336348-1177238915-682003330-1104")


@pytest.fixture(scope="module")
def fleet(password):
    """One simulated host per built-in profile, started once for the module (strict Windows defaults)."""
    profiles = [builtin_profile(name) for name in builtin_profile_names()]
    with SimulatedFleet(profiles, [("runbook-admin", password)], strict=True) as running:
        yield {node.host.profile.name: node for node in running.nodes}


def host_state(host) -> tuple:
    """Everything on a simulated host a run could change: registry (live and as loaded at boot), Group Policy
    processing, the journal folder and its files, boots and scheduled shutdowns."""
    with host._lock:
        folder = host.journal_folder
        return (host.snapshot(), list(host.boot_registry), host.policy_refreshes, set(host.policy._applied_once),
                None if folder is None else copy.deepcopy((folder.owner, folder.writers, folder.files)),
                host.reboots, host.last_boot, host.shutdown_scheduled)


def check(capsys, *args) -> tuple[int, list[str], str]:
    code = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def rows(lines: list[str]) -> dict[str, tuple[str, str]]:
    """{operation: (status, why)} from the screen's indented lines."""
    found = {}
    for line in lines:
        if line.startswith("  "):
            status, rest = line[2:15].strip(), line[17:]
            name = next(op for op in OPERATIONS if rest.startswith(op))
            found[name] = (status, rest[len(name):].strip())
    return found


@pytest.mark.parametrize("name", builtin_profile_names())
def test_check_prints_one_screen_for_every_profile_and_changes_nothing(name, fleet, credential, capsys):
    node = fleet[name]
    before = host_state(node.host)
    code, lines, err = check(capsys, node.url)
    failed = builtin_profile(name).intent == "failed"  # the runbook's scripts cannot run there
    assert code == (1 if failed else 0), "\n".join(lines)
    assert err == "" and len(lines) <= 16
    screen = rows(lines)
    assert list(screen) == OPERATIONS
    assert all(status == ("will not work" if failed and op != "connect" else "works")
               for op, (status, _) in screen.items()), "\n".join(lines)
    # Under Constrained Language Mode no script answers, so nothing can say SIMULATED (a real host says no more).
    assert (lines[0] == "*** SIMULATED HOST: not a real Windows machine ***") is not failed
    assert lines[-1].startswith("Read-only: nothing on the host was changed.")
    assert host_state(node.host) == before


def test_a_constrained_language_host_exits_1_with_the_reason_on_every_operation(fleet, credential, capsys):
    code, lines, _ = check(capsys, fleet["ws2019_constrained_language"].url)
    screen = rows(lines)
    assert code == 1 and screen["connect"][0] == "works"
    assert screen["language mode"] == ("will not work", f"{LANGUAGE_MODE_ERROR} (AppLocker or WDAC enforces it); "
                                                        "every script stops at the loader's check")
    assert all(why.endswith(LANGUAGE_MODE_ERROR) for op, (_, why) in screen.items()
               if op not in ("connect", "language mode"))


def test_an_affected_host_passes_and_the_screen_says_it_is_affected(fleet, credential, capsys):
    code, lines, _ = check(capsys, fleet["win7_wmf51"].url)
    assert code == 0
    assert rows(lines)["probe default"] == ("works", "login.microsoftonline.com:443 TLS 1.0 with Aes256 (SHA1, ECDHE), "
                                                     "Entra REFUSED: AADSTS1002016")
    assert any(line.startswith("AADSTS1002016: this host is affected") for line in lines)


def test_a_journal_folder_a_standard_user_owns_is_a_will_not_work_with_its_reason(simulated, credential, capsys):
    node = simulated("ws2016_untouched")
    node.host.journal_folder = JournalFolder(owner=STANDARD_USER)
    before = host_state(node.host)
    code, lines, _ = check(capsys, node.url)
    status, why = rows(lines)["journal folder"]
    assert code == 1 and status == "will not work"
    assert why.startswith("apply would refuse it: journal folder C:\\ProgramData\\tls-runbook is owned by "
                          "CONTOSO\\jdoe (S-1-5-21-") and "remove it" in why
    assert [op for op, (s, _) in rows(lines).items() if s != "works"] == ["journal folder"]
    assert host_state(node.host) == before


def test_a_protected_journal_folder_is_reported_with_its_owner(simulated, credential, capsys):
    node = simulated("ws2016_untouched")
    node.host.journal_folder = JournalFolder()
    code, lines, _ = check(capsys, node.url)
    assert code == 0 and rows(lines)["journal folder"] == (
        "works", "C:\\ProgramData\\tls-runbook is owned by BUILTIN\\Administrators (S-1-5-32-544); only SYSTEM and "
                 "Administrators may change it")


def test_a_shell_too_small_for_inspects_child_powershell_means_a_run_does_not_fit(credential, capsys):
    profile = dataclasses.replace(builtin_profile("ws2008r2_untouched"), winrm={"max_processes_per_shell": 2})
    node = start_node(profile, [(credential.username, credential.password)], strict=True)
    try:
        code, lines, _ = check(capsys, node.url)
    finally:
        node.stop()
    status, why = rows(lines)["WinRM quotas"]
    assert code == 1 and status == "will not work"
    assert why.startswith("inspect could not read SecurityProtocol in a child Windows PowerShell (x64, x86): a run "
                          "needs 3 processes and about 90 MB in one shell; MaxShellsPerUser 5, MaxProcessesPerShell 2,")
    assert rows(lines)["inspect"][0] == "works" and "SecurityProtocol could not be read" in rows(lines)["inspect"][1]


PREFLIGHT_FOLDER = {"path": "C:\\ProgramData\\tls-runbook", "exists": False, "owner": None, "problem": None}
UNREADABLE_QUOTAS = {"available": False, "reason": "WSMan:\\localhost could not be read: Access is denied.",
                     "max_shells_per_user": None, "max_processes_per_shell": None, "max_memory_per_shell_mb": None,
                     "shell_idle_timeout_s": None, "max_envelope_kb": None, "policy": []}


@pytest.mark.parametrize("winrm, status, says", [
    (UNREADABLE_QUOTAS, "works", "not readable (WSMan:\\localhost could not be read: Access is denied.); the runbook "
                                 "assumes WinRM 2.0's 5 shells per user"),
    ({**UNREADABLE_QUOTAS, "available": True, "reason": None, "max_shells_per_user": 2, "max_processes_per_shell": 0,
      "max_memory_per_shell_mb": 0, "shell_idle_timeout_s": 7200.0, "max_envelope_kb": 40,
      "policy": ["max_shells_per_user"]},
     "will not work", f"MaxEnvelopeSizekb 40 is below the {LARGEST_REQUEST_KB} KB of the runbook's largest request"),
    ({**UNREADABLE_QUOTAS, "available": True, "reason": None, "max_shells_per_user": 2, "max_processes_per_shell": 0,
      "max_memory_per_shell_mb": 0, "shell_idle_timeout_s": 7200.0, "max_envelope_kb": 500,
      "policy": ["max_shells_per_user"]},
     "works", "MaxShellsPerUser 2, MaxProcessesPerShell no limit, MaxMemoryPerShellMB no limit, IdleTimeout 7200 s, "
              "MaxEnvelopeSizekb 500 (MaxShellsPerUser set by Group Policy)"),
])
def test_quotas_are_judged_from_what_the_host_reports(simulated, credential, capsys, monkeypatch, winrm, status, says):
    node = simulated("ws2016_untouched")
    monkeypatch.setattr(node.host, "_op_preflight", lambda args: {"os": None, "journal_folder": PREFLIGHT_FOLDER,
                                                                  "winrm": winrm})
    _, lines, _ = check(capsys, node.url)
    assert rows(lines)["WinRM quotas"][0] == status and says in rows(lines)["WinRM quotas"][1]


def test_an_answer_that_breaks_its_contract_is_a_will_not_work_not_a_guess(simulated, credential, capsys,
                                                                            monkeypatch):
    node = simulated("ws2016_untouched")
    broken = {**UNREADABLE_QUOTAS, "available": True}  # "available" with no quota in it: no real script says that
    monkeypatch.setattr(node.host, "_op_preflight", lambda args: {"os": None, "journal_folder": PREFLIGHT_FOLDER,
                                                                  "winrm": broken})
    code, lines, _ = check(capsys, node.url)
    for name in ("journal folder", "WinRM quotas"):
        status, why = rows(lines)[name]
        assert status == "will not work" and "breaks the contract in runbook_lib/remote/schemas/preflight.schema.json" in why
    assert code == 1 and rows(lines)["inspect"][0] == "works"


def test_an_https_listener_that_speaks_only_tls_10_is_named_and_nothing_else_is_tried(simulated, credential, capsys):
    old = simulated("win7_wmf51", https=True)
    code, lines, _ = check(capsys, old.url, "--ca-trust-path", old.server.ca_path)
    screen = rows(lines)
    assert code == 1 and screen["connect"][0] == "will not work"
    assert screen["connect"][1].startswith(f"an HTTPS listener that speaks only old TLS: {old.url} offers only TLS 1.0")
    assert {status for op, (status, _) in screen.items() if op != "connect"} == {"not checked"}
    modern = simulated("ws2016_untouched", https=True, address="127.0.0.2")
    code, lines, _ = check(capsys, modern.url, "--ca-trust-path", modern.server.ca_path)
    assert code == 0 and rows(lines)["connect"] == (
        "works", "HTTPS listener speaks TLS 1.2, NTLM: a shell opened and Windows PowerShell started")


def test_an_unreachable_host_is_one_line_and_nothing_else_is_tried(credential):
    target = connect("http://127.0.0.1:9/wsman")
    target.transport.connect_retries = 0  # the command line retries three times with backoff first
    report = check_host(target)
    assert not report.ok and report.items[0] == CheckItem("connect", "will not work",
                                                          "cannot connect to http://127.0.0.1:9/wsman")
    assert {item.status for item in report.items[1:]} == {"not checked"} and report.read == ()
    assert "will not work" in report._repr_html_() and "SIMULATED" not in report._repr_html_()


@pytest.mark.parametrize("args", [["ftp://x/wsman"], ["srv01"], ["http://h:5985/wsman", "--endpoint", "no port"],
                                  ["http://h:5985/wsman", "--auth", "digest"]])
def test_bad_input_exits_2_with_one_line_and_touches_no_host(args, credential, capsys):
    code, lines, err = check(capsys, *args)
    assert code == 2 and lines == [] and len(err.strip().splitlines()) == 1 and err.startswith("tls-runbook: error:")


def test_without_a_credential_the_check_is_bad_input(monkeypatch, capsys):
    monkeypatch.delenv("TLS_RUNBOOK_USER", raising=False)
    monkeypatch.delenv("TLS_RUNBOOK_PASSWORD", raising=False)
    code, lines, err = check(capsys, "http://127.0.0.1:5985/wsman")
    assert code == 2 and lines == [] and "TLS_RUNBOOK" in err and len(err.strip().splitlines()) == 1


def test_a_recorded_check_replays_to_the_same_results_and_its_largest_request_fits_the_bound(fleet, credential,
                                                                                             capsys, tmp_path):
    node = fleet["ws2008r2_untouched"]
    code, _, _ = check(capsys, node.url, "--record", tmp_path)
    assert code == 0
    [folder] = list(tmp_path.iterdir())
    replayed = replay_host(folder)
    assert [item.operation.operation for item in replayed] == ["preflight", "inspect", "probe", "session_fix"]
    assert replayed[0].data["winrm"]["max_envelope_kb"] == 150  # WinRM 2.0, read back through the contract
    largest = max(len(exchange.request.encode()) for item in replayed for exchange in item.operation.exchanges)
    assert largest > 32 * 1024 and largest <= LARGEST_REQUEST_KB * 1024


def test_the_preflight_contract_takes_an_os_as_inspect_reports_it_or_null_and_nothing_else(fleet, credential):
    from runbook_lib.remote.contract import contract_problem

    answer = connect(fleet["win7_wmf51"].url).run("preflight", {})
    assert contract_problem("preflight", answer) is None
    assert contract_problem("preflight", {**answer, "os": None}) is None  # WMI unreadable: said in a warning
    for broken in ({}, {**answer["os"], "caption": 7}, {**answer["os"], "last_boot": "yesterday"}):
        assert contract_problem("preflight", {**answer, "os": broken}) is not None, broken
