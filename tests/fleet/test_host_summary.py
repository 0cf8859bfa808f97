"""A host's row in the fleet summary when notebook 04 did not run: read from the verdicts before and after."""

import json

import pytest

from runbook_lib.fleet.host_chain import summarise_host

CHANGE = {"path": "HKLM\\SYSTEM\\X", "name": "Enabled", "type": "REG_DWORD", "data": 1, "current": None,
          "reason": "schannel.tls12_client"}


@pytest.mark.parametrize("restart, after, outcome", [
    ("reboot", {"affected": True, "changes": [], "blockers": []}, "reboot_pending"),  # still refused, values in place
    ("new_process", {"affected": True, "changes": [], "blockers": []}, "failed"),  # nothing explains it
    ("reboot", {"affected": False, "changes": [], "blockers": []}, "fixed"),
    ("reboot", {"affected": True, "changes": [CHANGE], "blockers": []}, "fixable"),
    ("reboot", {"affected": True, "changes": [], "blockers": ["gpo.managed"]}, "blocked"),
])
def test_a_host_still_refused_after_its_change_is_not_counted_as_fixed(restart, after, outcome, tmp_path):
    before = {"affected": True, "changes": [CHANGE], "blockers": [], "restart": restart}
    (tmp_path / "verdict.json").write_text(json.dumps(before))
    (tmp_path / "verdict-after.json").write_text(json.dumps({**after, "restart": "none"}))
    assert summarise_host("h1", tmp_path, "", "", ["03_registry_remediation"])["outcome"] == outcome
