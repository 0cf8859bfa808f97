"""What ``notebooks/00_scope.ipynb`` calls: one function per cell, every result a static rendering.

The notebook's parameters name sources and references only (``client_secret_ref``, ``token_ref`` are
``env:VARIABLE``/``keyring:...`` references, checked without being resolved): papermill copies parameters into the
executed notebook, so a secret is never one.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ..errors import InputError
from ..notebook import Card
from .auth import GraphAuth
from .collect import make_report
from .mapping import NoHostToLimit, limit_expression
from .records import EVENT_TYPES, Window
from .report import DailyChart, ScopeReport
from .sources import GRAPH_PREFIX

PARAMETERS = {"sources": "", "since": "", "until": "", "inventory": "", "redact": False, "client_id": "",
              "client_secret_ref": "", "client_certificate": "", "certificate_password_ref": "", "token_ref": "",
              "sign_in_types": ",".join(EVENT_TYPES)}
_NO_SOURCES = ("No sources yet: set the parameter sources to sign-in exports (Entra JSON or CSV, Log Analytics JSON "
               "or CSV), comma-separated, and/or graph:TENANT, and run again (papermill: -p sources FILE).")


@dataclass
class ScopeRun:
    report: ScopeReport | None
    inventory: str


def read(namespace: dict) -> ScopeRun:
    """Check the parameters, read the sources, show what was read; nothing is read when ``sources`` is empty."""
    values = {name: namespace.get(name, default) for name, default in PARAMETERS.items()}
    for name, value in values.items():
        if not isinstance(value, type(PARAMETERS[name])):
            raise InputError(f"parameter {name} must be {type(PARAMETERS[name]).__name__}")
    specs = [s.strip() for s in re.split(r"[,\n]", values["sources"]) if s.strip()]
    if not specs:
        print(_NO_SOURCES)
        return ScopeRun(None, values["inventory"])
    tenants = [s[len(GRAPH_PREFIX):].strip() for s in specs if s.startswith(GRAPH_PREFIX)]
    auth = GraphAuth(tenant=tenants[0] if tenants else "", client_id=values["client_id"],
                     client_secret=values["client_secret_ref"], client_certificate=values["client_certificate"],
                     certificate_password=values["certificate_password_ref"], token=values["token_ref"]).validate()
    from .collect import redactor

    report = make_report(specs, Window.parse(values["since"], values["until"]), values["inventory"] or None,
                         auth=auth, event_types=tuple(t.strip() for t in values["sign_in_types"].split(",")),
                         redact=redactor(None) if values["redact"] else None, notify=print)
    return ScopeRun(report, values["inventory"])


def sources(run: ScopeRun) -> Card | None:
    return run.report.summary_view() if run.report else None


def chart(run: ScopeRun) -> DailyChart | None:
    return run.report.chart() if run.report else None


def entities(run: ScopeRun) -> Card | None:
    return run.report.entities_view() if run.report else None


def hosts(run: ScopeRun) -> Card | None:
    return run.report.hosts_view() if run.report else None


def limit(run: ScopeRun) -> Card | None:
    """The ``--limit`` expression and the fleet command that uses it."""
    if not run.report:
        return None
    if not run.inventory:
        text = "Give an inventory to get a --limit expression for tls-runbook run."
        return Card(f"<p>{text}</p>", text)
    from ..inventory import load_inventory

    try:
        expression = limit_expression(load_inventory(run.inventory), run.report.host_names)
    except NoHostToLimit as exc:
        return Card(f"<p>{html.escape(str(exc))}</p>", str(exc))
    command = f"tls-runbook run --inventory {run.inventory} --limit '{expression}'"
    return Card(f"<p>--limit <code>{html.escape(expression)}</code></p><pre>{html.escape(command)}</pre>",
                f"--limit {expression}\n{command}")


__all__ = ["read", "sources", "chart", "entities", "hosts", "limit", "ScopeRun", "PARAMETERS"]
