"""The verdict, schema ``tls-runbook/verdict/v1`` (``core/schemas/verdict.schema.json``): what the engine concluded
about one host, and why.

A verdict renders itself (``_repr_html_``, ``_repr_mimebundle_``, ``render_text``) so the same object reads the
same in JupyterLab, in exported HTML evidence (no widget state needed) and in a terminal.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from .errors import VerdictError
from .json_schema import schema_problem

SCHEMA = "tls-runbook/verdict/v1"
SEVERITIES = ("blocker", "error", "warning", "info")
PROFILES = ("minimal", "recommended")
CLIENT_STATES = ("fails", "ok", "absent", "unknown")
RESTARTS = ("none", "new_process", "reboot")
# Where the project explains every finding id, one section each; a finding points there by its id.
FINDINGS_DOC = "docs/findings.md"

_SEVERITY_COLOURS = {"blocker": "#8b0000", "error": "#c62828", "warning": "#b26a00", "info": "#1565c0"}
_ANSI = {"blocker": "\033[1;31m", "error": "\033[31m", "warning": "\033[33m", "info": "\033[34m"}
_ANSI_RESET = "\033[0m"


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    message: str
    source: str

    def to_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "message": self.message, "source": self.source}

    @property
    def docs(self) -> str:
        """The finding's section in the project's documentation. Derived from the id, so it is shown, not stored:
        verdict JSON and the evidence already written keep their shape."""
        return f"{FINDINGS_DOC}#{self.id}"


@dataclass(frozen=True)
class Change:
    """One registry value to write. ``current`` is the data there now (None when absent)."""

    path: str
    name: str
    type: str
    data: Any
    current: Any
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "name": self.name, "type": self.type, "data": self.data,
                "current": self.current, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    host: str
    profile: str
    affected: bool
    symptom: str | None
    clients: dict[str, str]
    findings: tuple[Finding, ...]
    blockers: tuple[str, ...]
    changes: tuple[Change, ...]
    restart: str
    simulated: bool = False

    @property
    def outcome(self) -> str:
        """One word for reports: blocked, compliant (nothing to change, not affected), or fixable."""
        if self.blockers:
            return "blocked"
        if not self.changes and not self.affected:
            return "compliant"
        return "fixable"

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "host": self.host,
            "simulated": self.simulated,
            "profile": self.profile,
            "affected": self.affected,
            "symptom": self.symptom,
            "clients": dict(self.clients),
            "findings": [f.to_dict() for f in self.findings],
            "blockers": list(self.blockers),
            "changes": [c.to_dict() for c in self.changes],
            "restart": self.restart,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, doc: Any) -> "Verdict":
        """Read back a verdict this project wrote (evidence, executed notebooks). Evidence outlives the run that wrote
        it and may be edited by hand, so the document is held to the schema first: a VerdictError names the field."""
        problem = schema_problem("verdict", doc)
        if problem:
            raise VerdictError(*problem)
        return cls(
            host=doc["host"], profile=doc["profile"], affected=doc["affected"], symptom=doc["symptom"],
            clients=dict(doc["clients"]),
            findings=tuple(Finding(**f) for f in doc["findings"]),
            blockers=tuple(doc["blockers"]),
            changes=tuple(Change(**c) for c in doc["changes"]),
            restart=doc["restart"], simulated=doc["simulated"],
        )

    # --- rendering ----------------------------------------------------------------------------------------
    def render_text(self, colour: bool = False) -> str:
        def paint(severity: str, text: str) -> str:
            return f"{_ANSI[severity]}{text}{_ANSI_RESET}" if colour else text

        lines = []
        if self.simulated:
            lines.append("*** SIMULATED HOST: not a real Windows machine ***")
        lines.append(f"Host {self.host}  profile {self.profile}  outcome {self.outcome.upper()}")
        lines.append(f"Affected: {'yes' if self.affected else 'no'}" + (f" ({self.symptom})" if self.symptom else ""))
        lines.append("Clients: " + ", ".join(f"{name}={state}" for name, state in self.clients.items()))
        if self.blockers:
            lines.append(paint("blocker", "Blockers: " + ", ".join(self.blockers)))
        lines.append("Findings:")
        for finding in self.findings:
            lines.append(f"  {paint(finding.severity, f'[{finding.severity:7}]')} {finding.id}: {finding.message}")
            lines.append(f"            {finding.source}")
            lines.append(f"            {finding.docs}")
        if self.changes:
            lines.append(f"Changes ({len(self.changes)}, restart: {self.restart}):")
            for change in self.changes:
                lines.append(f"  {change.path}\\{change.name}: {_show(change.current)} -> "
                             f"{change.type} {_show(change.data)}  ({change.reason})")
        else:
            lines.append("Changes: none")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def _repr_html_(self) -> str:
        e = html.escape
        parts = ['<div class="tls-runbook-verdict">']
        if self.simulated:
            parts.append(SIMULATED_BANNER_HTML)
        state_colour = {"blocked": "#8b0000", "fixable": "#b26a00", "compliant": "#2e7d32"}[self.outcome]
        parts.append(f'<h3 style="margin:4px 0">Verdict for {e(self.host)} '
                     f'<span style="color:{state_colour}">{e(self.outcome.upper())}</span></h3>')
        parts.append("<table><tbody>")
        rows = [("Profile", self.profile), ("Affected", "yes" if self.affected else "no"),
                ("Symptom", self.symptom or "none"), ("Restart", self.restart),
                ("Blockers", ", ".join(self.blockers) or "none")]
        rows += [(f"Client: {name}", state) for name, state in self.clients.items()]
        parts += [f"<tr><th style='text-align:left'>{e(k)}</th><td style='text-align:left'>{e(v)}</td></tr>"
                  for k, v in rows]
        parts.append("</tbody></table>")
        parts.append("<h4>Findings</h4><table class='tls-runbook-findings'><thead><tr><th>Severity</th><th>Id</th>"
                     "<th>Finding</th><th>Source</th></tr></thead><tbody>")
        for f in self.findings:
            parts.append(
                f"<tr><td style='color:{_SEVERITY_COLOURS[f.severity]};font-weight:bold'>{e(f.severity)}</td>"
                f"<td><code>{e(f.id)}</code><br><span class='tls-runbook-finding-docs' style='font-size:smaller'>"
                f"{e(f.docs)}</span></td><td style='text-align:left'>{e(f.message)}</td>"
                f"<td><a href='{e(f.source)}' target='_blank' rel='noopener'>source</a></td></tr>")
        parts.append("</tbody></table>")
        parts.append(changes_html(self.changes, self.restart))
        parts.append("</div>")
        return "".join(parts)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": self.render_text(), "text/html": self._repr_html_(),
                "application/json": self.to_dict()}


SIMULATED_BANNER_HTML = (
    '<div class="tls-runbook-simulated" style="background:#6a1b9a;color:white;padding:4px 8px;font-weight:bold">'
    "SIMULATED HOST: results come from the tls-runbook simulator, not a real Windows machine</div>")


def _show(data: Any) -> str:
    if data is None:
        return "(absent)"
    if isinstance(data, int):
        return f"{data} (0x{data:x})"
    return json.dumps(data, ensure_ascii=False)


def changes_html(changes: tuple[Change, ...] | list[Change], restart: str) -> str:
    """The plan as a current -> new table; shared by the verdict and the remediation plan."""
    e = html.escape
    if not changes:
        return "<p><b>Changes:</b> none</p>"
    rows = "".join(
        f"<tr><td style='text-align:left'><code>{e(c.path)}</code></td><td><code>{e(c.name)}</code></td>"
        f"<td>{e(_show(c.current))}</td><td>{e(c.type)} {e(_show(c.data))}</td><td><code>{e(c.reason)}</code></td>"
        "</tr>" for c in changes)
    return (f"<h4>Changes ({len(changes)}; restart: {e(restart)})</h4><table class='tls-runbook-changes'><thead><tr>"
            "<th>Key</th><th>Value</th><th>Current</th><th>New</th><th>Reason</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")
