"""Notebook 03: the plan, its dry run or apply (backed up, journalled, idempotent), the read-back, the reboot
when the plan needs one, and the verification. Evidence: ``fix.reg``, ``rollback.reg``, ``apply-report.json``,
``facts-after.json``, ``verdict-after.json``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ...core.engine import assess
from ...core.errors import ApplyIncomplete
from ...core.facts import HostFacts
from ...core.files import private_folder
from ...core.plan import RemediationPlan
from ...core.regfile import to_bytes
from ..display import Card, collecting, is_interactive, step, text_table
from ..operations import (ApplyReport, apply_plan, apply_reports, html_table, original_backup, recover_apply,
                          rollback_from_backup)
from ..reboot import EVIDENCE_FILE as REBOOT_FILE, reboot_and_wait, schedule_reboot
from ...remote.scrub import write_scrubbed
from ..session import Session
from .host_state import facts_for, fresh_client_answer, read_host, read_json, reboot_pending


def show_plan(session: Session) -> None:
    """The plan as current -> new, with the fix and rollback .reg files written next to the executed notebook."""
    _plan(session, show=True)


def _plan(session: Session, show: bool = False) -> RemediationPlan:
    host_facts = facts_for(session)
    verdict = session.verdict or assess(host_facts, session.params.profile)
    session.verdict = verdict
    plan = RemediationPlan.from_verdict(verdict, host_facts)
    session.plan = plan
    _archive_previous_apply(session.evidence)
    if plan.changes:
        plan.write(session.evidence / "fix.reg", session.evidence / "rollback.reg",
                   lambda path, data: write_scrubbed(path, data, session.target.scrubber()))
        files = (f"Wrote {session.evidence / 'fix.reg'} and {session.evidence / 'rollback.reg'} (regedit can import "
                 "either; rollback restores every value with its original type).")
    else:
        files = "Nothing to change, so no .reg files were written."
    blocked = f" Blocked by: {', '.join(verdict.blockers)}; these need action outside this host's registry." \
        if verdict.blockers else ""
    if not show:
        return plan
    session.show(Card(plan._repr_html_() + f"<p>{html.escape(files + blocked)}</p>",
                      f"Plan for {plan.host}: {len(plan.changes)} change(s), restart {plan.restart}\n" +
                      text_table([[f"{c.path}\\{c.name}", "(absent)" if c.current is None else c.current, "->",
                                   c.type, c.data] for c in plan.changes]) +
                      f"\n{files}{blocked}"))
    return plan


def _archive_previous_apply(folder: Path) -> None:
    report = folder / "apply-report.json"
    try:
        previous = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not any(r.get("status") == "written" for r in previous.get("results", [])):
        return
    stamp = previous.get("apply_id") or datetime.fromtimestamp(report.stat().st_mtime, timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    archive = folder / "history" / re.sub(r"[^A-Za-z0-9_.-]", "_", str(stamp))
    private_folder(archive)
    for name in ("fix.reg", "rollback.reg", "apply-report.json", "facts-after.json", "verdict-after.json"):
        if (folder / name).exists():
            shutil.move(str(folder / name), str(archive / name))


def apply_fix(session: Session, confirmed: bool | None = None) -> None:
    """Write the plan only with apply=True or a person's confirmation; otherwise a dry run that writes nothing.

    ``confirmed`` comes from the widget's confirmation step; in JupyterLab without it the cell asks.
    """
    plan = session.plan or _plan(session)
    earlier = _earlier_applies(session)
    write = session.params.apply or bool(confirmed)
    if not write and confirmed is None and plan.changes and not collecting() and is_interactive():
        answer = input(f"Type 'apply' to write {len(plan.changes)} value(s) to {session.host} "
                       "(anything else keeps the dry run): ")
        write = answer.strip().lower() == "apply"
    with step(f"apply on {session.host}", "03_registry_remediation.ipynb", session.simulated) as progress:
        report = apply_plan(session.target, plan, apply=write,
                            evidence_dir=session.evidence if plan.changes else None)
        progress.advance(report.summary())
    session.applied = report
    _save_apply_report(session, report, plan, earlier)
    session.show(report)
    if report.error:  # stop the chain here: the evidence holds the journal and the rollback file
        raise ApplyIncomplete(session.host, f"apply stopped after {len(report.written)} of {len(plan.changes)} "
                                            f"value(s): {report.error}; run this notebook again to converge")


def _earlier_applies(session: Session) -> list[dict]:
    """Every apply this evidence folder already records (an archived one, or what an interrupted attempt left in
    ``attempt-<n>/``), oldest first. One whose answer never arrived is completed from the host's journal first:
    nothing is applied again over a host before its last apply has been read."""
    found: dict[str, dict] = {}
    for report in apply_reports(session.evidence):
        for recorded in [*(e for e in report.get("earlier_applies") or [] if isinstance(e, dict)), report]:
            if isinstance(recorded.get("apply_id"), str) and found.get(recorded["apply_id"], {"pending": True}) \
                    .get("pending"):
                found[recorded["apply_id"]] = recorded
    for apply_id, recorded in found.items():
        if recorded.get("pending"):
            with step(f"read the journal of apply {recorded['apply_id']}", "03_registry_remediation.ipynb",
                      session.simulated, total=1) as progress:
                found[apply_id] = recover_apply(session.target, recorded)
                progress.advance(found[apply_id]["error"] or "the apply completed")
    return [found[apply_id] for apply_id in sorted(found)]


def _save_apply_report(session: Session, report: ApplyReport, plan: RemediationPlan,
                       earlier: list[dict] | None = None) -> None:
    """One shape for every run (dry, no-op, real); a real apply's file already holds the host's own backup. With
    earlier applies in the folder, the backup is each value's state before the first of them, so a rollback goes
    back to where the host was before the runbook touched it, not to a half-way point."""
    earlier = earlier or []
    own = read_json(session.evidence / "apply-report.json")
    current = [{"apply_id": report.apply_id, "results": report.results,
                "backup": own.get("backup", []) if own.get("apply_id") == report.apply_id else []}] \
        if report.apply_id else []
    applies = [*earlier, *current]
    backup = original_backup(applies)
    session.save_json("apply-report.json", {
        "host": session.host, "simulated": report.simulated, "dry_run": report.dry_run,
        "changed": report.changed_anything, "restart": plan.restart, "apply_id": report.apply_id,
        "completed": report.completed, "error": report.error, "recovered": report.recovered,
        "results": report.results, "backup": backup,
        "earlier_applies": [{"apply_id": e["apply_id"], "file": e.get("_file"), "completed": e.get("completed"),
                             "recovered_from_journal": bool(e.get("recovered_from_journal")), "error": e.get("error"),
                             "results": e.get("results", []), "backup": e.get("backup", [])} for e in earlier]})
    if earlier and backup:
        session.write("rollback.reg", to_bytes(rollback_from_backup(backup, session.host, report.simulated)))


def _read_after(session: Session) -> HostFacts:
    """The host as it is now, saved with its verdict as facts-after.json / verdict-after.json."""
    session.facts_after = read_host(session, save_as="facts-after.json")
    session.verdict_after = assess(session.facts_after, session.params.profile)
    session.write("verdict-after.json", session.verdict_after.dumps())
    return session.facts_after


def read_back(session: Session) -> None:
    """Read the host again and compare each planned value: before, planned, and what the host holds now."""
    plan = session.plan or _plan(session)
    after = _read_after(session)
    rows = []
    for change, prior in zip(plan.changes, plan.prior):
        now = after.registry.get(change.path, change.name)
        before = "(absent)" if prior is None else f"{prior.type} {prior.data}"
        current = "(absent)" if now is None else f"{now.type} {now.data}"
        status = "as planned" if now is not None and now.same_as(change.type, change.data) else "NOT as planned"
        rows.append([f"{change.path}\\{change.name}", before, f"{change.type} {change.data}", current, status])
    written = session.applied is not None and not session.applied.dry_run
    if not plan.changes:
        head = "Nothing was planned, so nothing changed: the host already holds every value this profile wants."
    elif not written:
        head = "Dry run: nothing was written, so every value is still as before (NOT as planned)."
    elif all(row[4] == "as planned" for row in rows):
        head = f"Every planned value reads back as planned ({len(rows)})."
    else:
        head = "Some values do not read back as planned: see the rows marked NOT as planned."
    card = Card(f"<h4>Read-back diff</h4><p>{html.escape(head)}</p>"
                + (html_table(["Value", "Before", "Planned", "Now", "Status"], rows) if rows else ""),
                f"Read-back diff: {head}\n{text_table(rows)}")
    session.show(card)




def reboot_if_needed(session: Session) -> None:
    """Reboot and wait when the change needs it and reboot=True; otherwise say plainly what stays broken."""
    after, verdict_after = session.facts_after, session.verdict_after
    restart = session.plan.restart if session.plan else "none"
    written = session.applied is not None and session.applied.changed_anything
    # An earlier attempt's writes are not counted: it may have rebooted the host already, so only what the host
    # shows now (values in place, a fresh process still failing) asks for a reboot on their behalf.
    pending = (written and restart == "reboot") or (after is not None and verdict_after is not None
                                                    and reboot_pending(after, verdict_after))
    boot_seen = after.os.last_boot if after else None  # decides the restart if the answer to the request is lost
    if not pending:
        text = "No reboot needed."
        if written and restart == "new_process":
            text += (" Every new process reads the .NET values; sessions and services already running keep the old "
                     "value until they restart.")
        card = Card(f"<p>{html.escape(text)}</p>", text)
    elif session.params.reboot and not session.params.wait_for_reboot:
        scheduled = schedule_reboot(session.target, boot_seen=boot_seen)
        session.save_json(REBOOT_FILE, scheduled.to_json())
        session.reboot_scheduled = True
        card = Card(scheduled._repr_html_(), scheduled.render_text())
    elif session.params.reboot:
        with step(f"reboot {session.host}", "03_registry_remediation.ipynb", session.simulated,
                  total=1) as progress:
            report = reboot_and_wait(session.target, poll_s=0.5, boot_seen=boot_seen)
            progress.advance("WinRM answers again")
        session.rebooted = True
        card = Card(report._repr_html_(), report.render_text())
    else:
        text = (f"REBOOT PENDING on {session.host}: Schannel reads its protocol values at boot, so Windows "
                "PowerShell, Connect-MgGraph / Connect-ExchangeOnline and every other Schannel client on this host "
                "keep failing with AADSTS1002016 until it restarts. Restart it in a maintenance window (or run "
                "this notebook again with reboot=True), then run 04_powershell_session_fix.ipynb to prove the fix.")
        card = Card("<div style='border-left:6px solid #b26a00;background:#fff4e5;padding:6px 10px'><b>"
                    f"{html.escape(text)}</b></div>", text)
    session.show(card)


def verify_after(session: Session) -> None:
    """The verdict after the change (re-read after a reboot), with the default probe as the proof."""
    if session.rebooted or session.facts_after is None:
        _read_after(session)
    assert session.facts_after is not None and session.verdict_after is not None
    session.show(session.verdict_after)
    client = fresh_client_answer(session.facts_after)
    if client is not None and client.accepted:
        text = f"A fresh Windows PowerShell on the host now gets past TLS with Entra: {client.reason}."
    elif reboot_pending(session.facts_after, session.verdict_after):
        text = (f"The values are in place but Entra still refuses a fresh Windows PowerShell ({client.reason}): "
                "the reboot is pending.")
    else:
        text = ("A fresh Windows PowerShell on the host still does not get past TLS with Entra"
                + (f": {client.reason}." if client else "."))
    if session.reboot_scheduled:
        text += " The restart is scheduled: notebook 04 reads the host again once it reports a new boot time."
    session.show(Card(f"<p><b>{html.escape(text)}</b></p>", text))
