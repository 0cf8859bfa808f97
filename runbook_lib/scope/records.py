"""One sign-in, whatever export it came from, and the two facts the scope counts: the legacy-TLS flag and 1002016.

Entra marks a sign-in over TLS 1.0/1.1 or 3DES with the entry ``{"key": "Legacy TLS (TLS 1.0, 1.1, 3DES)",
"value": "True"}`` in ``authenticationProcessingDetails``. Real exports carry the same key with ``"False"`` on
ordinary sign-ins, so the value decides, compared without regard to case; the key is matched by its start, as
Microsoft's own query does (``startswith "Legacy TLS"``). A refused sign-in has error code 1002016.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..core.errors import InputError

AADSTS_LEGACY_TLS = 1002016
LEGACY_KEY_PREFIX = "legacy tls"
EVENT_TYPES = ("interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity")

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*"
                  r"(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)
# Log Analytics' portal export writes "11/2/2026, 8:00:00.000 AM" in its "TimeGenerated [UTC]" column.
_US = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*([AP]M)?",
                 re.IGNORECASE)
_RELATIVE = re.compile(r"(\d{1,4})([dh])", re.IGNORECASE)


@dataclass(frozen=True)
class SignIn:
    """The fields the scope needs; text fields are "" when the export has none."""

    id: str
    time: datetime
    legacy: bool | None  # None: the export cannot carry the flag (the admin center's CSV)
    error_code: int | None
    ip: str = ""
    app_id: str = ""
    app_name: str = ""
    service_principal_id: str = ""
    service_principal_name: str = ""
    user: str = ""
    user_id: str = ""
    device: str = ""
    user_agent: str = ""
    event_type: str = ""

    @property
    def failure(self) -> bool:
        return self.error_code == AADSTS_LEGACY_TLS

    @property
    def counted(self) -> bool:
        """Whether the record is one the scope is about: legacy TLS, refused for it, or both."""
        return bool(self.legacy) or self.failure


def legacy_flag(details: Any) -> bool:
    """True when ``authenticationProcessingDetails`` (a list, or its JSON text as Log Analytics stores it) says
    legacy TLS; an absent entry means not legacy, as Microsoft documents the entry for legacy sign-ins only."""
    if isinstance(details, str):
        text = details.strip()
        if not text:
            return False
        try:
            details = json.loads(text)
        except ValueError:
            raise ValueError("authenticationProcessingDetails is not JSON") from None
    if details is None:
        return False
    if not isinstance(details, list):
        raise ValueError("authenticationProcessingDetails is not a list of key/value entries")
    for entry in details:
        if not isinstance(entry, dict):
            continue
        key, value = entry.get("key"), entry.get("value")
        if isinstance(key, str) and key.strip().lower().startswith(LEGACY_KEY_PREFIX):
            if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
                return True
    return False


def error_code(value: Any) -> int | None:
    """The AADSTS number of ``status.errorCode`` / ``ResultType`` / ``Sign-in error code`` (int or text)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("error code is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,10}\s*", value):
        return int(value)
    raise ValueError("error code is not a number")


def parse_time(text: Any) -> datetime:
    """A UTC datetime from the forms exports use: ISO 8601 with up to 7 fractional digits (Graph, Log Analytics),
    with or without a zone (no zone means UTC, as the admin center's "Date (UTC)"), or Log Analytics' portal
    form "11/2/2026, 8:00:00.000 AM"."""
    if not isinstance(text, str):
        raise ValueError("time is not text")
    text = text.strip()
    found = _ISO.fullmatch(text)
    if found:
        year, month, day, hour, minute, second, fraction, zone = found.groups()
        stamp = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                         int((fraction or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc)
        if zone and zone.upper() != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            stamp -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return stamp
    found = _US.fullmatch(text)
    if found:
        month, day, year, hour, minute, second, fraction, half = found.groups()
        hours = int(hour) % 12 + (12 if half.upper() == "PM" else 0) if half else int(hour)
        return datetime(int(year), int(month), int(day), hours, int(minute), int(second or 0),
                        int((fraction or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc)
    raise ValueError("time is not an ISO 8601 or Log Analytics timestamp")


def format_time(stamp: datetime) -> str:
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """The time range asked for; either end may be open. Both ends are inclusive, as Graph's ``ge``/``le``."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise InputError(f"--since {format_time(self.since)} is after --until {format_time(self.until)}")

    def __contains__(self, stamp: datetime) -> bool:
        return (self.since is None or stamp >= self.since) and (self.until is None or stamp <= self.until)

    @classmethod
    def parse(cls, since: str | None, until: str | None, now: datetime | None = None) -> "Window":
        """``--since``/``--until``: an ISO date or time (UTC unless it says otherwise) or ``7d`` / ``12h`` ago."""
        now = now or datetime.now(timezone.utc)
        return cls(_moment(since, "--since", now), _moment(until, "--until", now))


def _moment(text: str | None, option: str, now: datetime) -> datetime | None:
    if text is None or not text.strip():
        return None
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        amount = int(relative[1])
        return now - (timedelta(days=amount) if relative[2].lower() == "d" else timedelta(hours=amount))
    try:
        return parse_time(text)
    except ValueError:
        raise InputError(f"{option} takes a date or time such as 2026-11-01 or 2026-11-01T08:00:00Z, or 7d / "
                         "24h (ago)") from None
