"""The one definition of "Entra accepts": a completed handshake is not acceptance, an AADSTS answer overrides it."""

import pytest

from runbook_lib.core import facts
from runbook_lib.core.acceptance import (ACCEPTED, CERTIFICATE, HANDSHAKE_FAILURE, LEGACY, PROBE_CLIENT_ID, TOKEN_PATH,
                                         UNKNOWN, UNREACHABLE, all_accepted, client_answer, entra_answer)
from runbook_lib.core.facts import Probe
from runbook_lib.remote.scripts import script_source

EP = "login.microsoftonline.com:443"


def tls(mode="default", protocol="Tls12", cipher="Aes256", **extra):
    return Probe(EP, mode, True, protocol, cipher, None, connected=True, **extra)


def app(aadsts=None, ok=True, web_status="ProtocolError", http_status=400, error=None, endpoint=EP):
    return Probe(endpoint, "app", ok, None, None, error, url=f"https://{endpoint.split(':')[0]}{TOKEN_PATH}",
                 security_protocol=240, web_status=web_status, http_status=http_status if ok else None,
                 aadsts=aadsts)


@pytest.mark.parametrize("protocol, cipher, outcome", [
    ("Tls", "Aes256", LEGACY),  # Entra completes the TLS 1.0 handshake, then answers AADSTS1002016
    ("Tls11", "Aes128", LEGACY),
    ("Ssl3", "Rc4", LEGACY),
    ("Tls12", "TripleDes", LEGACY),  # TLS 1.2 on 3DES is refused too
    ("Tls12", "Aes256", ACCEPTED),
    ("Tls13", "Aes256", ACCEPTED),
    ("Ssl3, Tls", "Aes256", LEGACY),  # a CLR 2 process reporting combined bits, all of them legacy
    ("Tls12, Tls13", "Aes128", ACCEPTED),
    ("Tls, Tls12", "Aes256", UNKNOWN),  # which one was negotiated cannot be told
    ("3072", "Aes256", UNKNOWN),  # a number is never guessed at
])
def test_a_completed_handshake_is_judged_by_protocol_and_cipher(protocol, cipher, outcome):
    answer = entra_answer(tls(protocol=protocol, cipher=cipher))
    assert answer.outcome == outcome
    assert answer.accepted is (outcome == ACCEPTED)


def test_a_legacy_session_names_what_was_negotiated():
    answer = entra_answer(tls(protocol="Tls", cipher="Aes256", hash=32772, key_exchange=44550))
    assert "TLS 1.0 with Aes256 (SHA1, ECDHE)" in answer.reason and "AADSTS1002016" in answer.reason


def test_a_certificate_that_does_not_validate_is_not_a_tls_verdict():
    answer = entra_answer(tls(certificate_errors=("RemoteCertificateChainErrors",), certificate_chain=("PartialChain",)))
    assert answer.outcome == CERTIFICATE and not answer.decisive
    assert "PartialChain" in answer.reason


@pytest.mark.parametrize("probe, outcome", [
    (Probe(EP, "default", False, error="No such host is known", connected=False), UNREACHABLE),
    (Probe(EP, "default", False, error="The client and server cannot communicate, because they do not possess a "
                                       "common algorithm", connected=True), HANDSHAKE_FAILURE),
    (Probe(EP, "tls12", False, error="Authentication failed because the remote party has closed the transport "
                                     "stream."), HANDSHAKE_FAILURE),  # a v1 record: no "connected" field
    (Probe(EP, "tcp", True, connected=True), UNKNOWN),
    (Probe(EP, "tcp", False, error="No such host is known", connected=False), UNREACHABLE),
])
def test_failed_and_tcp_only_probes(probe, outcome):
    assert entra_answer(probe).outcome == outcome


@pytest.mark.parametrize("probe, outcome", [
    (app(1002016), LEGACY),
    (app(700016), ACCEPTED),  # unknown application: the request got past TLS
    (app(90002), ACCEPTED),
    (app(None, http_status=404), UNKNOWN),  # not a token endpoint, or a proxy answered
    (app(None, ok=False, web_status="TrustFailure",
         error="The remote certificate is invalid according to the validation procedure."), CERTIFICATE),
    (app(None, ok=False, web_status="NameResolutionFailure",
         error="The remote name could not be resolved: 'login.microsoftonline.com'"), UNREACHABLE),
    (app(None, ok=False, web_status="SecureChannelFailure",
         error="The request was aborted: Could not create SSL/TLS secure channel."), HANDSHAKE_FAILURE),
])
def test_the_application_level_answer_is_read_from_its_aadsts_code(probe, outcome):
    assert entra_answer(probe).outcome == outcome


def test_the_application_answer_overrides_the_handshake_both_ways():
    assert client_answer([tls(protocol="Tls12"), app(1002016)]).outcome == LEGACY
    assert client_answer([tls(protocol="Tls"), app(700016)]).outcome == ACCEPTED
    assert client_answer([app(700016), tls(protocol="Tls")]).outcome == ACCEPTED  # order does not matter


def test_without_a_deciding_application_answer_the_default_handshake_decides():
    assert client_answer([tls(protocol="Tls"), app(None, http_status=407)]).outcome == LEGACY
    assert client_answer([tls(protocol="Tls12")]).outcome == ACCEPTED
    assert client_answer([tls("tls12", protocol="Tls12")]) is None  # an explicit TLS 1.2 probe is not the client


def test_over_several_endpoints_a_refusal_wins():
    other = "login.windows.net:443"
    probes = [app(700016), app(1002016, endpoint=other)]
    assert client_answer(probes).outcome == LEGACY
    assert not all_accepted(probes)
    assert all_accepted([tls(), tls("tls12"), app(700016), app(None, http_status=404, endpoint="graph.microsoft.com:443")])


def test_unreachable_or_certificate_is_not_success():
    assert not all_accepted([tls(), Probe("login.windows.net:443", "default", False, error="No such host is known",
                                          connected=False)])
    assert not all_accepted([tls(certificate_errors=("RemoteCertificateNameMismatch",))])
    assert not all_accepted([Probe(EP, "tcp", True, connected=True)])


def test_host_facts_v1_without_the_new_fields_still_load_and_read_the_same(facts_path):
    host_facts = facts.load(facts_path("ws2022_healthy"))
    default = [p for p in host_facts.observed.probes if p.mode == "default"]
    assert default and default[0].connected is None and default[0].hash is None
    assert client_answer(host_facts.observed.probes).outcome == ACCEPTED
    assert "connected" not in default[0].to_dict()  # written back as it was read


def test_the_script_sends_the_made_up_client_id_to_the_token_path():
    common = script_source("common")
    assert f"$TrProbeClientId = '{PROBE_CLIENT_ID}'" in common
    assert f"'{TOKEN_PATH}'" in common
    assert "client_secret" not in common and "password" not in common.lower()
