"""The runbook's steps against one host: inspect, probe, apply a plan, the session fix (restarts: :mod:`.reboot`).

Notebooks, widgets and the CLI all call these functions, so a headless run and a click in JupyterLab do the same
thing. Every step returns a report that renders itself (HTML for notebooks and exported evidence, text for
terminals), and every report of a simulated host says SIMULATED.
"""

from __future__ import annotations

import html
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core import facts as facts_module
from ..core import knowledge as k
from ..core.acceptance import all_accepted, describe_session, entra_answer
from ..core.errors import FactsError, HostUnreachable, RemoteScriptFailed, TimedOut, one_line
from ..core.facts import HostFacts
from ..core.files import FileTooLarge, private_folder, read_limited
from ..core.plan import RemediationPlan
from ..core.regfile import RegOperation, render, to_bytes
from ..remote.scrub import Scrubber, write_scrubbed
from ..remote.target import DEFAULT_ENDPOINTS, Target
from ..core.verdict import SIMULATED_BANNER_HTML

SIMULATED_TEXT = "*** SIMULATED HOST: not a real Windows machine ***"
MAX_REPORT_BYTES = 4 * 1024 * 1024  # an apply report is a few kB; anything near this is not one


def _banner(simulated: bool) -> str:
    return SIMULATED_BANNER_HTML if simulated else ""


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain, escaped HTML table: static output that survives nbconvert and needs no widget state."""
    e = html.escape
    head = "".join(f"<th style='text-align:left'>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{e(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- inspect -------------------------------------------------------------------------------------------------
def inspect_host(target: Target, endpoints: tuple[str, ...] | list[str] = DEFAULT_ENDPOINTS) -> HostFacts:
    """Collect host facts (with SecurityProtocol and probes as observed evidence) and validate them."""
    args = {"values": [{"path": path, "name": name} for path, name in k.values_read()], "host": target.name,
            "endpoints": list(endpoints)}
    data = target.run("inspect", args)
    try:
        host_facts = facts_module.from_dict(data)
    except FactsError as exc:
        raise RemoteScriptFailed(target.name, f"inspect returned facts that do not validate: {exc}") from None
    target.simulated = target.simulated or host_facts.simulated
    return host_facts


# --- probe ---------------------------------------------------------------------------------------------------
_ANSWER_WORDS = {"accepted": "ACCEPTED", "aadsts1002016": "REFUSED: AADSTS1002016", "handshake_failure":
                 "HANDSHAKE FAILED", "certificate": "CERTIFICATE INVALID", "unreachable": "UNREACHABLE",
                 "unknown": "-"}


@dataclass(frozen=True)
class ProbeReport:
    host: str
    simulated: bool
    probes: tuple[facts_module.Probe, ...]
    title: str = "TLS probes"
    security_protocol: tuple[int, int] | None = None  # (before, after) for the session fix
    fix_error: str | None = None  # the runtime refused the session fix's SecurityProtocol

    @property
    def ok(self) -> bool:
        """Entra accepts what the probes saw (runbook_lib.core.acceptance decides), and nothing was refused or cut off."""
        return all_accepted(self.probes)

    def rows(self) -> list[list[Any]]:
        rows = []
        for p in self.probes:
            answer = entra_answer(p)
            if p.mode == "app":
                seen = (f"HTTP {p.http_status}" + (f", AADSTS{p.aadsts}" if p.aadsts else "") if p.ok
                        else f"no answer ({p.web_status or 'no status'})")
            elif p.mode == "tcp":
                seen = "connected" if p.ok else "no connection"
            else:
                seen = describe_session(p) if p.ok else "no handshake"
            rows.append([p.endpoint, p.mode, seen, _ANSWER_WORDS[answer.outcome],
                         p.error or (p.aadsts_text or "")])
        return rows

    def render_text(self) -> str:
        lines = [SIMULATED_TEXT] if self.simulated else []
        lines.append(f"{self.title} from {self.host}")
        lines += self._security_protocol_lines()
        lines += ["  " + "  ".join(str(c) for c in row) for row in self.rows()]
        return "\n".join(lines)

    def _security_protocol_lines(self) -> list[str]:
        if not self.security_protocol:
            return []
        before, after = self.security_protocol
        lines = [f"SecurityProtocol {k.security_protocol_name(before)} ({before}) -> "
                 f"{k.security_protocol_name(after)} ({after})"]
        if self.fix_error:
            lines.append(f"The runtime refused the new value: {self.fix_error}")
        return lines

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>{html.escape(line)}</p>" for line in self._security_protocol_lines())
        return (f"{_banner(self.simulated)}<h4>{html.escape(self.title)} from {html.escape(self.host)}</h4>{notes}"
                + html_table(["Endpoint", "Probe", "Seen", "Entra", "Error or answer"], self.rows()))


def _probes(items: list[dict]) -> tuple[facts_module.Probe, ...]:
    return tuple(facts_module.probe_from_dict(item, f"probes[{index}]") for index, item in enumerate(items))


def probe_host(target: Target, endpoints: tuple[str, ...] | list[str] = DEFAULT_ENDPOINTS) -> ProbeReport:
    """TCP, the default and an explicit TLS 1.2 handshake, and the token request Connect-AzureAD makes, from a fresh
    Windows PowerShell on the host."""
    data = target.run("probe", {"endpoints": list(endpoints)})
    return ProbeReport(target.name, target.simulated, _probes(data["probes"]))


def session_fix(target: Target, mode: str = "bor",
                endpoints: tuple[str, ...] | list[str] = DEFAULT_ENDPOINTS) -> ProbeReport:
    """The per-session fix in one process, proven by a handshake and a token request in that same process."""
    data = target.run("session_fix", {"mode": mode, "endpoints": list(endpoints)})
    title = "Session fix: " + ("SecurityProtocol -bor Tls12" if mode == "bor" else "SecurityProtocol = Tls12")
    return ProbeReport(target.name, target.simulated, _probes(data["probes"]), title, (data["before"], data["after"]),
                       data.get("error"))


# --- apply ---------------------------------------------------------------------------------------------------
@dataclass
class ApplyReport:
    """What an apply did, value by value, with the .reg files that undo it."""

    host: str
    simulated: bool
    dry_run: bool
    restart: str
    results: list[dict] = field(default_factory=list)
    completed: bool = False
    apply_id: str | None = None
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    recovered: str | None = None  # how the results were learned after the connection was lost

    @property
    def written(self) -> list[dict]:
        return [r for r in self.results if r["status"] in ("written", "restored", "deleted")]

    @property
    def changed_anything(self) -> bool:
        return bool(self.written)

    def summary(self) -> str:
        if self.dry_run:
            return f"DRY RUN: {len(self.results)} change(s) planned, nothing written (pass apply=True to write)"
        if self.error:
            return f"INCOMPLETE: {len(self.written)} value(s) written before: {self.error}"
        if not self.written:
            return "Nothing changed: every value already had the planned data"
        return f"{len(self.written)} value(s) written; restart needed: {self.restart}"

    def rows(self) -> list[list[Any]]:
        def show(state: dict | None) -> str:
            return "(absent)" if state is None else f"{state['type']} {json.dumps(state['data'])}"
        return [[f"{r['path']}\\{r['name']}", show(r.get("before")), show(r.get("after")), r["status"],
                 r.get("error") or r.get("note") or ""] for r in self.results]

    def render_text(self) -> str:
        lines = [SIMULATED_TEXT] if self.simulated else []
        lines.append(f"Apply on {self.host}: {self.summary()}")
        if self.recovered:
            lines.append(f"  {self.recovered}")
        lines += ["  " + "  ".join(row) for row in self.rows()]
        lines += [f"  {kind}: {path}" for kind, path in self.files.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        files = "".join(f"<li>{html.escape(kind)}: <code>{html.escape(path)}</code></li>"
                        for kind, path in self.files.items())
        recovered = f"<p>{html.escape(self.recovered)}</p>" if self.recovered else ""
        return (f"{_banner(self.simulated)}<h4>Apply on {html.escape(self.host)}</h4>"
                f"<p><b>{html.escape(self.summary())}</b></p>{recovered}"
                + html_table(["Value", "Before", "After (read back)", "Status", "Error or note"], self.rows())
                + (f"<ul>{files}</ul>" if files else ""))


@dataclass(frozen=True)
class _Recovery:
    """What the host's journal said once the apply process had ended (or the wait gave up)."""

    journal: dict | None
    current: list[dict]
    text: str
    error: str | None


def apply_plan(target: Target, plan: RemediationPlan, *, apply: bool = False,
               evidence_dir: Path | str | None = None, recovery_s: float = 600, poll_s: float = 5) -> ApplyReport:
    """Write the plan's values (only with apply=True), rollback file first, then read back every value.

    With an evidence folder, the rollback file and an apply report naming the apply id are on disk before the host
    is touched (if they cannot be written, nothing is applied): whatever happens to this process during the apply,
    the evidence says which journal on the host to read. A lost connection does not stop the apply process on the
    host, and deleting the shell may or may not have killed it. So the host's journal is read until it says
    completed or names a process that no longer runs (at most ``recovery_s``); the report then says exactly what
    was written (the journal, plus any value the process wrote but could not journal before it ended), and the
    rollback file is rebuilt from the host's backup. No journal means the apply never started: the read claims its
    apply_id, so it cannot start late either.
    """
    report = ApplyReport(target.name, target.simulated or plan.simulated, not apply, plan.restart)
    folder = Path(evidence_dir) if evidence_dir is not None else None
    scrubber = target.scrubber()

    def keep(name: str, data: bytes | str) -> Path:
        assert folder is not None
        write_scrubbed(folder / name, data, scrubber)
        return folder / name

    if folder is not None:
        private_folder(folder)
        plan.write(folder / "fix.reg", folder / "rollback.reg", lambda path, data: write_scrubbed(path, data, scrubber))
        report.files = {"fix .reg": str(folder / "fix.reg"), "rollback .reg": str(folder / "rollback.reg")}
    planned = [{"path": c.path, "name": c.name, "status": "planned",
                "before": None if prior is None else {"type": prior.type, "data": prior.data},
                "after": {"type": c.type, "data": c.data}, "error": None}
               for c, prior in zip(plan.changes, plan.prior)]
    if not apply:
        report.results = planned
        return report
    if not plan.changes:
        report.completed = True
        return report
    report.apply_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    args = {"apply_id": report.apply_id,
            "changes": [{"path": c.path, "name": c.name, "type": c.type, "data": c.data} for c in plan.changes]}
    if folder is not None:
        keep("apply-report.json", json.dumps(
            {"host": target.name, "simulated": report.simulated, "apply_id": report.apply_id, "pending": True,
             "completed": False, "error": "sent to the host; no answer recorded yet", "restart": plan.restart,
             "planned": args["changes"], "results": [], "backup": []}, indent=2))
        report.files["apply report"] = str(folder / "apply-report.json")
    try:
        journal = target.run("apply", args)
        current: list[dict] = []
    except TimedOut as exc:
        recovery = _recover(target, report.apply_id, recovery_s, poll_s)
        journal, current, report.recovered = recovery.journal, recovery.current, f"{exc} - {recovery.text}"
        report.error = recovery.error
    except RemoteScriptFailed as exc:  # refused as a whole, before its first write (or no journal says otherwise)
        recovery = _recover(target, report.apply_id, 0, poll_s)
        journal, current, report.error = recovery.journal, recovery.current, str(exc)
    if journal is None:
        report.results = [dict(row, status="not_attempted", after=None) for row in planned]
        return _save_apply_report(report, folder, [], plan.restart, scrubber)
    report.results, report.completed = _reconciled(journal["results"], current), bool(journal["completed"])
    if not report.completed and report.error is None:
        failed = [r for r in report.results if r["status"] == "failed"]
        report.error = (journal.get("journal_error") or (failed[0].get("error") if failed else None)
                        or "apply stopped before the end")
    if folder is not None and journal.get("backup"):
        keep("rollback.reg", to_bytes(rollback_from_backup(journal["backup"], target.name, report.simulated)))
    return _save_apply_report(report, folder, journal.get("backup") or [], plan.restart, scrubber)


def _recover(target: Target, apply_id: str, recovery_s: float, poll_s: float) -> _Recovery:
    """Read the journal until the apply is known to be over; claim the apply_id when there is no journal."""
    deadline = time.monotonic() + recovery_s
    last: _Recovery | None = None
    while True:
        try:
            data = target.run("journal", {"apply_id": apply_id, "claim_if_absent": True})
        except (HostUnreachable, TimedOut) as exc:  # the network may still be down: keep asking
            last = last or _Recovery(None, [], f"the journal could not be read yet ({exc})",
                                     "state unknown: the host's journal could not be read")
        except RemoteScriptFailed as exc:
            return _Recovery(None, [], f"the journal could not be read: {exc}",
                             "state unknown: the host's journal could not be read")
        else:
            if data["state"] != "present":
                return _Recovery(None, [], "the host has no journal of it, so it did not start; its apply_id is now "
                                           "claimed, so it cannot start late", "apply did not start: nothing was written")
            journal, running = data["journal"], data["apply_running"]
            if journal["completed"]:
                return _Recovery(journal, data["current"], "the host's journal shows the apply completed", None)
            if running is False:
                return _Recovery(journal, data["current"], "the host's journal and registry show where the apply "
                                                           "process stopped",
                                 "the apply process ended part-way; run the apply again to converge")
            last = _Recovery(journal, data["current"], "the apply process was still running when the wait ended",
                             "apply still running on the host; read its journal again later")
        if time.monotonic() >= deadline:
            assert last is not None
            return last
        time.sleep(poll_s)


def _reconciled(results: list[dict], current: list[dict]) -> list[dict]:
    """The journal's rows, plus the write a process made but could not journal before it ended."""
    live = {(c["path"].casefold(), c["name"].casefold()): c["value"] for c in current}
    rows = []
    for row in results:
        now = live.get((row["path"].casefold(), row["name"].casefold()), row.get("after"))
        if row["status"] == "not_attempted" and now is not None and now == row.get("planned") \
                and now != row.get("before"):
            row = dict(row, status="written", after=now,
                       note="written; the apply process ended before it journaled this value")
        rows.append(row)
    return rows


def _save_apply_report(report: ApplyReport, folder: Path | None, backup: list[dict], restart: str,
                       scrubber: Scrubber) -> ApplyReport:
    if folder is not None:
        write_scrubbed(folder / "apply-report.json", json.dumps(
            {"host": report.host, "simulated": report.simulated, "apply_id": report.apply_id,
             "completed": report.completed, "error": report.error, "recovered": report.recovered,
             "restart": restart, "results": report.results, "backup": backup}, indent=2), scrubber)
        report.files["apply report"] = str(folder / "apply-report.json")
    return report


def recover_apply(target: Target, recorded: dict, recovery_s: float = 600, poll_s: float = 5) -> dict:
    """An apply whose answer never reached the evidence (the runner stopped during it), completed from the journal
    the host keeps under its apply id: what was written, and the backup taken before the first write. Read once, as
    a lost connection is: waiting while the apply still runs; no journal claims the apply id, so the apply cannot
    start late."""
    recovery = _recover(target, recorded["apply_id"], recovery_s, poll_s)
    if recovery.journal is None:
        return {**recorded, "pending": False, "completed": False, "results": [], "backup": [],
                "error": recovery.error}
    journal = recovery.journal
    return {**recorded, "pending": False, "completed": bool(journal["completed"]),
            "results": _reconciled(journal["results"], recovery.current), "backup": journal["backup"],
            "recovered_from_journal": True, "error": recovery.error}


def original_backup(applies: list[dict]) -> list[dict]:
    """Across several applies to one host (oldest first), each value's state before the first of them touched it:
    what a rollback must restore, however many attempts it took to converge."""
    chosen: dict[tuple[str, str], dict] = {}
    for applied in applies:
        for entry in applied.get("backup") or []:
            chosen.setdefault((entry["path"].casefold(), entry["name"].casefold()), entry)
    return list(chosen.values())


def written_values(applies: list[dict]) -> set[tuple[str, str]]:
    """(path, name), case-folded as the registry compares them, of every value any of these applies wrote."""
    return {(r["path"].casefold(), r["name"].casefold()) for applied in applies
            for r in applied.get("results") or [] if r.get("status") == "written"}


def rollback_from_backup(backup: list[dict], host: str, simulated: bool) -> str:
    """The exact undo of an apply's values, from the state the host recorded before writing anything.

    Values only, as ``restore`` does: a value that existed gets its kind and data back, one the apply created is
    deleted, and keys stay (a .reg file can delete a key only with everything under it)."""
    operations = [RegOperation(e["path"], e["name"], e["type"], e["data"]) if e["existed"]
                  else RegOperation(e["path"], e["name"]) for e in backup]
    comments = [f"tls-runbook rollback for {host}, from the backup the host recorded before writing",
                "values only: keys the apply created stay, empty"]
    if simulated:
        comments.insert(0, "SIMULATED HOST: produced against the tls-runbook simulator")
    return render(operations, comments)


def rollback_host(target: Target, apply_id: str, backup: list[dict], *, apply: bool = False) -> ApplyReport:
    """Restore what an apply wrote, from the backup in the host's own journal (dry-run unless apply=True).

    ``backup`` (from the evidence) only selects values: the host restores them from its journal, and only those the
    runbook manages and that apply wrote, so an edited evidence file cannot make it write anything else."""
    from ..core.engine import restart_for_paths

    managed = {(path.casefold(), name.casefold()) for path, name in k.values_planned()}
    wanted = [e for e in backup if (e["path"].casefold(), e["name"].casefold()) in managed]
    refused = [{"path": e["path"], "name": e["name"], "status": "refused", "before": None, "after": None,
                "error": "not a value the runbook manages"} for e in backup if e not in wanted]
    restart = restart_for_paths(entry["path"] for entry in wanted)
    report = ApplyReport(target.name, target.simulated, not apply, restart, apply_id=apply_id)
    if not apply:
        report.results = [{"path": e["path"], "name": e["name"], "status": "planned", "before": None,
                           "after": {"type": e["type"], "data": e["data"]} if e["existed"] else None, "error": None}
                          for e in wanted] + refused
        return report
    results: list[dict] = []
    completed = True
    if wanted:
        data = target.run("restore", {"apply_id": apply_id,
                                      "values": [{"path": e["path"], "name": e["name"]} for e in wanted]})
        results, completed = data["results"], bool(data["completed"])
    report.results, report.completed = results + refused, completed
    if not report.completed:
        failed = [r for r in report.results if r["status"] == "failed"]
        report.error = failed[0].get("error") if failed else "restore stopped before the end"
    return report


def apply_reports(folder: Path) -> list[dict]:
    """The apply reports under a host's evidence folder (its attempts and archived applies too), read bounded."""
    reports = []
    for path in sorted(folder.rglob("apply-report.json")) if folder.is_dir() else []:
        if path.is_symlink():
            continue
        try:
            doc = json.loads(read_limited(path, MAX_REPORT_BYTES).decode("utf-8"))
        except (OSError, ValueError, FileTooLarge):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("apply_id"), str):
            reports.append({**doc, "_file": one_line(path.relative_to(folder).as_posix(), 200)})
    return reports
