"""An administrative-template GPO on a simulated host, end to end over WinRM: detected through RSoP, never written,
never reported fixed, and a local write to it undone by Group Policy's refresh (gpupdate /force and the timer)."""

import time

import winrm

from runbook_lib.core import knowledge as k
from runbook_lib.core.engine import assess
from runbook_lib.core.plan import RemediationPlan
from runbook_lib.runbook.operations import apply_plan, inspect_host
from runbook_lib.remote.target import connect

PROFILE = "ws2016_tls12_disabled_by_admx"
SCH_CLIENT = k.schannel_key("TLS 1.2", "Client")
NO_TIMER = (3600.0, 0.0)


def write_locally(target, data):
    """A hand-made local write (the runbook never plans one for a policy value)."""
    target.run("apply", {"apply_id": f"by-hand-{data}", "changes": [
        {"path": SCH_CLIENT, "name": "Enabled", "type": "REG_DWORD", "data": data}]})


def test_admin_template_gpo_is_detected_through_rsop_blocks_and_its_value_is_not_written(simulated, tmp_path):
    target = connect(simulated(PROFILE, policy_refresh_s=NO_TIMER).url)
    host_facts = inspect_host(target)
    [setting] = host_facts.group_policy.rsop
    assert setting.path == SCH_CLIENT and setting.gpo_name == "Server security baseline"
    assert not SCH_CLIENT.upper().startswith("HKLM\\SOFTWARE\\POLICIES")
    verdict = assess(host_facts)
    assert verdict.blockers == ("gpo.managed",)
    report = apply_plan(target, RemediationPlan.from_verdict(verdict, host_facts), apply=True, evidence_dir=tmp_path)
    assert report.completed and all(not r["path"].startswith("HKLM\\SYSTEM") for r in report.results)
    after = assess(inspect_host(target))
    assert after.outcome == "blocked" and after.affected


def test_local_write_is_reverted_by_gpupdate_force_and_the_runbook_never_calls_the_host_fixed(simulated, credential):
    node = simulated(PROFILE, policy_refresh_s=NO_TIMER)
    target = connect(node.url)
    write_locally(target, 1)
    written = inspect_host(target)
    assert written.registry.dword(SCH_CLIENT, "Enabled") == 1
    verdict = assess(written)
    assert verdict.outcome == "blocked" and "gpo.local_change_reverted" in {f.id for f in verdict.findings}
    session = winrm.Session(node.url, auth=(credential.username, credential.password), transport="ntlm")
    result = session.run_cmd("gpupdate", ["/target:computer", "/force"])
    assert result.status_code == 0
    assert b"Computer Policy update has completed successfully." in result.std_out
    assert inspect_host(target).registry.dword(SCH_CLIENT, "Enabled") == 0


def test_background_refresh_timer_reverts_a_local_write_while_the_host_runs(simulated):
    node = simulated(PROFILE, policy_refresh_s=(0.3, 0.2))
    target = connect(node.url)
    write_locally(target, 1)
    seen = node.host.policy_refreshes  # any refresh counted after this one ran after the write
    deadline = time.monotonic() + 15
    while node.host.policy_refreshes == seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.host.policy_refreshes > seen
    assert inspect_host(target).registry.dword(SCH_CLIENT, "Enabled") == 0
