"""Notebook 01: what the error text means, what Windows PowerShell asks for, what Entra answers, and the cause.
Evidence: ``cause.json``.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass

from ...core import knowledge as k
from ...core.acceptance import ACCEPTED, CERTIFICATE, LEGACY, UNREACHABLE, client_answer, entra_answer
from ...core.facts import HostFacts, Probe
from ..display import Card, emit, text_table
from ..operations import ProbeReport, html_table
from ..parameters import MAX_ERROR_TEXT, Parameters
from ..session import Session
from .host_state import facts_for, fresh_client_answer


# The text Microsoft's Japanese support blog quotes ([J1]); the tenant id is its own placeholder.
SEED_ERROR_TEXT = ("AADSTS1002016: You are using TLS version 1.0, 1.1 and/or 3DES cipher which are deprecated to "
                   "improve the security posture of Azure AD. Your TenantID is: XXXXXXXXX. Please refer to "
                   "https://go.microsoft.com/fwlink/?linkid=2161187 and conduct needed actions to remediate the "
                   "issue. For further questions, please contact your administrator.")
_HANDSHAKE_SYMPTOMS = ("could not create ssl/tls secure channel", "do not possess a common algorithm",
                       "authentication failed because the remote party has closed the transport stream",
                       "the underlying connection was closed")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class ParsedError:
    kind: str  # aadsts1002016, other_aadsts, handshake_failure
    code: str | None
    tenant_id: str | None
    trace_id: str | None = None
    correlation_id: str | None = None
    timestamp: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.to_dict().items() if value)


def parse_error_text(text: str) -> ParsedError | None:
    """The AADSTS code, tenant and trace ids from pasted error text, or None when it is not a sign-in error.

    A host whose legacy protocols are already off never reaches Entra's 400: it fails the handshake instead, so
    those messages count as the same root cause ([E3], docs/tls-knowledge.md section 1).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[:MAX_ERROR_TEXT]
    code = re.search(r"\bAADSTS(\d{5,8})\b", text)
    tenant = re.search(rf"Tenant\s*ID\s*(?:is)?\s*[:=]?\s*[\"']?({_GUID})", text, re.IGNORECASE) or \
        re.search(rf"tenants?/({_GUID})", text, re.IGNORECASE)

    def guid_after(label: str) -> str | None:
        found = re.search(rf"{label}\s*:?\s*({_GUID})", text, re.IGNORECASE)
        return found.group(1).lower() if found else None

    stamp = re.search(r"Timestamp\s*:?\s*(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}Z?)", text, re.IGNORECASE)
    if code:
        kind = "aadsts1002016" if code.group(1) == "1002016" else "other_aadsts"
        found_code = "AADSTS" + code.group(1)
    elif any(symptom in text.lower() for symptom in _HANDSHAKE_SYMPTOMS):
        kind, found_code = "handshake_failure", None
    else:
        return None
    return ParsedError(kind, found_code, tenant.group(1).lower() if tenant else None, guid_after("Trace ID"),
                       guid_after("Correlation ID"), stamp.group(1) if stamp else None)


_MEANINGS = {
    "aadsts1002016": "Entra completed a TLS 1.0/1.1 (or 3DES) handshake with this client and then refused the "
                     "sign-in. The client asked for a legacy protocol: the fix is on the client host, not in the "
                     "tenant.",
    "handshake_failure": "The client could not agree on any protocol or cipher suite with Entra. Same root cause "
                         "as AADSTS1002016 on a host whose legacy protocols are already disabled.",
    "other_aadsts": "A different Entra error: this runbook is about AADSTS1002016 only. Look the code up at "
                    "https://login.microsoftonline.com/error.",
}


def explain_error(params: Parameters) -> None:
    """What the pasted error says, why it appears now (enforcement dates), and where to look next."""
    parsed = parse_error_text(params.error_text)
    rows = [["Enforced for the public cloud", "31 January 2022 (moved from 30 June 2021)"],
            ["US Government clouds", "31 March 2021"], ["21Vianet (China)", "31 January 2025, rolling out"],
            ["Refused", "TLS 1.0, TLS 1.1 and TLS_RSA_WITH_3DES_EDE_CBC_SHA; TLS 1.2 and 1.3 accepted"]]
    if parsed is None and params.error_text.strip():
        head = "The pasted text contains no AADSTS code and no TLS handshake failure."
    elif parsed is None:
        head = "No error text pasted (parameter error_text); the checks below do not need it."
    else:
        head = _MEANINGS[parsed.kind]
        rows = [["Error", parsed.code or "TLS handshake failure"],
                ["Tenant", parsed.tenant_id or "(not in the text, or a placeholder)"]] + \
            [[label, value] for label, value in (("Trace ID", parsed.trace_id),
                                                 ("Correlation ID", parsed.correlation_id),
                                                 ("Timestamp", parsed.timestamp)) if value] + rows
    source = k.SOURCES["E1"]
    emit(Card(f"<p>{html.escape(head)}</p>{html_table(['What', 'Value'], rows)}"
               f"<p>Source: <a href='{source}' target='_blank' rel='noopener'>{source}</a></p>",
               f"{head}\n{text_table(rows)}\nSource: {source}"))




def security_protocol_default(session: Session, refresh: bool = False) -> None:
    """What a fresh Windows PowerShell asks for when a script sets nothing: the value the Entra modules use."""
    host_facts = facts_for(session, refresh)
    observed = dict(host_facts.observed.security_protocol) if host_facts.observed else {}
    rows = []
    for bitness, value in observed.items():
        name = k.security_protocol_name(value)
        if value == k.SP_SYSTEM_DEFAULT:
            meaning = "the OS chooses (TLS 1.2 if Schannel has it on by default)"
        elif value & k.SP_TLS12 or value & k.SP_TLS13:
            meaning = "asks for TLS 1.2: Entra can accept it"
        else:
            meaning = "asks only for legacy protocols: Entra answers AADSTS1002016"
        rows.append([f"powershell.exe ({'64' if bitness == 'x64' else '32'}-bit)", f"{name} ({value})", meaning])
    title = "[Net.ServicePointManager]::SecurityProtocol in a fresh process"
    session.show(Card(f"<h4>{html.escape(title)}</h4>{html_table(['Process', 'Value', 'Meaning'], rows)}",
                      f"{title}\n{text_table(rows)}"))


def _probes_of(host_facts: HostFacts, mode: str) -> list[Probe]:
    return [p for p in (host_facts.observed.probes if host_facts.observed else ()) if p.mode == mode]






def probe_as_entra_would(session: Session) -> None:
    """TCP, the default handshake (what an app gets without asking) and an explicit TLS 1.2 one, run on the host."""
    host_facts = facts_for(session)
    probes = tuple(p for p in (host_facts.observed.probes if host_facts.observed else ()) if p.mode != "app")
    report = ProbeReport(session.host, session.simulated, probes,
                         "TLS probes from the host: default (as the Entra modules connect) and explicit TLS 1.2")
    session.show(report)


_ANSWER_MEANINGS = {
    ACCEPTED: "The request got past TLS: Entra does not refuse this host's Windows PowerShell for legacy TLS.",
    LEGACY: "This is the refusal Connect-AzureAD gets on this host, shown without any credential.",
    "handshake_failure": "No answer came back: the TLS session failed. Same root cause as AADSTS1002016 on a host "
                         "whose legacy protocols are off.",
    CERTIFICATE: "The certificate did not validate: a missing root (DigiCert Global Root G2) or a TLS-inspecting "
                 "proxy. Not a TLS version problem; Connect-AzureAD fails the same way until it is fixed.",
    UNREACHABLE: "The request did not reach Entra (DNS, firewall or proxy): it says nothing about TLS.",
    "unknown": "No endpoint probed is Entra's token endpoint, so there is no AADSTS answer to read.",
}


def entra_request(session: Session, after: bool = False) -> None:
    """The token request Connect-AzureAD starts with, made from a fresh Windows PowerShell on the host, and Entra's
    answer: AADSTS1002016 means legacy TLS refused, any other AADSTS code that TLS got through.

    The request carries a made-up client id and no secret, so no credential is used and no tenant changes.
    ``after``: the host as read back after the apply (and the reboot, when one ran) in notebook 03.
    """
    host_facts = (session.facts_after if after else None) or facts_for(session)
    probes = tuple(_probes_of(host_facts, "app"))
    title = ("The token request Connect-AzureAD makes (fresh Windows PowerShell"
             + (", after the change)" if after else ")"))
    session.show(ProbeReport(session.host, session.simulated, probes, title))
    answer = client_answer(probes)
    if answer is None:
        text = "The host ran no application-level probe (facts from an older inspect)."
    else:
        text = f"{answer.reason[0].upper()}{answer.reason[1:]}. {_ANSWER_MEANINGS[answer.outcome]}"
    session.show(Card(f"<p><b>{html.escape(text)}</b></p>", text))


def diagnose_cause(session: Session) -> None:
    """Tell "the OS can, the app does not ask" apart from "the OS cannot", and name the notebook to open next."""
    host_facts = facts_for(session)
    client = fresh_client_answer(host_facts)
    tls12 = [entra_answer(p) for p in _probes_of(host_facts, "tls12")]
    if client is None or client.outcome == UNREACHABLE and not any(a.decisive for a in tls12):
        diagnosis, next_notebook = "unreachable", "02_os_check.ipynb"
        text = ("The host cannot reach Entra (firewall, proxy or DNS): fix the network path first; TLS cannot be "
                "judged from here.")
    elif client.outcome == CERTIFICATE:
        diagnosis, next_notebook = "certificate", "02_os_check.ipynb"
        text = (f"{client.reason}. Install the root Entra chains to (DigiCert Global Root G2) or trust the "
                "inspecting proxy's root; this runbook's registry changes do not fix a certificate problem.")
    elif client.accepted:
        diagnosis, next_notebook = "works", "04_powershell_session_fix.ipynb"
        text = ("A fresh Windows PowerShell on this host already gets past TLS with Entra. If an application still "
                "shows AADSTS1002016, it sets its own protocol list or runs under another runtime: check it with "
                "the session-fix notebook.")
    elif (host_facts.powershell.windows_powershell_major or 3) < 3:
        diagnosis, next_notebook = "powershell_v2", "02_os_check.ipynb"
        text = (f"Windows PowerShell {host_facts.powershell.windows_powershell} runs on .NET 3.5 (CLR 2): "
                f"{client.reason}. The Entra modules need .NET Framework 4.5 or later and WMF 5.1 (or 3.0 where "
                "5.1 is not available); the OS check names what to install.")
    elif any(a.accepted for a in tls12):
        diagnosis, next_notebook = "app_does_not_ask", "03_registry_remediation.ipynb"
        text = (f"The OS can do TLS 1.2 with Entra, the application does not ask for it ({client.reason}). The "
                "durable fix is the .NET registry values (notebook 03); the per-session workaround is in "
                "notebook 04.")
    else:
        diagnosis, next_notebook = "os_cannot", "02_os_check.ipynb"
        text = ("Even an explicit TLS 1.2 handshake does not satisfy Entra: the OS itself cannot (Schannel "
                "protocol off, missing update, or a cipher-suite policy without an Entra suite). Start with the OS "
                "check.")
    parsed = parse_error_text(session.params.error_text)
    session.save_json("cause.json", {
        "host": session.host, "simulated": session.simulated, "error": parsed.to_dict() if parsed else None,
        "security_protocol": dict(host_facts.observed.security_protocol) if host_facts.observed else {},
        "probes": [p.to_dict() for p in (host_facts.observed.probes if host_facts.observed else ())],
        "diagnosis": diagnosis, "next_notebook": next_notebook})
    session.show(Card(f"<h4>Diagnosis: {diagnosis.replace('_', ' ')}</h4><p>{html.escape(text)}</p>"
                      f"<p><b>Open next:</b> <code>{next_notebook}</code></p>",
                      f"Diagnosis: {diagnosis}\n{text}\nOpen next: {next_notebook}"))
