"""Notebooks 03 and 04 in-process against a simulated Windows 7: a change that waits for a reboot is not a fix.

Windows 7 reads its SCHANNEL values at boot, so after the apply a fresh Windows PowerShell still completes a TLS 1.0
handshake and Entra still answers AADSTS1002016 until the host restarts; only then does the same token request get
past TLS.
"""

import json

from runbook_lib import notebook as nb


def run_03_and_04(session, reboot: bool) -> str:
    with nb.collect_results() as shown:
        session.params = nb.validate_parameters(apply=True, reboot=reboot, evidence_dir=str(session.evidence))
        for step in (nb.inspect, nb.assess_host, nb.show_plan, nb.apply_fix, nb.read_back, nb.reboot_if_needed,
                     nb.verify_after):
            step(session)
        nb.entra_request(session, after=True)
        session.facts = None  # notebook 04 reads the host afresh
        nb.final_verdict(session)
    return "\n".join(bundle["text/plain"] for bundle in shown)


def test_windows_7_applied_but_not_rebooted_is_reboot_pending_then_fixed_after_the_reboot(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_RUNBOOK_INTERACTIVE", "0")
    session = nb.open_session(nb.validate_parameters(evidence_dir=str(tmp_path)))
    try:
        pending = run_03_and_04(session, reboot=False)
        outcome = json.loads((tmp_path / "outcome.json").read_text())
        after = json.loads((tmp_path / "verdict-after.json").read_text())
        facts_after = json.loads((tmp_path / "facts-after.json").read_text())
        [answer] = [p for p in facts_after["observed"]["probes"] if p["mode"] == "app"]
        assert outcome["outcome"] == "reboot_pending"
        assert (after["affected"], after["symptom"], after["changes"]) == (True, "aadsts1002016", [])
        assert answer["aadsts"] == 1002016
        assert "the reboot is pending" in pending and "REFUSED: AADSTS1002016" in pending

        fixed = run_03_and_04(session, reboot=True)  # nothing left to write; the reboot loads the values
        outcome = json.loads((tmp_path / "outcome.json").read_text())
        facts_after = json.loads((tmp_path / "facts-after.json").read_text())
        [answer] = [p for p in facts_after["observed"]["probes"] if p["mode"] == "app"]
        assert session.rebooted and answer["aadsts"] == 700016
        assert outcome["outcome"] == "fixed_after_reboot"
        assert "AADSTS700016" in fixed and "TLS was accepted" in fixed
    finally:
        session.close()
