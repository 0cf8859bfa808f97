"""Group Policy as Windows applies it: what the engine may write, and what it must leave to the GPO's owner.

Facts files under tests/facts/ carry the group_policy section the inspect script reports: RSoP settings
(RSOP_RegistryPolicySetting, https://learn.microsoft.com/previous-versions/windows/desktop/policy/
rsop-registrypolicysetting) and Group Policy Preferences items with their action (C/R/U/D, https://
learn.microsoft.com/powershell/module/grouppolicy/set-gpprefregistryvalue); Windows writes both again at its next
refresh (https://learn.microsoft.com/previous-versions/windows/desktop/policy/background-refresh-of-group-policy).
"""

import json

import pytest

from runbook_lib.core import facts
from runbook_lib.core.engine import assess
from runbook_lib.core.errors import FactsError

SCH_CLIENT = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\Client"
NET4 = "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319"
WOW4 = "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\.NETFramework\\v4.0.30319"


def verdict_for(name, facts_path, profile="recommended"):
    return assess(facts.load(facts_path(name)), profile)


def findings(verdict, finding_id):
    return [f for f in verdict.findings if f.id == finding_id]


def test_admin_template_value_outside_policies_is_gpo_managed_and_names_the_winning_gpo(facts_path):
    verdict = verdict_for("ws2016_tls12_disabled_by_admx", facts_path)
    [gpo] = findings(verdict, "gpo.managed")
    assert "TLS 1.2\\Client\\Enabled must become 1" in gpo.message
    assert "'Server security baseline' {5A1F3C7D-9E2B-4C86-A0D4-3B6E8F1A2C5D} (RSoP)" in gpo.message
    assert "TLS 1.2 rollout 2019" not in gpo.message, "the GPO that lost on precedence is not the owner"
    assert "90 minutes" in gpo.message and gpo.source.endswith("rsop-registrypolicysetting")
    assert not [c for c in verdict.changes if c.path.startswith("HKLM\\SYSTEM")]


def test_a_local_write_to_a_policy_value_is_assessed_as_the_refresh_leaves_it(facts_path):
    host = facts.load(facts_path("ws2016_admin_template_reverts_local_write"))
    assert host.registry.dword(SCH_CLIENT, "Enabled") == 1  # the host looks fixed right now
    verdict = assess(host)
    assert verdict.affected and verdict.outcome == "blocked"
    [reverted] = findings(verdict, "gpo.local_change_reverted")
    assert "is REG_DWORD 1 here" in reverted.message and "puts back REG_DWORD 0" in reverted.message


def test_same_facts_without_the_rsop_section_look_fixed_which_is_why_rsop_is_read(facts_path):
    doc = json.loads(facts_path("ws2016_admin_template_reverts_local_write").read_text())
    del doc["group_policy"]
    for value in doc["registry"]:
        value["policy"] = False
    assert assess(facts.from_dict(doc)).outcome == "compliant"


def test_gpp_delete_owns_an_absent_value(facts_path):
    verdict = verdict_for("ws2019_gpp_delete_disabled_create", facts_path)
    [gpo] = findings(verdict, "gpo.managed")
    assert f"{NET4}\\SchUseStrongCrypto must become 1" in gpo.message
    assert "item (D)" in gpo.message and "absent and cannot be written locally" in gpo.message


def test_disabled_gpp_item_and_create_item_leave_values_writable(facts_path):
    verdict = verdict_for("ws2019_gpp_delete_disabled_create", facts_path)
    planned = {(c.path, c.name) for c in verdict.changes}
    assert (NET4, "SystemDefaultTlsVersions") in planned  # the Update item is disabled
    assert (WOW4, "SchUseStrongCrypto") in planned  # Create only makes a missing value: a local write stands
    assert (NET4, "SchUseStrongCrypto") not in planned


def test_item_level_targeting_is_reported_as_uncertain_not_guessed(facts_path):
    verdict = verdict_for("ws2019_gpp_targeted_item", facts_path)
    [uncertain] = findings(verdict, "gpo.targeting_uncertain")
    assert "FilterOrgUnit" in uncertain.message and "not known" in uncertain.message
    assert "gpo.managed" not in verdict.blockers
    assert (NET4, "SchUseStrongCrypto") not in {(c.path, c.name) for c in verdict.changes}


def test_rsop_not_available_is_said_and_is_not_taken_for_no_policy(facts_path):
    verdict = verdict_for("ws2016_rsop_logging_off", facts_path)
    [warning] = findings(verdict, "gpo.rsop_unavailable")
    assert "RSoPLogging=0" in warning.message and warning.severity == "warning"


def test_facts_without_group_policy_still_load_and_assess_as_before(facts_path):
    host = facts.load(facts_path("ws2019_tls12_disabled_by_gpo"))
    assert host.group_policy is None
    assert verdict_for("ws2019_tls12_disabled_by_gpo", facts_path).blockers == ("gpo.managed",)


def test_group_policy_round_trips_through_save_and_load(facts_path, tmp_path):
    for name in ("ws2016_tls12_disabled_by_admx", "ws2019_gpp_delete_disabled_create"):
        host = facts.load(facts_path(name))
        host.save(tmp_path / "f.json")
        assert facts.load(tmp_path / "f.json") == host


def _mutated(facts_path, change):
    doc = json.loads(facts_path("ws2019_gpp_delete_disabled_create").read_text())
    change(doc["group_policy"])
    return json.dumps(doc)


@pytest.mark.parametrize("change, field, words", [
    (lambda gp: gp["preferences"]["items"][0].update(action="X"), "group_policy.preferences.items[0].action",
     "C, R, U, D"),
    (lambda gp: gp["preferences"]["items"][1].update(targeting="maybe"),
     "group_policy.preferences.items[1].targeting", "none, uncertain"),
    (lambda gp: gp["preferences"]["items"][1].update(filters=["<script>"]),
     "group_policy.preferences.items[1].filters", "targeting element names"),
    (lambda gp: gp["rsop"].update(settings=[{**_rsop_delete(), "deleted": False}]), "group_policy.rsop.settings[0].name",
     "only a deletion"),
    (lambda gp: gp["rsop"].pop("available"), "group_policy.rsop.available", "missing"),
])
def test_bad_group_policy_field_is_named_in_one_line(facts_path, change, field, words):
    with pytest.raises(FactsError) as caught:
        facts.loads(_mutated(facts_path, change))
    text = str(caught.value)
    assert field in text and words in text and "\n" not in text


def _rsop_delete():
    return {"path": NET4, "name": None, "type": None, "data": None, "deleted": True, "gpo_id": "LocalGPO",
            "gpo_name": "Local Group Policy", "precedence": 1}
