"""The runbook's steps against one host: inspect, probe, apply a plan, the session fix, reboot and wait.

Notebooks, widgets and the CLI all call these functions, so a headless run and a click in JupyterLab do the same
thing. Every step returns a report that renders itself (HTML for notebooks and exported evidence, text for
terminals), and every report of a simulated host says SIMULATED.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import facts as facts_module
from . import knowledge as k
from .errors import FactsError, RemoteScriptFailed, TimedOut
from .evidence import write_scrubbed
from .files import private_folder
from .facts import HostFacts
from .plan import RemediationPlan
from .regfile import RegOperation, render, to_bytes
from .target import DEFAULT_ENDPOINTS, Target
from .verdict import SIMULATED_BANNER_HTML

SIMULATED_TEXT = "*** SIMULATED HOST: not a real Windows machine ***"


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
@dataclass(frozen=True)
class ProbeReport:
    host: str
    simulated: bool
    probes: tuple[facts_module.Probe, ...]
    title: str = "TLS probes"
    security_protocol: tuple[int, int] | None = None  # (before, after) for the session fix

    @property
    def ok(self) -> bool:
        """Every TLS probe that reached its endpoint was accepted by it."""
        tls = [p for p in self.probes if p.mode != "tcp"]
        return bool(tls) and all(p.ok for p in tls)

    def rows(self) -> list[list[Any]]:
        return [[p.endpoint, p.mode, "ok" if p.ok else "FAILED", p.protocol or "", p.cipher or "", p.error or ""]
                for p in self.probes]

    def render_text(self) -> str:
        lines = [SIMULATED_TEXT] if self.simulated else []
        lines.append(f"{self.title} from {self.host}")
        if self.security_protocol:
            before, after = self.security_protocol
            lines.append(f"SecurityProtocol {k.security_protocol_name(before)} ({before}) -> "
                         f"{k.security_protocol_name(after)} ({after})")
        lines += ["  " + "  ".join(str(c) for c in row) for row in self.rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        sp = ""
        if self.security_protocol:
            before, after = self.security_protocol
            sp = (f"<p>SecurityProtocol <code>{k.security_protocol_name(before)}</code> ({before}) &rarr; "
                  f"<code>{k.security_protocol_name(after)}</code> ({after})</p>")
        return (f"{_banner(self.simulated)}<h4>{html.escape(self.title)} from {html.escape(self.host)}</h4>{sp}"
                + html_table(["Endpoint", "Mode", "Result", "Protocol", "Cipher", "Error"], self.rows()))


def _probes(items: list[dict]) -> tuple[facts_module.Probe, ...]:
    return tuple(facts_module.Probe(p["endpoint"], p["mode"], bool(p["ok"]), p.get("protocol"), p.get("cipher"),
                                    p.get("error")) for p in items)


def probe_host(target: Target, endpoints: tuple[str, ...] | list[str] = DEFAULT_ENDPOINTS) -> ProbeReport:
    data = target.run("probe", {"endpoints": list(endpoints)})
    return ProbeReport(target.name, target.simulated, _probes(data["probes"]))


def session_fix(target: Target, mode: str = "bor",
                endpoints: tuple[str, ...] | list[str] = DEFAULT_ENDPOINTS) -> ProbeReport:
    """The per-session fix in one process, proven by a probe in that same process."""
    data = target.run("session_fix", {"mode": mode, "endpoints": list(endpoints)})
    title = "Session fix: " + ("SecurityProtocol -bor Tls12" if mode == "bor" else "SecurityProtocol = Tls12")
    return ProbeReport(target.name, target.simulated, _probes(data["probes"]), title, (data["before"], data["after"]))


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
                 r.get("error") or ""] for r in self.results]

    def render_text(self) -> str:
        lines = [SIMULATED_TEXT] if self.simulated else []
        lines.append(f"Apply on {self.host}: {self.summary()}")
        lines += ["  " + "  ".join(row) for row in self.rows()]
        lines += [f"  {kind}: {path}" for kind, path in self.files.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        files = "".join(f"<li>{html.escape(kind)}: <code>{html.escape(path)}</code></li>"
                        for kind, path in self.files.items())
        return (f"{_banner(self.simulated)}<h4>Apply on {html.escape(self.host)}</h4>"
                f"<p><b>{html.escape(self.summary())}</b></p>"
                + html_table(["Value", "Before", "After (read back)", "Status", "Error"], self.rows())
                + (f"<ul>{files}</ul>" if files else ""))


def apply_plan(target: Target, plan: RemediationPlan, *, apply: bool = False,
               evidence_dir: Path | str | None = None) -> ApplyReport:
    """Write the plan's values (only with apply=True), rollback file first, then read back every value.

    With an evidence folder, the rollback file and an apply report naming the apply id are on disk before the host
    is touched (if they cannot be written, nothing is applied): whatever happens to this process during the apply,
    the evidence says which journal on the host to read. A dropped connection mid-apply leaves the host's own
    journal; it is read back so the report says exactly what was and was not written, and the rollback file is
    rebuilt from the host's backup.
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
    if not apply:
        report.results = [{"path": c.path, "name": c.name, "status": "planned",
                           "before": None if prior is None else {"type": prior.type, "data": prior.data},
                           "after": {"type": c.type, "data": c.data}, "error": None}
                          for c, prior in zip(plan.changes, plan.prior)]
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
    except TimedOut as exc:
        report.error = str(exc)
        journal = target.run("journal", {"apply_id": report.apply_id})
    report.results, report.completed = journal["results"], bool(journal["completed"])
    if not report.completed and report.error is None:
        failed = [r for r in report.results if r["status"] == "failed"]
        report.error = failed[0].get("error") if failed else "apply stopped before the end"
    if folder is not None:
        if journal.get("backup"):
            keep("rollback.reg", to_bytes(rollback_from_backup(journal["backup"], target.name, report.simulated)))
        keep("apply-report.json", json.dumps(
            {"host": target.name, "simulated": report.simulated, "apply_id": report.apply_id,
             "completed": report.completed, "error": report.error, "restart": plan.restart,
             "results": report.results, "backup": journal.get("backup", [])}, indent=2))
    return report


def recover_apply(target: Target, recorded: dict) -> dict:
    """An apply whose answer never reached the evidence (the runner stopped during it), completed from the journal
    the host keeps under its apply id: what was written, and the backup taken before the first write."""
    try:
        journal = target.run("journal", {"apply_id": recorded["apply_id"]})
    except RemoteScriptFailed as exc:
        if "no journal for apply_id" not in str(exc):
            raise
        return {**recorded, "pending": False, "completed": False, "results": [], "backup": [],
                "error": "the apply never started on the host (it has no journal for this apply id)"}
    completed = bool(journal["completed"])
    return {**recorded, "pending": False, "completed": completed, "results": journal["results"],
            "backup": journal["backup"], "recovered_from_journal": True,
            "error": None if completed else "the apply stopped part-way (read from the host's journal)"}


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
    """The exact undo of an apply, from the state the host recorded before writing anything."""
    operations, created_keys = [], set()
    for entry in backup:
        if entry["existed"]:
            operations.append(RegOperation(entry["path"], entry["name"], entry["type"], entry["data"]))
        else:
            operations.append(RegOperation(entry["path"], entry["name"]))
            if not entry.get("key_existed", True):
                created_keys.add(entry["path"])
    operations += [RegOperation(key, None) for key in sorted(created_keys)]
    comments = [f"tls-runbook rollback for {host}, from the backup the host recorded before writing"]
    if simulated:
        comments.insert(0, "SIMULATED HOST: produced against the tls-runbook simulator")
    return render(operations, comments)


def rollback_host(target: Target, apply_id: str, backup: list[dict], *, apply: bool = False) -> ApplyReport:
    """Restore what an apply replaced, from the backup the host recorded (dry-run unless apply=True)."""
    from .engine import restart_for_paths

    restart = restart_for_paths(entry["path"] for entry in backup)
    report = ApplyReport(target.name, target.simulated, not apply, restart, apply_id=apply_id)
    if not apply:
        report.results = [{"path": e["path"], "name": e["name"], "status": "planned", "before": None,
                           "after": {"type": e["type"], "data": e["data"]} if e["existed"] else None, "error": None}
                          for e in backup]
        return report
    data = target.run("restore", {"apply_id": apply_id, "backup": backup})
    report.results, report.completed = data["results"], bool(data["completed"])
    if not report.completed:
        failed = [r for r in report.results if r["status"] == "failed"]
        report.error = failed[0].get("error") if failed else "restore stopped before the end"
    return report


# --- reboot --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RebootReport:
    host: str
    simulated: bool
    down_after_s: float
    up_after_s: float

    def render_text(self) -> str:
        prefix = SIMULATED_TEXT + "\n" if self.simulated else ""
        return (f"{prefix}{self.host} rebooted: WinRM went down after {self.down_after_s:.1f} s and answered again "
                f"{self.up_after_s:.1f} s later")

    def _repr_html_(self) -> str:
        return f"{_banner(self.simulated)}<p>{html.escape(self.render_text().splitlines()[-1])}</p>"


def reboot_and_wait(target: Target, *, delay_s: int = 5, down_timeout_s: float = 600, up_timeout_s: float = 1800,
                    poll_s: float = 2) -> RebootReport:
    target.run("reboot", {"delay_s": delay_s})
    waited = target.transport.wait_for_reboot(down_timeout_s, up_timeout_s, poll_s)  # type: ignore[attr-defined]
    return RebootReport(target.name, target.simulated, waited.down_after_s, waited.up_after_s)
