"""Whether Entra accepts what a probe saw: the one definition every part of the runbook uses.

A probe record says only what the script on the host can know (``runbook_lib/remote/ps/common.ps1``): whether TCP
connected, whether the TLS handshake completed (``ok``), the negotiated protocol, cipher, hash and key exchange,
any certificate-validation errors, the raw error text, and, for the application-level probe (mode ``app``), the
HTTP status and AADSTS code Entra's token endpoint answered. Acceptance is decided here, never on the host:

* Entra completes TLS 1.0 and 1.1 handshakes (and TLS 1.2 on 3DES) and then refuses the request with
  AADSTS1002016 ([E1], docs/tls-knowledge.md section 1), so a completed handshake is not acceptance: the session
  must be TLS 1.2 or 1.3 and not 3DES.
* An application-level answer overrides the handshake: AADSTS1002016 is a refusal of legacy TLS, any other AADSTS
  code (an unknown application, for the made-up client id the probe sends) proves TLS was accepted.
* A handshake whose certificate did not validate was negotiated with whatever presented that certificate (a
  TLS-inspecting proxy, or Entra with a root the host lacks): it says nothing about Entra, and .NET refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .facts import Probe

ACCEPTED = "accepted"
LEGACY = "aadsts1002016"  # the session was legacy TLS or 3DES: Entra refuses the request
HANDSHAKE_FAILURE = "handshake_failure"
CERTIFICATE = "certificate"  # the server's certificate did not validate on the host
UNREACHABLE = "unreachable"  # no TCP connection (or DNS, or proxy): nothing is known about TLS
UNKNOWN = "unknown"  # TCP only, an ambiguous protocol, or an HTTP answer without an AADSTS code
OUTCOMES = (ACCEPTED, LEGACY, HANDSHAKE_FAILURE, CERTIFICATE, UNREACHABLE, UNKNOWN)
DECISIVE = (ACCEPTED, LEGACY, HANDSHAKE_FAILURE)  # what tells whether a client signs in to Entra

AADSTS_LEGACY_TLS = 1002016
# The made-up client id of the application-level probe; runbook_lib/remote/ps/common.ps1 sends exactly this (a test
# checks), and no tenant has an application with it, so Entra answers with an error and nothing changes anywhere.
PROBE_CLIENT_ID = "11111111-1111-1111-1111-111111111111"
TOKEN_PATH = "/organizations/oauth2/v2.0/token"

# SslProtocols names as Get-TrProtocolName writes them, bit by bit ([P1]).
MODERN_PROTOCOLS = ("Tls12", "Tls13")
LEGACY_PROTOCOLS = ("Ssl2", "Ssl3", "Tls", "Tls11")
TRIPLE_DES = "TripleDes"  # CipherAlgorithmType name of 3DES

# ALG_ID values that SslStream.HashAlgorithm / KeyExchangeAlgorithm return, for people reading a probe.
HASH_NAMES = {0: "None", 32771: "MD5", 32772: "SHA1", 32780: "SHA256", 32781: "SHA384", 32782: "SHA512"}
KEY_EXCHANGE_NAMES = {0: "None", 41984: "RSA", 43522: "DHE", 43525: "ECDH", 44550: "ECDHE"}

_READABLE_PROTOCOLS = {"Ssl2": "SSL 2.0", "Ssl3": "SSL 3.0", "Tls": "TLS 1.0", "Tls11": "TLS 1.1", "Tls12": "TLS 1.2",
                       "Tls13": "TLS 1.3"}


@dataclass(frozen=True)
class EntraAnswer:
    """What Entra does with one probed session, and the observation that says so (one sentence)."""

    outcome: str
    reason: str

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED

    @property
    def decisive(self) -> bool:
        """True when the answer tells whether a client gets past TLS with Entra."""
        return self.outcome in DECISIVE


def session_outcome(protocol: str | None, cipher: str | None) -> str:
    """Entra's answer to a completed handshake: accepted, legacy (AADSTS1002016) or unknown (unreadable protocol).

    ``protocol`` may name several bits ("Tls, Tls12") where a CLR 2 process reports a combination; then only a
    combination that is all modern or all legacy decides.
    """
    names = [name.strip() for name in (protocol or "").split(",") if name.strip()]
    if not names:
        return UNKNOWN
    if all(name in LEGACY_PROTOCOLS for name in names):
        return LEGACY
    if not all(name in MODERN_PROTOCOLS for name in names):
        return UNKNOWN
    return LEGACY if cipher == TRIPLE_DES else ACCEPTED


def protocol_text(protocol: str | None) -> str:
    """"Tls" -> "TLS 1.0"; unknown names stay as the host wrote them."""
    if not protocol:
        return "no protocol"
    return ", ".join(_READABLE_PROTOCOLS.get(p.strip(), p.strip()) for p in protocol.split(","))


def describe_session(probe: Probe) -> str:
    """"TLS 1.2 with Aes256 (SHA384, ECDHE)" from what the host reported."""
    text = protocol_text(probe.protocol) + (f" with {probe.cipher}" if probe.cipher else "")
    extras = [names.get(value, str(value)) for value, names in ((probe.hash, HASH_NAMES),
                                                                  (probe.key_exchange, KEY_EXCHANGE_NAMES))
              if value is not None]
    return text + (f" ({', '.join(extras)})" if extras else "")


def entra_answer(probe: Probe) -> EntraAnswer:
    """Whether Entra accepts the session this probe record describes; see the module docstring for the rules."""
    if probe.mode == "app":
        return _application_answer(probe)
    if probe.mode == "tcp":
        if probe.ok:
            return EntraAnswer(UNKNOWN, f"TCP to {probe.endpoint} connected (TCP alone says nothing about TLS)")
        return EntraAnswer(UNREACHABLE, f"TCP to {probe.endpoint} failed: {probe.error or 'no error text'}")
    what = f"the {probe.mode} TLS probe to {probe.endpoint}"
    if not probe.ok:
        if probe.connected is False:
            return EntraAnswer(UNREACHABLE, f"{what} did not connect: {probe.error or 'no error text'}")
        return EntraAnswer(HANDSHAKE_FAILURE, f"{what} failed the handshake: {probe.error or 'no error text'}")
    session = describe_session(probe)
    if probe.certificate_errors:
        return EntraAnswer(CERTIFICATE, f"{what} completed a handshake ({session}) but the certificate did not "
                                        f"validate ({_certificate_text(probe)})")
    outcome = session_outcome(probe.protocol, probe.cipher)
    if outcome == ACCEPTED:
        return EntraAnswer(ACCEPTED, f"{what} negotiated {session}: Entra accepts it")
    if outcome == LEGACY:
        return EntraAnswer(LEGACY, f"{what} completed a handshake on {session}: Entra completes such a "
                                   "handshake and then answers AADSTS1002016")
    return EntraAnswer(UNKNOWN, f"{what} reported {session}: which protocol was used cannot be told from it")


def _application_answer(probe: Probe) -> EntraAnswer:
    request = f"the token request to {probe.endpoint}"
    if probe.aadsts == AADSTS_LEGACY_TLS:
        return EntraAnswer(LEGACY, f"Entra answered {request} with AADSTS1002016: it refused the legacy TLS session")
    if probe.aadsts is not None:
        return EntraAnswer(ACCEPTED, f"Entra answered {request} with AADSTS{probe.aadsts} (expected for a made-up "
                                     "client id): TLS was accepted")
    if probe.ok:
        return EntraAnswer(UNKNOWN, f"{request} got HTTP {probe.http_status} without an AADSTS code (not Entra's "
                                    "token endpoint, or a proxy answered)")
    status = probe.web_status or ""
    if status in ("NameResolutionFailure", "ConnectFailure", "ProxyNameResolutionFailure", "Timeout"):
        return EntraAnswer(UNREACHABLE, f"{request} did not connect ({status}): {probe.error or 'no error text'}")
    if status == "TrustFailure":
        return EntraAnswer(CERTIFICATE, f"{request} failed the certificate check: {probe.error or 'no error text'}")
    return EntraAnswer(HANDSHAKE_FAILURE, f"{request} got no answer ({status or 'no status'}): "
                                          f"{probe.error or 'no error text'}")


def _certificate_text(probe: Probe) -> str:
    chain = [status for status in probe.certificate_chain or () if status != "NoError"]
    return ", ".join(list(probe.certificate_errors or ()) + chain)


def client_answer(probes: Iterable[Probe]) -> EntraAnswer | None:
    """What a fresh Windows PowerShell on the host gets from Entra, from the probes run in such a process.

    Per endpoint the application-level answer decides when it is decisive, otherwise the default handshake. Over
    several endpoints a refusal wins over an acceptance, and an acceptance over an undecided answer. None when
    neither kind of probe was run.
    """
    probes = tuple(probes)
    by_endpoint: dict[str, list[EntraAnswer]] = {}
    for mode in ("app", "default"):  # the application-level answer first: it overrides the handshake
        for probe in probes:
            if probe.mode == mode:
                by_endpoint.setdefault(probe.endpoint, []).append(entra_answer(probe))
    if not by_endpoint:
        return None
    chosen = [next((a for a in answers if a.decisive), answers[0]) for answers in by_endpoint.values()]
    refused = [a for a in chosen if a.decisive and not a.accepted]
    accepted = [a for a in chosen if a.accepted]
    return (refused or accepted or chosen)[0]


def all_accepted(probes: Iterable[Probe]) -> bool:
    """True when at least one TLS probe says Entra accepts and none says otherwise.

    Answers that cannot decide because of what was probed (TCP only, an HTTP answer from a non-token endpoint) are
    left out; an unreachable endpoint or a certificate problem is not success.
    """
    answers = [entra_answer(p) for p in probes if p.mode != "tcp"]
    counted = [a for a in answers if a.outcome != UNKNOWN]
    return bool(counted) and all(a.accepted for a in counted)
