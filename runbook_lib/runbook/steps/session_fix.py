"""Notebook 04: the per-session fix in one process on the host, a fresh process after the fix, and the final
verdict. Evidence: ``session-fix.json``, ``outcome.json``.
"""

from __future__ import annotations

import html
from pathlib import Path

from .cause import security_protocol_default
from ...core import knowledge as k
from ...core.acceptance import CERTIFICATE, client_answer
from ...core.engine import assess, restart_for_paths
from ..display import Card, step, text_table
from ..operations import html_table, session_fix, written_values
from ..session import Session
from ..reboot import EVIDENCE_FILE as REBOOT_FILE
from .host_state import facts_for, fresh_client_answer, read_json, reboot_pending


OUTCOMES = ("fixed", "fixed_after_reboot", "compliant", "blocked", "reboot_pending", "failed")


SESSION_FIX_LINES = {
    "bor": "[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor "
           "[Net.SecurityProtocolType]::Tls12",
    "pin": "[System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]::Tls12",
}
_MODE_COSTS = {
    "bor": ("Adds TLS 1.2 and keeps what is there, so legacy servers used by the same script still work. On a "
            "SystemDefault (0) process it pins TLS 1.2 and loses the OS choice and TLS 1.3: only add it when the "
            "value lacks Tls12 and is not SystemDefault."),
    "pin": ("Microsoft's published fix: TLS 1.2 only. It drops TLS 1.3 and breaks any legacy server the same "
            "session talks to."),
}


def session_fix_demo(session: Session) -> None:
    """Set SecurityProtocol in one process on the host and probe Entra from that same process."""
    mode = session.params.session_fix_mode
    with step(f"session fix ({mode}) on {session.host}", "02_os_check.ipynb", session.simulated,
              total=1) as progress:
        report = session_fix(session.target, mode, session.params.endpoints)
        progress.advance("probe ran in the same process")
    before, after = report.security_protocol or (0, 0)
    ok = report.ok
    session.save_json("session-fix.json", {
        "host": session.host, "simulated": session.simulated, "mode": mode, "before": before, "after": after,
        "before_name": k.security_protocol_name(before), "after_name": k.security_protocol_name(after), "ok": ok,
        "probes": [p.to_dict() for p in report.probes]})
    session.show(report)
    rows = [[name, SESSION_FIX_LINES[name], cost, "this run" if name == mode else ""]
            for name, cost in _MODE_COSTS.items()]
    answer = client_answer(report.probes)
    if report.fix_error:
        verdict = (f"The runtime refused TLS 1.2 ({report.fix_error}): this Windows PowerShell runs on a .NET without "
                   "TLS 1.2 (CLR 2 without its update, or .NET 4.0). Install .NET Framework 4.5+ and WMF 5.1; see "
                   "02_os_check.ipynb.")
    elif ok:
        verdict = ("The session fix works in that process: Entra accepts it" + (f" ({answer.reason})" if answer else "")
                   + ". The host can do TLS 1.2, only the default was wrong.")
    else:
        verdict = ("Even with TLS 1.2 requested Entra does not accept the session"
                   + (f" ({answer.reason})" if answer else "") + ": the OS cannot, see 02_os_check.ipynb.")
    session.show(Card(f"<p><b>{html.escape(verdict)}</b></p>"
                      + html_table(["Mode", "Line", "What it costs", ""], rows),
                      f"{verdict}\n" + text_table(rows)))


def fresh_process_check(session: Session) -> None:
    """Why the session fix is not the fix: a new process starts from the registry-derived default again."""
    security_protocol_default(session, refresh=True)
    text = ("Every new powershell.exe starts from this value again: the session fix lasted only for its own "
            "process. The durable fix is the .NET registry values (SchUseStrongCrypto / SystemDefaultTlsVersions, "
            "notebook 03), read by every new process. A line in $PROFILE is no substitute: profiles do not run in "
            "WinRM/PSRemoting sessions, scheduled tasks with -NoProfile or services.")
    session.show(Card(f"<p>{html.escape(text)}</p>", text))


def final_verdict(session: Session) -> None:
    """fixed / fixed after reboot / compliant / blocked / reboot pending / failed, saved as outcome.json."""
    host_facts = facts_for(session)
    verdict = assess(host_facts, session.params.profile)
    before = read_json(session.evidence / "verdict.json")
    applied = _last_apply_that_wrote(session.evidence)
    earlier = read_json(session.evidence / "apply-report.json").get("earlier_applies") or []
    written_earlier = written_values([e for e in earlier if isinstance(e, dict)])
    wrote = bool(applied) or bool(written_earlier)
    restart_before = applied.get("restart") or before.get("restart") or verdict.restart
    if written_earlier and not applied:  # this attempt found the host already changed by an earlier one
        restart_before = restart_for_paths(path for path, _ in written_earlier)
    client = fresh_client_answer(host_facts)
    works = client is not None and client.accepted and not verdict.affected
    if verdict.blockers:
        outcome, detail = "blocked", "Blocked by " + ", ".join(verdict.blockers) + ": see the findings."
    elif client is not None and client.outcome == CERTIFICATE:
        outcome, detail = "failed", (f"{client.reason}: install the root Entra chains to (DigiCert Global Root G2) or "
                                     "trust the inspecting proxy's root. Not a TLS version problem.")
    elif reboot_pending(host_facts, verdict):
        outcome, detail = "reboot_pending", "The values are in place; restart the host, then run this notebook again."
    elif works and wrote:
        outcome = "fixed_after_reboot" if restart_before == "reboot" else "fixed"
        detail = f"The registry fix is in place and Entra accepts a fresh Windows PowerShell: {client.reason}."
    elif works and not verdict.changes:
        outcome, detail = "compliant", f"Nothing needed changing: {client.reason}."
    elif verdict.changes and not wrote:
        outcome = "fixable"
        detail = ("Not fixed yet: the plan was not applied (dry run). Run 03_registry_remediation.ipynb with "
                  "apply=True, or use the session fix above as a stopgap.")
    else:
        outcome = "failed"
        detail = ("Windows PowerShell still fails by default although the plan was applied: read the findings "
                  "(a setting the runbook does not read?) and use the session fix above as a stopgap.")
    restart = read_json(session.evidence / REBOOT_FILE)
    if restart.get("state") == "restarted":  # the fleet runner waited for it between 03 and this notebook
        detail += (f" The restart is proven by the boot time: last boot {restart.get('last_boot_before')} -> "
                   f"{restart.get('last_boot_after')} (reboot.json).")
    doc = {"host": session.host, "simulated": session.simulated, "outcome": outcome,
           "blockers": list(verdict.blockers), "restart": restart_before, "detail": detail}
    session.save_json("outcome.json", doc)
    session.outcome = doc
    colour = {"fixed": "#2e7d32", "fixed_after_reboot": "#2e7d32", "compliant": "#2e7d32", "blocked": "#8b0000",
              "reboot_pending": "#b26a00", "fixable": "#b26a00", "failed": "#c62828"}[outcome]
    blockers = "".join(f"<li><code>{html.escape(f.id)}</code>: {html.escape(f.message)} "
                       f"({html.escape(f.docs)})</li>" for f in verdict.findings if f.severity == "blocker")
    session.show(Card(f"<h3>Final verdict for {html.escape(session.host)}: <span style='color:{colour}'>"
                      f"{outcome.replace('_', ' ').upper()}</span></h3><p>{html.escape(detail)}</p>"
                      + (f"<ul>{blockers}</ul>" if blockers else ""),
                      f"Final verdict for {session.host}: {outcome.upper()}\n{detail}" +
                      "".join(f"\n  blocker {f.id}: {f.message} ({f.docs})" for f in verdict.findings
                              if f.severity == "blocker")))


def _last_apply_that_wrote(folder: Path) -> dict:
    """The newest apply report that wrote values: the current one, else one a later run of 03 archived (after a
    pending reboot, 03 runs again with nothing left to write and only reboots)."""
    archived = sorted((folder / "history").glob("*/apply-report.json"), key=lambda path: path.parent.name,
                      reverse=True)
    for path in (folder / "apply-report.json", *archived):
        report = read_json(path)
        if any(r.get("status") == "written" for r in report.get("results", [])):
            return report
    return {}


