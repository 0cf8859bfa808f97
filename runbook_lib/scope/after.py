"""And back: did a host's legacy-TLS sign-ins stop after the fleet run that fixed it?

Per host of the run, the sign-ins that map to it are split at the run's end (``ended_at`` in the bundle's
``manifest.json``): legacy and 1002016 before, the same after, and how many sign-ins of any kind came after (zero
legacy after means something only if the host signed in at all). The result is written *beside* the bundle as
``<run-id>.scope-after.json``, naming the SHA-256 of the manifest it was made against: the signed bundle is never
touched, and a later change to it shows. Sign-ins appear in the logs up to about two hours late, so a window that
ends right after the run says little about "after".
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..fleet import evidence
from ..core.errors import InputError
from ..remote.inventory import Inventory
from ..runbook.display import Card
from ..runbook.operations import html_table
from .mapping import HostMap
from .records import format_time, parse_time
from .report import ScopeReport, _text_table

SCHEMA = "tls-runbook/scope-after/v1"
SUFFIX = ".scope-after.json"
STATUSES = {"stopped": "no legacy sign-in after the run, and sign-ins were seen",
            "continuing": "legacy sign-ins or AADSTS1002016 after the run",
            "no_sign_ins_after": "legacy before, but no sign-in at all after the run in the window: cannot tell yet",
            "none_seen": "no legacy sign-in before or after"}


def beside_path(run_dir: Path) -> Path:
    return run_dir.parent / f"{run_dir.name}{SUFFIX}"


@dataclass
class AfterReport:
    doc: dict
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def hosts(self) -> list[dict]:
        return self.doc["hosts"]

    def dumps(self) -> str:
        return json.dumps(self.doc, indent=2, ensure_ascii=False) + "\n"

    def to_csv(self) -> str:
        import csv
        import io

        columns = ["name", "run_outcome", "legacy_before", "failures_before", "legacy_after", "failures_after",
                   "sign_ins_after", "last_legacy", "status"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\r\n", extrasaction="ignore")
        writer.writeheader()
        for row in self.hosts:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return buffer.getvalue()

    def _rows(self) -> list[list]:
        return [[h["name"], h["run_outcome"], h["legacy_before"], h["failures_before"], h["legacy_after"],
                 h["failures_after"], h["sign_ins_after"], h["last_legacy"] or "-", h["status"]] for h in self.hosts]

    _HEADERS = ["Host", "Run outcome", "Legacy before", "Failures before", "Legacy after", "Failures after",
                "Sign-ins after", "Last legacy", "Status"]

    def _head(self) -> str:
        d = self.doc
        return (f"Run {d['run_id']} ended {d['run_ended_at']}; sign-ins {d['window']['from']} .. {d['window']['to']}; "
                f"manifest SHA-256 {d['manifest_sha256']}")

    def render_text(self) -> str:
        return "\n".join([self._head(), *(f"note: {n}" for n in self.notes),
                          *_text_table([h.lower() for h in self._HEADERS], self._rows())])

    def __str__(self) -> str:
        return self.render_text()

    def _repr_html_(self) -> str:
        notes = "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in self.notes)
        legend = "".join(f"<li><code>{k}</code>: {html.escape(v)}</li>" for k, v in STATUSES.items())
        return (f"<h4>Legacy-TLS sign-ins before and after the run</h4><p>{html.escape(self._head())}</p>{notes}"
                + html_table(self._HEADERS, self._rows()) + f"<ul>{legend}</ul>")

    @classmethod
    def beside(cls, run_dir: Path | str) -> "AfterReport | Card":
        """The comparison written beside a run folder, checked against the manifest it names; a note when none."""
        run_dir = Path(run_dir)
        path = beside_path(run_dir)
        if not path.is_file():
            text = (f"No sign-in comparison beside this run ({path.name}): tls-runbook scope SOURCE... --after "
                    f"{run_dir} --inventory FILE writes one.")
            return Card(f"<p>{html.escape(text)}</p>", text)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("schema") != SCHEMA or not isinstance(doc.get("hosts"), list):
                raise ValueError
        except (OSError, ValueError, AttributeError):
            raise InputError(f"{path.name} is not a {SCHEMA} document") from None
        report = cls(doc, path)
        manifest = run_dir / evidence.MANIFEST
        if not manifest.is_file() or evidence.sha256_file(manifest) != doc.get("manifest_sha256"):
            report.notes.append("the run's manifest.json is not the one this comparison was made against")
        return report


def check_run_folder(run_dir: Path | str) -> None:
    """Fail before any source is read when the folder is not a fleet run's bundle."""
    evidence.load_manifest(Path(run_dir))


def compare(report: ScopeReport, run_dir: Path | str, inventory: Inventory) -> AfterReport:
    """Before and after the run's end, per host of the run, from the records of ``report``."""
    run_dir = Path(run_dir)
    manifest = evidence.current_manifest(run_dir)
    try:
        ended = parse_time(manifest.get("ended_at"))
    except ValueError:
        raise InputError(f"{run_dir / evidence.MANIFEST}: no ended_at time: not a finished fleet run") from None
    names = [h.get("name") for h in manifest.get("hosts", []) if isinstance(h, dict)]
    outcomes = {h.get("name"): h.get("outcome", "") for h in manifest.get("hosts", []) if isinstance(h, dict)}
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"{run_dir / evidence.MANIFEST}: lists no hosts")
    host_map = HostMap(inventory)
    rows = {name.lower(): {"name": name, "run_outcome": outcomes.get(name, ""), "legacy_before": 0,
                           "failures_before": 0, "legacy_after": 0, "failures_after": 0, "sign_ins_after": 0,
                           "last_legacy": None} for name in names}
    last: dict[str, datetime] = {}
    for record in report.records:
        after = record.time >= ended
        for host in host_map.hosts_of(record):
            row = rows.get(host.lower())
            if row is None:
                continue
            when = "after" if after else "before"
            row[f"legacy_{when}"] += bool(record.legacy)
            row[f"failures_{when}"] += record.failure
            row["sign_ins_after"] += after
            if record.counted:
                last[host.lower()] = max(record.time, last.get(host.lower(), record.time))
    for key, row in rows.items():
        row["last_legacy"] = format_time(last[key]) if key in last else None
        row["status"] = _status(row)
    run_inventory = manifest.get("inventory") if isinstance(manifest.get("inventory"), dict) else {}
    doc = {"schema": SCHEMA, "run_id": manifest.get("run_id", run_dir.name), "bundle": run_dir.name,
           "manifest_sha256": evidence.sha256_file(run_dir / evidence.MANIFEST),
           "run_ended_at": format_time(ended),
           "window": {"from": format_time(report.window[0]), "to": format_time(report.window[1])},
           "sources": [s.to_dict() for s in report.sources],
           "inventory": {"name": inventory.path.name, "sha256": inventory.digest,
                         "matches_run": run_inventory.get("sha256") == inventory.digest},
           "generated_at": format_time(datetime.now(timezone.utc)),
           "hosts": list(rows.values())}
    result = AfterReport(doc)
    if not doc["inventory"]["matches_run"]:
        result.notes.append("the inventory differs from the one the run used (SHA-256): hosts may map differently")
    if report.window[1] <= ended:
        result.notes.append("the sign-ins end before the run did: nothing after it to compare")
    result.notes += [w for w in (s.warning for s in report.sources) if w]
    return result


def _status(row: dict) -> str:
    before, after = row["legacy_before"] + row["failures_before"], row["legacy_after"] + row["failures_after"]
    if after:
        return "continuing"
    if not before:
        return "none_seen"
    return "stopped" if row["sign_ins_after"] else "no_sign_ins_after"


def write_beside(result: AfterReport, run_dir: Path | str) -> Path:
    """Next to the run folder, never in it; written whole or not at all."""
    path = beside_path(Path(run_dir))
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(result.dumps(), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    result.path = path
    return path
