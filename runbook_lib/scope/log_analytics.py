"""Rows of the four Log Analytics sign-in tables (``SigninLogs``, ``AADNonInteractiveUserSignInLogs``,
``AADServicePrincipalSignInLogs``, ``AADManagedIdentitySignInLogs``), as JSON or CSV.

The tables keep ``AuthenticationProcessingDetails`` as JSON text and ``ResultType`` as text ("1002016");
``DeviceDetail`` is dynamic in ``SigninLogs`` and JSON text in the non-interactive table. JSON comes as an array of
row objects (``az monitor log-analytics query``, ``Invoke-AzOperationalInsightsQuery``) or as the query API's
``{"tables": [{"columns": [...], "rows": [...]}]}``; CSV as the portal exports it, where time columns are named
``TimeGenerated [UTC]`` and hold "11/2/2026, 8:00:00.000 AM".
"""

from __future__ import annotations

import json
import re
from typing import Any

from .records import SignIn, error_code, legacy_flag, parse_time

JSON_FORMAT = "log_analytics_json"
CSV_FORMAT = "log_analytics_csv"
TABLE_EVENT_TYPES = {"signinlogs": "interactiveUser", "aadnoninteractiveusersigninlogs": "nonInteractiveUser",
                     "aadserviceprincipalsigninlogs": "servicePrincipal",
                     "aadmanagedidentitysigninlogs": "managedIdentity"}
MARKERS = ("TimeGenerated", "ResultType", "AuthenticationProcessingDetails")
_UNIT = re.compile(r"\s*\[(?:UTC|Local Time)\]\s*$", re.IGNORECASE)


def column_name(header: str) -> str:
    """``TimeGenerated [UTC]`` -> ``TimeGenerated``: the portal adds the zone to time columns."""
    return _UNIT.sub("", header.strip())


def _text(row: dict, name: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _dynamic(value: Any) -> dict:
    """A dynamic column: an object in JSON exports, its JSON text in CSV and in some tables."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def sign_in(row: Any) -> SignIn:
    if not isinstance(row, dict):
        raise ValueError("a row is not a JSON object")
    stamp = _text(row, "CreatedDateTime") or _text(row, "TimeGenerated")
    try:
        time = parse_time(stamp)
    except ValueError:
        raise ValueError("TimeGenerated is missing or not a time") from None
    device = _dynamic(row.get("DeviceDetail"))
    status = _dynamic(row.get("Status"))
    code = row.get("ResultType") if row.get("ResultType") not in (None, "") else status.get("errorCode")
    legacy = legacy_flag(row.get("AuthenticationProcessingDetails"))
    return SignIn(
        id=_text(row, "Id") or _text(row, "OriginalRequestId"), time=time, legacy=legacy, error_code=error_code(code),
        ip=_text(row, "IPAddress"), app_id=_text(row, "AppId").lower(), app_name=_text(row, "AppDisplayName"),
        service_principal_id=_text(row, "ServicePrincipalId").lower(),
        service_principal_name=_text(row, "ServicePrincipalName"),
        user=_text(row, "UserPrincipalName"), user_id=_text(row, "UserId"),
        device=_text(device, "displayName") or _text(device, "deviceId"), user_agent=_text(row, "UserAgent"),
        event_type=TABLE_EVENT_TYPES.get((_text(row, "Type") or _text(row, "Table")).lower(), ""))


def rows(doc: Any) -> list | None:
    """Row objects of an export, or None when the document is not Log Analytics'."""
    if isinstance(doc, dict) and isinstance(doc.get("tables"), list):
        found = []
        for table in doc["tables"]:
            columns = [c.get("name") if isinstance(c, dict) else None for c in (table or {}).get("columns", [])]
            if not all(isinstance(c, str) for c in columns):
                return None
            found += [dict(zip(columns, row)) for row in table.get("rows", []) if isinstance(row, list)]
        return found
    if isinstance(doc, list) and all(isinstance(r, dict) and any(m in r for m in MARKERS) for r in doc[:1]):
        return doc
    return None
