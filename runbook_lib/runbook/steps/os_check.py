"""Notebook 02: the host's TLS settings read, and the verdict on them. Evidence: ``facts.json``, ``verdict.json``.
"""

from __future__ import annotations

import html
import json

from ...core import knowledge as k
from ...core.engine import assess
from ...core.host_model import HostModel
from ...core.facts import HostFacts
from ..display import Card, text_table
from ..operations import html_table
from ..session import Session
from .host_state import facts_for, read_host


def inspect(session: Session) -> None:
    """Read the host (registry values, versions, SecurityProtocol, probes); facts.json is the state before a fix."""
    if session.facts is None or not session.facts_unused:
        session.facts = read_host(session, save_as=None)
    session.facts_unused = False
    session.write("facts.json", session.facts.dumps())
    session.verdict = None
    session.show(facts_table(session.facts))




_SECTIONS = (("SCHANNEL", k.SCHANNEL_PROTOCOLS), (".NET (64-bit view)", k.NETFX_NATIVE),
             (".NET (32-bit view, Wow6432Node)", k.NETFX_WOW64), (".NET setup", k.NDP),
             ("WinHTTP (64-bit view)", k.WINHTTP_NATIVE), ("WinHTTP (32-bit view)", k.WINHTTP_WOW64),
             ("Cipher-suite policy", k.CIPHER_POLICY))
_ALWAYS_SHOWN_SCHANNEL = (k.schannel_key("TLS 1.2", "Client"), k.schannel_key("TLS 1.2", "Server"))


def facts_table(host_facts: HostFacts) -> Card:
    """Every fact the verdict rests on, with real registry types and which values Group Policy delivers."""
    model = HostModel(host_facts)
    os_info = host_facts.os
    release = model.release
    observed = host_facts.observed.security_protocol if host_facts.observed else {}
    summary = [
        ["OS", os_info.caption], ["Version (build)", f"{os_info.version} (build {os_info.version_tuple[2]})"],
        ["Service pack", os_info.service_pack], ["Product type", os_info.product_type],
        ["Architecture", os_info.architecture],
        [".NET Framework 4.x", f"{k.dotnet_version(release) or 'not 4.5+'} (Release {release})" if release
         else "not installed (no Release value)"],
        ["Windows PowerShell", host_facts.powershell.windows_powershell or "absent"],
        ["PowerShell 7", host_facts.powershell.pwsh or "absent"],
        ["Hotfixes read", ", ".join(host_facts.hotfixes) or "none"],
        ["SecurityProtocol (fresh process)",
         ", ".join(f"{b}: {k.security_protocol_name(v)} ({v})" for b, v in observed.items()) or "not observed"],
    ]
    rows = []
    for path, name in k.values_read():
        section = next((label for label, root in _SECTIONS if path.casefold().startswith(root.casefold())), "")
        value = host_facts.registry.get(path, name)
        if value is None and section == "SCHANNEL" and path not in _ALWAYS_SHOWN_SCHANNEL:
            continue
        if value is None:
            rows.append([section, path, name, "(absent)", "OS default", ""])
        else:
            data = value.data if not isinstance(value.data, int) else f"{value.data} (0x{value.data:x})"
            rows.append([section, path, name, value.type, json.dumps(data) if not isinstance(data, str) else data,
                         "Group Policy" if value.from_policy else ""])
    policy_values = sum(1 for row in rows if row[5])
    note = (f"{policy_values} value(s) come from Group Policy: a local change to them is reverted at the next "
            "policy refresh." if policy_values else "No value here comes from Group Policy.")
    headers = ["Area", "Key", "Value", "Type", "Data", "Source"]
    html_text = (f"<h4>Host facts: {html.escape(host_facts.host)} (collected {html.escape(host_facts.collected_at)})"
                 f"</h4>{html_table(['Fact', 'Value'], summary)}<h4>Registry values the verdict reads</h4>"
                 f"<p>SCHANNEL keys that are absent are left out, except TLS 1.2 (absent means the OS default).</p>"
                 f"{html_table(headers, rows)}<p>{html.escape(note)}</p>")
    text = (f"Host facts: {host_facts.host}\n{text_table(summary)}\nRegistry values:\n"
            f"{text_table([row[1:] for row in rows])}\n{note}")
    return Card(html_text, text)


def os_matrix(session: Session) -> None:
    """The row of the OS matrix this host falls in: what this Windows release can do for TLS 1.2."""
    host_facts = facts_for(session)
    row = k.os_row(host_facts.os.version_tuple, host_facts.os.service_pack, host_facts.os.product_type)
    tls12 = {"yes": "yes", "no": "no (upgrade the OS)", "update": f"only after {row.required_update}"}[row.tls12]
    rows = [["Release", row.name], ["TLS 1.2 possible", tls12],
            ["TLS 1.1/1.2 on by default", "yes" if row.tls12_default_on else "no: needs SCHANNEL values"],
            ["TLS 1.3", "yes" if row.tls13 else "no"],
            ["WinHTTP needs", row.winhttp_update or "nothing extra"],
            ["Highest .NET Framework", row.dotnet_max], ["WMF 5.1 available", "yes" if row.wmf51 else "no"]]
    links = " ".join(f"<a href='{k.SOURCES[tag]}' target='_blank' rel='noopener'>[{tag}]</a>" for tag in row.sources)
    session.show(Card(f"<h4>OS matrix row</h4>{html_table(['', ''], rows)}<p>Sources: {links}</p>",
                      "OS matrix row\n" + text_table(rows) + "\nSources: " +
                      " ".join(k.SOURCES[tag] for tag in row.sources)))


def assess_host(session: Session) -> None:
    """The verdict with findings, blockers and source links; saved as verdict.json (the state before a fix)."""
    host_facts = facts_for(session)
    verdict = assess(host_facts, session.params.profile)
    session.verdict = verdict
    session.write("verdict.json", verdict.dumps())
    session.show(verdict)
