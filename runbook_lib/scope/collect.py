"""Reading the SOURCEs and making the report: what ``tls-runbook scope`` and notebook 00_scope call."""


from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..inventory import Inventory, load_inventory
from ..remote.credentials import resolve_secret
from .auth import GraphAuth
from .graph import read_graph
from .mapping import HostMap
from .records import EVENT_TYPES, Window
from .report import Redactor, ScopeReport, build
from .sources import GRAPH_PREFIX, SourceRead, read_file


def read_sources(specs: list[str], window: Window, auth: GraphAuth | None = None,
                 event_types: tuple[str, ...] = EVENT_TYPES, notify: Callable[[str], None] = lambda text: None
                 ) -> list[SourceRead]:
    """Every SOURCE, files first checked to exist so a typo fails before any sign-in to Graph."""
    from ..errors import InputError

    if not specs:
        raise InputError("scope needs at least one SOURCE: a sign-in export (JSON or CSV) or graph:[TENANT]")
    for spec in specs:
        if not spec.startswith(GRAPH_PREFIX) and not Path(spec).is_file():
            raise InputError(f"source {Path(spec).name!r} is not a file (or graph:TENANT for a live read)")
    reads = []
    for spec in specs:
        if spec.startswith(GRAPH_PREFIX):
            tenant = spec[len(GRAPH_PREFIX):].strip()
            given = auth or GraphAuth()
            reads.append(read_graph(spec, window, replace(given, tenant=tenant or given.tenant).validate(),
                                    event_types, notify=notify))
        else:
            reads.append(read_file(spec, window))
        if reads[-1].warning:
            notify(reads[-1].warning)
    return reads


def redactor(key_reference: str | None) -> Redactor:
    """A keyed hash for user names: the key by reference keeps hashes comparable across reports; without one,
    a fresh key makes them comparable within this report only."""
    if key_reference:
        return Redactor(resolve_secret(key_reference, "--redact-key").encode("utf-8"))
    return Redactor(secrets.token_bytes(32))


def make_report(specs: list[str], window: Window, inventory: Inventory | Path | str | None = None, *,
                auth: GraphAuth | None = None, event_types: tuple[str, ...] = EVENT_TYPES,
                redact: Redactor | None = None, notify: Callable[[str], None] = lambda text: None) -> ScopeReport:
    if inventory is not None and not isinstance(inventory, Inventory):
        inventory = load_inventory(inventory)
    sources = read_sources(specs, window, auth, event_types, notify)
    return build(sources, window, HostMap(inventory) if inventory is not None else None, redact)

