"""Observation decides: over generated hosts, what a fresh Windows PowerShell was seen to get overrides the model."""

import dataclasses

from hypothesis import given, strategies as st
from test_engine_properties import PROPERTY_SETTINGS, host_facts

from runbook_lib.core import facts as facts_module
from runbook_lib.core.engine import assess
from runbook_lib.core.facts import Observed, Probe

EP = "login.microsoftonline.com:443"
SESSIONS = st.sampled_from([("Tls", "Aes256"), ("Tls11", "Aes128"), ("Tls12", "TripleDes"), ("Tls12", "Aes256"),
                            ("Tls13", "Aes256")])
ANSWERS = st.sampled_from([1002016, 700016, None])


def observed(session, aadsts) -> Observed:
    protocol, cipher = session
    probes = [Probe(EP, "default", True, protocol, cipher, None, connected=True)]
    if aadsts is not None:
        probes.append(Probe(EP, "app", True, None, None, None, url=f"https://{EP[:-4]}/organizations/oauth2/v2.0/token",
                            security_protocol=240, web_status="ProtocolError", http_status=400, aadsts=aadsts))
    return Observed({}, tuple(probes))


@PROPERTY_SETTINGS
@given(host=host_facts(), session=SESSIONS, aadsts=ANSWERS, profile=st.sampled_from(["minimal", "recommended"]))
def test_the_windows_powershell_verdict_follows_what_the_host_showed(host, session, aadsts, profile):
    seen = dataclasses.replace(host, observed=observed(session, aadsts))
    predicted, verdict = assess(host, profile), assess(seen, profile)
    if host.powershell.windows_powershell is None:
        assert verdict.clients == predicted.clients
        return
    refused = aadsts == 1002016 if aadsts is not None else session[0] in ("Tls", "Tls11") or session[1] == "TripleDes"
    assert verdict.clients["windows_powershell"] == ("fails" if refused else "ok")
    assert verdict.affected is (refused or verdict.clients["pwsh"] == "fails")
    if refused:
        assert verdict.symptom == "aadsts1002016"
    disagreeing = [f for f in verdict.findings if f.id == "observed.disagrees" and "fresh Windows PowerShell" in f.message]
    assert bool(disagreeing) is (predicted.clients["windows_powershell"] != verdict.clients["windows_powershell"])
    assert verdict.changes == predicted.changes  # the plan is the model's; observation does not rewrite it


@PROPERTY_SETTINGS
@given(host=host_facts(), session=SESSIONS, aadsts=ANSWERS)
def test_facts_with_the_new_probe_fields_survive_a_json_round_trip(host, session, aadsts):
    seen = dataclasses.replace(host, observed=observed(session, aadsts))
    assert facts_module.loads(seen.dumps()) == seen
