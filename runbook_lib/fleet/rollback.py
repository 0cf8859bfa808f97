"""What ``tls-runbook rollback`` may restore, decided from an evidence bundle before any host is contacted.

Only a host of that bundle (its name checked like an inventory's), only from a bundle whose signature and hashes
verify, only values the runbook manages (:func:`runbook_lib.core.knowledge.values_planned`, every value a plan can write) and
only values one of the host's applies actually wrote. Every file is read with a size limit.
A bundle that asks for anything else is refused whole: it was not written by this tool as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import evidence
from ..core import knowledge as k
from ..runbook.operations import MAX_REPORT_BYTES
from ..core.errors import InputError, one_line
from ..core.facts import host_problem
from ..core.files import FileTooLarge, read_limited
from ..remote.scripts import validate_args
from ..runbook.operations import original_backup, written_values


def managed_values() -> set[tuple[str, str]]:
    return {(path.casefold(), name.casefold()) for path, name in k.values_planned()}


def restore_set(root: Path | str, host: str, *, expected_key: str | None = None) -> tuple[str, list[dict]]:
    """(apply id, backup entries) to restore on ``host``, or InputError saying why the bundle cannot be used."""
    root = Path(root)
    problem = host_problem(host)
    if problem:
        raise InputError(f"--host {one_line(host, 80)!r}: {problem}")
    manifest = evidence.current_manifest(root)
    secrets, notes = evidence.credentials_for_scan(manifest.get("credential_references", []))
    check = evidence.verify(root, secrets, expected_key=expected_key, scan_notes=notes)
    if not check.ok:
        first = next((line for line in check.lines() if not line.startswith(("run:", "leak scan:"))), "")
        raise InputError(f"{root} does not verify ({first}): refusing to roll back from it")
    hosts = {entry.get("name") for entry in manifest.get("hosts", []) if isinstance(entry, dict)}
    if host not in hosts:
        raise InputError(f"host {host!r} is not a host of run {one_line(str(manifest.get('run_id')), 80)}")
    path = root / "hosts" / host / "apply-report.json"
    try:
        report = json.loads(read_limited(path, MAX_REPORT_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"no apply report for host {host!r} in {root}: nothing to roll back") from None
    except FileTooLarge as exc:
        raise InputError(f"{path}: {exc}, not an apply report") from None
    except (OSError, UnicodeError, ValueError):
        raise InputError(f"{path} is not valid JSON") from None
    return _checked(report, path)


def _checked(report: object, path: Path) -> tuple[str, list[dict]]:
    if not isinstance(report, dict) or not isinstance(report.get("backup", []), list) \
            or not isinstance(report.get("results", []), list) \
            or not isinstance(report.get("earlier_applies", []), list):
        raise InputError(f"{path} is not an apply report")
    applies = [report, *report.get("earlier_applies", [])]
    if not all(isinstance(a, dict) and isinstance(a.get("results", []), list)
               and all(isinstance(r, dict) and isinstance(r.get("path"), str) and isinstance(r.get("name"), str)
                       for r in a.get("results", [])) for a in applies):
        raise InputError(f"{path} is not an apply report (malformed results)")
    apply_id = report.get("apply_id") or next((a.get("apply_id") for a in reversed(applies) if a.get("apply_id")),
                                              None)
    if report.get("pending"):
        raise InputError(f"{path}: the apply's answer was never recorded; run notebook 03 (or tls-runbook run "
                         "--resume) first, which reads the host's journal")
    backup_entries = report.get("backup", [])
    try:
        for index, entry in enumerate(backup_entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("existed"), bool):
                raise InputError(f"backup[{index}]: no 'existed' (true or false)")
        values = [{"path": e.get("path"), "name": e.get("name")} for e in backup_entries]
        existing = [{"path": e["path"], "name": e["name"], "type": e.get("type"), "data": e.get("data")}
                    for e in backup_entries if e["existed"]]
        if values:
            validate_args("restore", {"apply_id": apply_id, "values": values})
        if existing:  # the data a value had, checked as an apply that wrote it back would be
            validate_args("apply", {"apply_id": apply_id, "changes": existing})
    except InputError as exc:
        raise InputError(f"{path} is not an apply report this tool wrote ({exc})") from None
    managed = managed_values()
    for entry in report["backup"]:
        key = (entry["path"].casefold(), entry["name"].casefold())
        if key not in managed:
            raise InputError(f"{path} asks to restore {one_line(entry['path'], 120)}\\{one_line(entry['name'], 40)}, "
                             "which the runbook never manages: refusing the whole rollback")
    written = written_values(applies)
    backup = [e for e in original_backup([report]) if (e["path"].casefold(), e["name"].casefold()) in written]
    if not backup:
        raise InputError(f"{path}: the host's applies wrote nothing, so there is nothing to roll back")
    return str(apply_id), backup
