"""SOURCE arguments of ``tls-runbook scope``: which export a file is, read by the matching reader, cut to the window.

The shape is recognised from the content, never from the file name: a JSON array of Graph ``signIn`` objects or
``{"value": [...]}`` (``entra_json``), Log Analytics rows (``log_analytics_json`` / ``log_analytics_csv``), or the
admin center's CSV (``entra_csv``, which cannot carry the legacy flag). ``graph:`` and ``graph:TENANT`` read live
from Microsoft Graph (:mod:`runbook_lib.scope.graph`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.errors import one_line
from ..core.files import FileTooLarge, decode_text, read_limited
from . import entra_csv, entra_json, log_analytics
from .errors import SourceError
from .records import SignIn, Window

MAX_SOURCE_BYTES = 512 * 1024 * 1024  # the admin center caps a download at 100,000 sign-ins, far below this
GRAPH_PREFIX = "graph:"


@dataclass(frozen=True)
class SourceRead:
    """What one source gave: its records inside the window, and what its format cannot count."""

    name: str
    format: str
    records: tuple[SignIn, ...]
    cannot_count: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        doc: dict[str, Any] = {"name": self.name, "format": self.format, "records": len(self.records)}
        if self.cannot_count:
            doc["cannot_count"] = list(self.cannot_count)
        return doc

    @property
    def warning(self) -> str | None:
        if "legacy" in self.cannot_count:
            return (f"warning: {self.name}: the admin center's CSV has no legacy-TLS flag; only AADSTS1002016 failures are "
                    "counted from it (download JSON for the flag)")
        return None


def read_file(path: Path | str, window: Window) -> SourceRead:
    path = Path(path)
    name = path.name
    try:
        raw = read_limited(path, MAX_SOURCE_BYTES)
    except FileTooLarge as exc:
        raise SourceError(f"{name}: {exc}; split the export by time") from None
    except OSError as exc:
        raise SourceError(f"{name}: cannot read it: {exc.strerror or type(exc).__name__}") from None
    try:
        text = decode_text(raw)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: not UTF-8 or UTF-16 text (byte {exc.start})") from None
    if not text.strip():
        raise SourceError(f"{name}: the file is empty")
    if text.lstrip()[:1] in "[{":
        return _read_json(name, text, window)
    return _read_csv(name, text, window)


def _records(name: str, items: list, parse: Callable[[Any], SignIn], window: Window) -> tuple[SignIn, ...]:
    kept = []
    for number, item in enumerate(items, 1):
        try:
            record = parse(item)
        except ValueError as exc:
            raise SourceError(f"{name}: record {number}: {exc}") from None
        if record.time in window:
            kept.append(record)
    return tuple(kept)


def _read_json(name: str, text: str, window: Window) -> SourceRead:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise SourceError(f"{name}: not valid JSON" + (f" (line {line})" if line else "")) from None
    except RecursionError:
        raise SourceError(f"{name}: JSON nested too deeply") from None
    found = entra_json.items(doc)
    if found is not None:
        return SourceRead(name, entra_json.FORMAT, _records(name, found, entra_json.sign_in, window))
    found = log_analytics.rows(doc)
    if found is not None:
        return SourceRead(name, log_analytics.JSON_FORMAT, _records(name, found, log_analytics.sign_in, window))
    raise SourceError(f"{name}: not a sign-in export: expected a JSON array of sign-ins (createdDateTime), Graph's "
                      "{\"value\": [...]}, or Log Analytics rows (TimeGenerated, ResultType)")


def _read_csv(name: str, text: str, window: Window) -> SourceRead:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        columns = entra_csv.Columns(header)
        if columns.is_entra():
            parse: Callable[[Any], SignIn] = lambda cells: entra_csv.sign_in(columns, cells)  # noqa: E731
            items: list = [row for row in reader if any(cell.strip() for cell in row)]
            return SourceRead(name, entra_csv.FORMAT, _records(name, items, parse, window), ("legacy",))
        names = [log_analytics.column_name(h) for h in header]
        if "TimeGenerated" in names and ("ResultType" in names or "AuthenticationProcessingDetails" in names):
            items = [dict(zip(names, row)) for row in reader if any(cell.strip() for cell in row)]
            return SourceRead(name, log_analytics.CSV_FORMAT, _records(name, items, log_analytics.sign_in, window))
    except csv.Error as exc:
        raise SourceError(f"{name}: line {reader.line_num}: bad CSV: {one_line(str(exc), 80)}") from None
    raise SourceError(f"{name}: not a sign-in export: a CSV needs the admin center's columns (Date (UTC), Sign-in "
                      "error code) or Log Analytics' (TimeGenerated, ResultType)")
