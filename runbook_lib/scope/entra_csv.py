"""The Entra admin center's CSV download of sign-ins. It has no column for the legacy-TLS flag (Microsoft: "If you
download the sign-in logs in CSV format instead, the legacy TLS flag doesn't appear"), so only 1002016 failures
can be counted from it.

Columns are found by name, never by position: the header changes between versions, ``Application ID `` and
``Resource ID `` end with a space, ``Autonomous system  number`` has two, and ``Incoming token type`` appears twice
(the first non-empty cell of a repeated name wins).
"""

from __future__ import annotations

import re

from .records import SignIn, error_code, parse_time

FORMAT = "entra_csv"
MARKERS = ("date (utc)", "sign-in error code")
# field -> the header names seen for it across the interactive, non-interactive, application and MSI downloads
_COLUMNS = {
    "time": ("date (utc)", "date"),
    "id": ("request id",),
    "ip": ("ip address",),
    "app_name": ("application",),
    "app_id": ("application id",),
    "service_principal_id": ("service principal id",),
    "service_principal_name": ("service principal name",),
    "user": ("username", "user principal name"),
    "user_id": ("user id",),
    "device": ("device id",),
    "user_agent": ("user agent",),
    "error": ("sign-in error code",),
}


def normalise(header: str) -> str:
    return re.sub(r"\s+", " ", header).strip().lower()


class Columns:
    """Where each field is in a header row."""

    def __init__(self, header: list[str]):
        self.positions: dict[str, list[int]] = {}
        for index, name in enumerate(header):
            self.positions.setdefault(normalise(name), []).append(index)

    def get(self, cells: list[str], field: str) -> str:
        for name in _COLUMNS[field]:
            for index in self.positions.get(name, []):
                if index < len(cells) and cells[index].strip():
                    return cells[index].strip()
        return ""

    def is_entra(self) -> bool:
        return all(marker in self.positions for marker in MARKERS)


def sign_in(columns: Columns, cells: list[str]) -> SignIn:
    try:
        time = parse_time(columns.get(cells, "time"))
    except ValueError:
        raise ValueError("Date (UTC) is missing or not a time") from None
    return SignIn(
        id=columns.get(cells, "id"), time=time, legacy=None, error_code=error_code(columns.get(cells, "error")),
        ip=columns.get(cells, "ip"), app_id=columns.get(cells, "app_id").lower(),
        app_name=columns.get(cells, "app_name"),
        service_principal_id=columns.get(cells, "service_principal_id").lower(),
        service_principal_name=columns.get(cells, "service_principal_name"), user=columns.get(cells, "user"),
        user_id=columns.get(cells, "user_id"), device=columns.get(cells, "device"),
        user_agent=columns.get(cells, "user_agent"))
