"""Group Policy on a simulated host behaves as on Windows: GPOs write their values again when policy is processed.

Before this, the simulator echoed a profile's ``policy: true`` flags and re-applied policy values only at boot,
so a local write to a policy value looked permanent and RSoP-delivered values looked like Policies paths.
"""

from __future__ import annotations

import time
import uuid

import pytest

from runbook_lib.core import facts
from runbook_lib.core import knowledge as k
from runbook_lib.core.errors import InputError
from runbook_lib.remote import scripts
from runbook_lib.simulator.host import SimulatedHost
from runbook_lib.simulator.profile import HostProfile, builtin_profile

SCH_CLIENT = k.schannel_key("TLS 1.2", "Client")
NET4 = k.netfx_key(k.CLR4, False)
WOW4 = k.netfx_key(k.CLR4, True)
NO_GPO_LIST_CHANGES = ("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\Group Policy\\"
                       "{35378EAC-683F-11D2-A89A-00C04FBBCFA2}", "NoGPOListChanges")
GUID = "{11111111-2222-3333-4444-555555555555}"


def run(host: SimulatedHost, operation: str, args: dict) -> dict:
    """Through the host's command handler, as a WinRM command reaches it."""
    invocation = scripts.invocation(scripts.compose(operation, args))
    result = host(invocation.command_line, invocation.stdin or b"")
    return scripts.read_output(operation, result.stdout, result.stderr, result.exit_code).data


def inspect(host: SimulatedHost) -> facts.HostFacts:
    values = [{"path": path, "name": name} for path, name in k.values_read()]
    return facts.from_dict(run(host, "inspect", {"host": "sim", "values": values}))


def local_write(host: SimulatedHost, path: str, name: str, data: int) -> None:
    """What an administrator's regedit (or an old runbook) does: a plain local write."""
    run(host, "apply", {"apply_id": f"local-{uuid.uuid4().hex[:8]}", "changes": [{"path": path, "name": name, "type": "REG_DWORD",
                                                           "data": data}]})


def host_with(gpos: list[dict], registry: list[dict] = ()) -> SimulatedHost:
    base = builtin_profile("ws2016_untouched")
    state = {**base.state, "registry": [*base.state["registry"], *registry]}
    doc = {"name": "test", "description": "test", "intent": {"outcome": "fixable"}, "state": state,
           "group_policy": {"gpos": gpos}}
    return SimulatedHost(HostProfile.from_dict(doc, "test.json"), "sim")


def test_admin_template_value_is_reported_through_rsop_and_flagged_policy():
    host_facts = inspect(SimulatedHost(builtin_profile("ws2016_tls12_disabled_by_admx"), "sim"))
    value = host_facts.registry.get(SCH_CLIENT, "Enabled")
    assert value.data == 0 and value.policy and not value.path.upper().startswith("HKLM\\SOFTWARE\\POLICIES")
    [setting] = host_facts.group_policy.rsop
    assert (setting.name, setting.data, setting.precedence, setting.gpo_name) == \
        ("Enabled", 0, 1, "Server security baseline")
    assert host_facts.group_policy.rsop_available and host_facts.group_policy.preferences == ()


def test_profile_cannot_declare_a_policy_flag_the_host_would_not_show():
    base = builtin_profile("ws2016_untouched")
    state = {**base.state, "registry": [*base.state["registry"], {"path": SCH_CLIENT, "name": "Enabled",
                                                                   "type": "REG_DWORD", "data": 0, "policy": True}]}
    with pytest.raises(InputError, match="declare the GPO"):
        HostProfile.from_dict({"name": "x", "description": "x", "intent": {"outcome": "blocked"}, "state": state},
                              "x.json")


def test_local_write_to_an_admin_template_value_is_reverted_by_the_next_background_refresh():
    host = SimulatedHost(builtin_profile("ws2016_tls12_disabled_by_admx"), "sim")
    local_write(host, SCH_CLIENT, "Enabled", 1)
    assert inspect(host).registry.dword(SCH_CLIENT, "Enabled") == 1
    host.refresh_policy()  # the baseline sets "process even if the GPOs have not changed"
    assert inspect(host).registry.dword(SCH_CLIENT, "Enabled") == 0


def test_background_refresh_skips_unchanged_admin_templates_but_gpupdate_force_writes_them():
    host = host_with([{"guid": GUID, "name": "templates only", "administrative_templates": [
        {"path": SCH_CLIENT, "name": "Enabled", "type": "REG_DWORD", "data": 0}]}])
    local_write(host, SCH_CLIENT, "Enabled", 1)
    host.refresh_policy()
    assert host.registry.dword(SCH_CLIENT, "Enabled") == 1
    host.refresh_policy(force=True)
    assert host.registry.dword(SCH_CLIENT, "Enabled") == 0


def test_timer_refresh_reverts_a_local_write_on_its_own():
    host = SimulatedHost(builtin_profile("ws2016_tls12_disabled_by_admx"), "sim")
    local_write(host, SCH_CLIENT, "Enabled", 1)
    host.start_policy_refresh(0.05, 0.05, seed=7)
    try:
        deadline = time.monotonic() + 10
        while host.policy_refreshes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        host.stop_policy_refresh()
    assert host.policy_refreshes >= 1
    assert host.registry.dword(SCH_CLIENT, "Enabled") == 0


def test_preference_actions_disabled_targeting_and_apply_once_as_windows_processes_them():
    items = [
        {"path": NET4, "name": "SchUseStrongCrypto", "action": "U", "type": "REG_DWORD", "data": 0},
        {"path": NET4, "name": "SystemDefaultTlsVersions", "action": "D"},
        {"path": WOW4, "name": "SchUseStrongCrypto", "action": "C", "type": "REG_DWORD", "data": 0},
        {"path": WOW4, "name": "SystemDefaultTlsVersions", "action": "U", "type": "REG_DWORD", "data": 0,
         "disabled": True},
        {"path": SCH_CLIENT, "name": "Enabled", "action": "U", "type": "REG_DWORD", "data": 0,
         "filters": ["FilterOrgUnit"], "applies": False},
        {"path": SCH_CLIENT, "name": "DisabledByDefault", "action": "U", "type": "REG_DWORD", "data": 0,
         "filters": ["FilterRunOnce"]},
    ]
    host = host_with([{"guid": GUID, "name": "preferences", "preferences": items}])
    assert host.registry.dword(SCH_CLIENT, "DisabledByDefault") == 0  # applied once, at boot
    for path, name in ((NET4, "SchUseStrongCrypto"), (NET4, "SystemDefaultTlsVersions"), (WOW4, "SchUseStrongCrypto"),
                       (WOW4, "SystemDefaultTlsVersions"), (SCH_CLIENT, "Enabled"), (SCH_CLIENT, "DisabledByDefault")):
        local_write(host, path, name, 1)
    host.refresh_policy()  # preferences are written at every processing, changed GPO or not
    reg = host.registry
    assert reg.dword(NET4, "SchUseStrongCrypto") == 0  # Update: back to the item's data
    assert reg.get(NET4, "SystemDefaultTlsVersions") is None  # Delete: gone again
    assert reg.dword(WOW4, "SchUseStrongCrypto") == 1  # Create: only ever makes a missing value
    assert reg.dword(WOW4, "SystemDefaultTlsVersions") == 1  # disabled item: never applied
    assert reg.dword(SCH_CLIENT, "Enabled") == 1  # targeting does not match this host
    assert reg.dword(SCH_CLIENT, "DisabledByDefault") == 1  # applied once at boot, not again


def test_preference_items_are_reported_with_action_disabled_and_uncertain_targeting():
    items = [
        {"path": NET4, "name": "SchUseStrongCrypto", "action": "D"},
        {"path": WOW4, "name": "SchUseStrongCrypto", "action": "U", "type": "REG_DWORD", "data": 0,
         "disabled": True},
        {"path": SCH_CLIENT, "name": "Enabled", "action": "U", "type": "REG_DWORD", "data": 0,
         "filters": ["FilterWmi", "FilterRunOnce"], "applies": True},
        {"path": "HKLM\\SOFTWARE\\Unrelated", "name": "Value", "action": "U", "type": "REG_DWORD", "data": 0},
    ]
    gp = inspect(host_with([{"guid": GUID, "name": "preferences", "preferences": items}])).group_policy
    by_name = {(i.path, i.name): i for i in gp.preferences}
    assert set(by_name) == {(NET4, "SchUseStrongCrypto"), (WOW4, "SchUseStrongCrypto"), (SCH_CLIENT, "Enabled")}
    assert by_name[NET4, "SchUseStrongCrypto"].action == "D"
    assert by_name[WOW4, "SchUseStrongCrypto"].disabled
    targeted = by_name[SCH_CLIENT, "Enabled"]
    assert (targeted.targeting, targeted.filters, targeted.run_once) == ("uncertain", ("FilterWmi",), True)
    assert all(i.gpo_id == GUID and i.gpo_name == "preferences" for i in gp.preferences)


def test_rsop_logging_turned_off_by_policy_makes_rsop_not_available():
    host = host_with([{"guid": GUID, "name": "no rsop", "administrative_templates": [
        {"path": "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\System", "name": "RSoPLogging", "type": "REG_DWORD",
         "data": 0},
        {"path": SCH_CLIENT, "name": "Enabled", "type": "REG_DWORD", "data": 0}]}])
    host_facts = inspect(host)
    gp = host_facts.group_policy
    assert not gp.rsop_available and "RSoPLogging=0" in gp.rsop_reason and gp.rsop == ()
    assert not host_facts.registry.get(SCH_CLIENT, "Enabled").policy  # invisible, as on Windows


def test_the_winning_gpo_writes_last_and_rsop_ranks_it_first():
    setting = {"path": SCH_CLIENT, "name": "Enabled", "type": "REG_DWORD"}
    host = host_with([{"guid": GUID, "name": "winner", "administrative_templates": [{**setting, "data": 0}]},
                      {"guid": "{99999999-2222-3333-4444-555555555555}", "name": "loser",
                       "administrative_templates": [{**setting, "data": 1}]}])
    assert host.registry.dword(SCH_CLIENT, "Enabled") == 0
    ranks = {s.gpo_name: s.precedence for s in inspect(host).group_policy.rsop}
    assert ranks == {"winner": 1, "loser": 2}


def test_gpupdate_runs_a_refresh_and_answers_as_windows_prints_it():
    host = SimulatedHost(builtin_profile("ws2016_tls12_disabled_by_admx"), "sim")
    local_write(host, SCH_CLIENT, "Enabled", 1)
    result = host("gpupdate /target:computer /force", b"")
    assert result.exit_code == 0
    assert result.stdout == "Updating policy...\r\n\r\nComputer Policy update has completed successfully.\r\n\r\n"
    assert host.registry.dword(SCH_CLIENT, "Enabled") == 0 and host.policy_refreshes == 1
    bad = host("gpupdate /target:everything", b"")
    assert bad.exit_code == 1 and "Invalid Syntax" in bad.stderr
