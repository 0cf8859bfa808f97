"""The scope, contract ``tls-runbook/scope/v1``: who still signs in over legacy TLS, from where, and on which hosts.

The JSON is the contract; the table, the CSV and the HTML say the same. ``legacy`` counts records whose flag is
"True", ``failures`` records refused with 1002016 (a record can be both). Entities are what a record shows (kind
``ip``, ``app``, ``service_principal``, ``user``, ``device``, ``user_agent``), sorted by ``legacy + failures``,
descending; a record seen in two sources (the same sign-in id) counts once. ``hosts`` are the inventory hosts the
records map to and ``via`` the entities that mapped them; ``unmapped`` groups the counted records that map to no
host by the first of ip, device, service principal, app and user they carry, so what is left to find is in one list.
Sign-in fields are untrusted text (a client sets its own user agent): HTML escapes them, the text table folds them
to printable characters, the CSV defuses spreadsheet formulas.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import html
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..core.errors import one_line
from ..runbook.display import Card
from ..runbook.operations import html_table
from .errors import EmptyWindow
from .mapping import HostMap
from .records import SignIn, Window, format_time
from .sources import SourceRead

SCHEMA = "tls-runbook/scope/v1"
KINDS = ("ip", "app", "service_principal", "user", "device", "user_agent")
_UNMAPPED_ORDER = ("ip", "device", "service_principal", "app", "user")
_CASELESS = ("user", "device")
_CSV_COLUMNS = ("section", "kind", "key", "records", "legacy", "failures", "first_seen", "last_seen", "apps", "hosts",
                "via", "note")


class Redactor:
    """User principal names become a keyed hash: the same user reads the same in every report made with one key,
    and nobody without the key can test a guessed name against it."""

    def __init__(self, key: bytes):
        self.key = key

    def __call__(self, user: str) -> str:
        digest = hmac.new(self.key, user.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()
        return f"user-{digest[:16]}"


@dataclass
class Entity:
    kind: str
    key: str
    legacy: int = 0
    failures: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    apps: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)

    def add(self, record: SignIn, hosts: set[str]) -> None:
        self.legacy += bool(record.legacy)
        self.failures += record.failure
        self.first_seen = min(filter(None, (self.first_seen, record.time)))
        self.last_seen = max(filter(None, (self.last_seen, record.time)))
        if record.app_name or record.app_id:
            self.apps.add(record.app_name or record.app_id)
        self.hosts |= hosts

    @property
    def weight(self) -> int:
        return self.legacy + self.failures

    def to_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "legacy": self.legacy, "failures": self.failures,
                "first_seen": _stamp(self.first_seen), "last_seen": _stamp(self.last_seen),
                "apps": sorted(self.apps), "hosts": sorted(self.hosts)}


@dataclass
class HostRow:
    name: str
    legacy: int = 0
    failures: int = 0
    last_seen: datetime | None = None
    via: set[str] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {"name": self.name, "legacy": self.legacy, "failures": self.failures,
                "last_seen": _stamp(self.last_seen), "via": sorted(self.via)}


def _stamp(value: datetime | None) -> str | None:
    return format_time(value) if value else None


def record_entities(record: SignIn, redact: Redactor | None = None) -> list[tuple[str, str]]:
    """The (kind, key) pairs a record shows; keys of users and devices compare without regard to case."""
    user = record.user or record.user_id
    pairs = [("ip", record.ip), ("app", record.app_id or record.app_name),
             ("service_principal", record.service_principal_id or record.service_principal_name),
             ("user", redact(user) if redact and user else user), ("device", record.device),
             ("user_agent", record.user_agent)]
    return [(kind, key) for kind, key in pairs if key]


def distinct(sources: list[SourceRead]) -> list[SignIn]:
    """Every record once: a sign-in id seen in an earlier source is the same sign-in."""
    seen: set[str] = set()
    records = []
    for source in sources:
        for record in source.records:
            if record.id:
                if record.id in seen:
                    continue
                seen.add(record.id)
            records.append(record)
    return records


@dataclass
class ScopeReport:
    window: tuple[datetime, datetime]
    sources: list[SourceRead]
    records: list[SignIn]  # distinct records in the window (not serialised: the chart and --after use them)
    entities: list[Entity]
    hosts: list[HostRow]
    unmapped: list[Entity]
    mapped: bool  # an inventory was given

    @property
    def records_read(self) -> int:
        return len(self.records)

    @property
    def legacy_records(self) -> int:
        return sum(1 for r in self.records if r.legacy)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.records if r.failure)

    @property
    def host_names(self) -> list[str]:
        return [host.name for host in self.hosts]

    # --- the contract --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "window": {"from": format_time(self.window[0]), "to": format_time(self.window[1])},
                "sources": [s.to_dict() for s in self.sources], "records_read": self.records_read,
                "legacy_records": self.legacy_records, "aadsts1002016_failures": self.failures,
                "entities": [e.to_dict() for e in self.entities], "hosts": [h.to_dict() for h in self.hosts],
                "unmapped": [{"kind": u.kind, "key": u.key, "legacy": u.legacy, "failures": u.failures}
                             for u in self.unmapped]}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_csv(self) -> str:
        """One table, a ``section`` column telling summary, source, entity, host and unmapped rows apart."""
        doc = self.to_dict()
        rows: list[dict[str, Any]] = [{
            "section": "summary", "records": doc["records_read"], "legacy": doc["legacy_records"],
            "failures": doc["aadsts1002016_failures"], "first_seen": doc["window"]["from"],
            "last_seen": doc["window"]["to"], "note": SCHEMA}]
        for source in doc["sources"]:
            rows.append({"section": "source", "kind": source["format"], "key": source["name"],
                         "records": source["records"],
                         "note": f"cannot count: {', '.join(source['cannot_count'])}" if "cannot_count" in source
                         else ""})
        for entity in doc["entities"]:
            rows.append({"section": "entity", **entity, "apps": "; ".join(entity["apps"]),
                         "hosts": "; ".join(entity["hosts"])})
        for host in doc["hosts"]:
            rows.append({"section": "host", "kind": "host", "key": host["name"], "legacy": host["legacy"],
                         "failures": host["failures"], "last_seen": host["last_seen"], "via": "; ".join(host["via"])})
        for item in doc["unmapped"]:
            rows.append({"section": "unmapped", **item})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, _CSV_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return buffer.getvalue()

    # --- for people ----------------------------------------------------------------------------------------
    def notes(self) -> list[str]:
        lines = [w for w in (s.warning for s in self.sources) if w]
        if not self.mapped:
            lines.append("no --inventory: hosts are not mapped (tls_runbook_egress ranges and device names do that)")
        return lines

    def render_text(self) -> str:
        doc = self.to_dict()
        lines = [f"Legacy-TLS sign-ins (AADSTS1002016 scope) {doc['window']['from']} .. {doc['window']['to']}",
                 f"{doc['records_read']} sign-in(s) read, {doc['legacy_records']} over legacy TLS, "
                 f"{doc['aadsts1002016_failures']} refused with AADSTS1002016"]
        lines += [f"  source {_fold(s['name'], 60)} ({s['format']}): {s['records']} record(s)" for s in doc["sources"]]
        lines += [f"  note: {note}" for note in self.notes()]
        lines += ["", "Entities"] + _text_table(["kind", "key", "legacy", "failures", "last seen", "apps", "hosts"], [
            [e["kind"], e["key"], e["legacy"], e["failures"], e["last_seen"], "; ".join(e["apps"]),
             "; ".join(e["hosts"])] for e in doc["entities"]])
        lines += ["", "Hosts"] + _text_table(["host", "legacy", "failures", "last seen", "via"], [
            [h["name"], h["legacy"], h["failures"], h["last_seen"], "; ".join(h["via"])] for h in doc["hosts"]])
        lines += ["", "Unmapped"] + _text_table(["kind", "key", "legacy", "failures"], [
            [u["kind"], u["key"], u["legacy"], u["failures"]] for u in doc["unmapped"]])
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def summary_view(self) -> Card:
        doc = self.to_dict()
        rows = [[s["name"], s["format"], s["records"], ", ".join(s.get("cannot_count", [])) or "-"]
                for s in doc["sources"]]
        head = (f"{doc['window']['from']} .. {doc['window']['to']}: {doc['records_read']} sign-in(s), "
                f"{doc['legacy_records']} over legacy TLS, {doc['aadsts1002016_failures']} refused with AADSTS1002016")
        notes = "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in self.notes())
        return Card(f"<p>{html.escape(head)}</p>{notes}" +
                    html_table(["Source", "Format", "Records", "Cannot count"], rows),
                    "\n".join([head, *(f"note: {n}" for n in self.notes()), *_text_table(
                        ["source", "format", "records", "cannot count"], rows)]))

    def entities_view(self, limit: int = 50) -> Card:
        rows = [[e["kind"], e["key"], e["legacy"], e["failures"], e["first_seen"], e["last_seen"],
                 "; ".join(e["apps"]), "; ".join(e["hosts"])] for e in self.to_dict()["entities"][:limit]]
        headers = ["Kind", "Key", "Legacy", "Failures", "First seen", "Last seen", "Apps", "Hosts"]
        more = len(self.entities) - len(rows)
        tail = f"{more} more in the JSON and CSV output" if more > 0 else ""
        return Card(html_table(headers, rows) + (f"<p>{tail}</p>" if tail else ""),
                    "\n".join(_text_table(headers, rows) + ([tail] if tail else [])))

    def hosts_view(self) -> Card:
        doc = self.to_dict()
        rows = [[h["name"], h["legacy"], h["failures"], h["last_seen"], "; ".join(h["via"])] for h in doc["hosts"]]
        unmapped = [[u["kind"], u["key"], u["legacy"], u["failures"]] for u in doc["unmapped"]]
        if not self.mapped:
            text = "No inventory given: hosts are not mapped."
            return Card(f"<p>{text}</p>", text)
        return Card("<h4>Hosts</h4>" + html_table(["Host", "Legacy", "Failures", "Last seen", "Via"], rows) +
                    "<h4>Not mapped to a host</h4>" + html_table(["Kind", "Key", "Legacy", "Failures"], unmapped),
                    "\n".join(["Hosts", *_text_table(["host", "legacy", "failures", "last seen", "via"], rows),
                               "Not mapped to a host", *_text_table(["kind", "key", "legacy", "failures"], unmapped)]))

    def chart(self) -> "DailyChart":
        return DailyChart(self.records)

    def _repr_html_(self) -> str:
        chart = self.chart()
        return (self.summary_view().html + chart._repr_html_() + "<h4>Entities</h4>" +
                self.entities_view(limit=len(self.entities)).html + self.hosts_view().html)


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP's CSV-injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _fold(value: Any, limit: int = 60) -> str:
    return one_line("" if value is None else str(value), limit)


def _text_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [[_fold(c, 48) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]


@dataclass
class DailyChart:
    """Legacy sign-ins per day by application, as a static PNG (AADSTS1002016 failures when no flag is known)."""

    records: list[SignIn]
    top: int = 8

    def series(self) -> tuple[str, dict[str, Counter]]:
        legacy = [r for r in self.records if r.legacy]
        chosen, what = (legacy, "Legacy-TLS sign-ins") if legacy else (
            [r for r in self.records if r.failure], "AADSTS1002016 failures")
        totals = Counter(r.app_name or r.app_id or "(no app)" for r in chosen)
        keep = {app for app, _ in totals.most_common(self.top)}
        per_app: dict[str, Counter] = defaultdict(Counter)
        for record in chosen:
            app = record.app_name or record.app_id or "(no app)"
            per_app[app if app in keep else "other apps"][record.time.date().isoformat()] += 1
        return what, dict(per_app)

    def png(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        what, per_app = self.series()
        days = sorted({day for counts in per_app.values() for day in counts})
        figure, axis = plt.subplots(figsize=(10, 3.6), dpi=100)
        bottom = [0] * len(days)
        for app in sorted(per_app, key=lambda a: -sum(per_app[a].values())):
            values = [per_app[app].get(day, 0) for day in days]
            axis.bar(days, values, bottom=bottom, label=app[:40])
            bottom = [b + v for b, v in zip(bottom, values)]
        axis.set_title(f"{what} per day by application" if days else f"No {what.lower()} in the window")
        axis.yaxis.get_major_locator().set_params(integer=True)
        if days:
            axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
            axis.tick_params(axis="x", labelrotation=60, labelsize="small")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def _repr_html_(self) -> str:
        what, _ = self.series()
        data = base64.b64encode(self.png()).decode()
        return f"<img alt='{html.escape(what)} per day by application' src='data:image/png;base64,{data}'>"

    def __repr__(self) -> str:
        what, per_app = self.series()
        return f"{what} per day by application: {sum(sum(c.values()) for c in per_app.values())} in {len(per_app)} app(s)"


def build(sources: list[SourceRead], window: Window, host_map: HostMap | None = None,
          redact: Redactor | None = None) -> ScopeReport:
    records = distinct(sources)
    if not records:
        ends = [f"{word} {format_time(t)}" for word, t in (("from", window.since), ("to", window.until)) if t]
        span = f" {' '.join(ends)}" if ends else ""
        raise EmptyWindow(f"no sign-ins{span} in {', '.join(s.name for s in sources)}: widen --since/--until; Entra "
                          "keeps sign-ins 30 days on P1/P2 and 7 on Free")
    times = [r.time for r in records]
    entities: dict[tuple[str, str], Entity] = {}
    hosts: dict[str, HostRow] = {}
    unmapped: dict[tuple[str, str], Entity] = {}
    for record in (r for r in records if r.counted):
        pairs = record_entities(record, redact)
        shown = [entities.setdefault((kind, key.lower() if kind in _CASELESS else key), Entity(kind, key))
                 for kind, key in pairs]  # the first spelling of a user or device names it
        found: dict[str, set[str]] = defaultdict(set)  # host -> "kind:key" that mapped it
        for entity in shown:
            for host in (host_map.hosts_for(entity.kind, entity.key) if host_map else ()):
                found[host].add(f"{entity.kind}:{entity.key}")
        for entity in shown:
            entity.add(record, set(found))
        for name, via in found.items():
            row = hosts.setdefault(name, HostRow(name))
            row.legacy += bool(record.legacy)
            row.failures += record.failure
            row.last_seen = max(filter(None, (row.last_seen, record.time)))
            row.via |= via
        if not found:
            kind, key = next((p for k in _UNMAPPED_ORDER for p in pairs if p[0] == k), ("ip", "(none)"))
            ident = (kind, key.lower() if kind in _CASELESS else key)
            unmapped.setdefault(ident, Entity(kind, key)).add(record, set())
    order = {kind: i for i, kind in enumerate(KINDS)}
    return ScopeReport(
        window=(window.since or min(times), window.until or max(times)), sources=sources, records=records,
        entities=sorted(entities.values(), key=lambda e: (-e.weight, order[e.kind], e.key)),
        hosts=sorted(hosts.values(), key=lambda h: (-(h.legacy + h.failures), h.name)),
        unmapped=sorted(unmapped.values(), key=lambda e: (-e.weight, order[e.kind], e.key)),
        mapped=host_map is not None)
