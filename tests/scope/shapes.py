"""Writers of the documented export shapes, from sign-ins in Graph's beta ``signIn`` shape.

Tests use them to carry the same records in every format (the property test) and they made the committed
fixtures: Log Analytics rows keep AuthenticationProcessingDetails as JSON text and ResultType as text, the portal's
Log Analytics CSV names time columns "TimeGenerated [UTC]" with "11/2/2026, 8:00:00.000 AM" values, and the admin
center's CSV has the v2.9 interactive header as Microsoft writes it (trailing spaces, a repeated column).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

TABLES = {"interactiveUser": "SigninLogs", "nonInteractiveUser": "AADNonInteractiveUserSignInLogs",
          "servicePrincipal": "AADServicePrincipalSignInLogs", "managedIdentity": "AADManagedIdentitySignInLogs"}
LEGACY_KEY = "Legacy TLS (TLS 1.0, 1.1, 3DES)"
ENTRA_CSV_HEADER = (
    '"Date (UTC)","Request ID","User agent","Correlation ID","User ID","User","Username","User type",'
    '"Cross tenant access type","Incoming token type","Authentication Protocol","Unique token identifier",'
    '"Original transfer method","Client credential type","Token Protection - Sign In Session",'
    '"Token Protection - Sign In Session StatusCode","Application","Application ID ","Resource","Resource ID ",'
    '"Resource tenant ID","Home tenant ID","Home tenant name","IP address","Location","Status","Sign-in error code",'
    '"Failure reason","Client app","Device ID","Browser","Operating System","Compliant","Managed","Join Type",'
    '"Multifactor authentication result","Multifactor authentication auth method",'
    '"Multifactor authentication auth detail","Authentication requirement","Sign-in identifier","Session ID",'
    '"IP address (seen by resource)","Through Global Secure Access","Global Secure Access IP address",'
    '"Autonomous system  number","Flagged for review","Token issuer type","Incoming token type","Token issuer name",'
    '"Latency","Conditional Access","Managed Identity type","Associated Resource Id","Federated Token Id",'
    '"Federated Token Issuer"')


def sign_in(id: str, when: str, event: str, *, ip: str = "", app: str = "", app_id: str = "", user: str = "",
            sp_id: str = "", sp_name: str = "", device: str = "", agent: str = "", legacy: str | None = None,
            code: int = 0) -> dict:
    """A beta signIn; ``legacy`` None leaves the entry out, "True"/"False" (any case) puts it in."""
    details = [{"key": "Is CAE Token", "value": "False"}]
    if legacy is not None:
        details.insert(0, {"key": LEGACY_KEY, "value": legacy})
    return {"id": id, "createdDateTime": when, "userPrincipalName": user, "userId": "", "appId": app_id,
            "appDisplayName": app, "ipAddress": ip, "userAgent": agent, "signInEventTypes": [event],
            "servicePrincipalId": sp_id, "servicePrincipalName": sp_name,
            "status": {"errorCode": code, "failureReason": "Other." if code else ""},
            "deviceDetail": {"deviceId": "", "displayName": device, "operatingSystem": "Windows"},
            "authenticationProcessingDetails": details}


def _details(record: dict) -> str:
    return json.dumps(record["authenticationProcessingDetails"])


def la_row(record: dict) -> dict:
    table = TABLES[record["signInEventTypes"][0]]
    device = record["deviceDetail"] if table == "SigninLogs" else json.dumps(record["deviceDetail"])
    row = {"TimeGenerated": record["createdDateTime"], "Id": record["id"], "Type": table,
           "ResultType": str(record["status"]["errorCode"]), "IPAddress": record["ipAddress"],
           "AppId": record["appId"], "AppDisplayName": record["appDisplayName"],
           "ServicePrincipalId": record["servicePrincipalId"], "ServicePrincipalName": record["servicePrincipalName"],
           "AuthenticationProcessingDetails": _details(record)}
    if table not in ("AADServicePrincipalSignInLogs", "AADManagedIdentitySignInLogs"):
        row.update({"UserPrincipalName": record["userPrincipalName"], "UserId": record["userId"],
                    "UserAgent": record["userAgent"], "DeviceDetail": device})
    return row


def la_tables(records: list[dict]) -> dict:
    """The Log Analytics query API's answer: columns once, rows as arrays."""
    rows = [la_row(r) for r in records]
    columns = sorted({name for row in rows for name in row})
    return {"tables": [{"name": "PrimaryResult", "columns": [{"name": c, "type": "string"} for c in columns],
                        "rows": [[row.get(c, "") for c in columns] for row in rows]}]}


def _portal_time(text: str) -> str:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    hour = stamp.hour % 12 or 12
    return (f"{stamp.month}/{stamp.day}/{stamp.year}, {hour}:{stamp.minute:02d}:{stamp.second:02d}."
            f"{stamp.microsecond // 1000:03d} {'PM' if stamp.hour >= 12 else 'AM'}")


def la_csv(records: list[dict]) -> str:
    columns = ["TenantId", "SourceSystem", "TimeGenerated [UTC]", "Id", "Type", "ResultType", "IPAddress", "AppId",
               "AppDisplayName", "ServicePrincipalId", "ServicePrincipalName", "UserPrincipalName", "UserId",
               "UserAgent", "DeviceDetail", "AuthenticationProcessingDetails"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        row = la_row(record)
        row["TimeGenerated [UTC]"] = _portal_time(row.pop("TimeGenerated"))
        if isinstance(row.get("DeviceDetail"), dict):
            row["DeviceDetail"] = json.dumps(row["DeviceDetail"])
        row.update(TenantId="00000000-0000-0000-0000-000000000000", SourceSystem="Azure AD")
        writer.writerow([row.get(c, "") for c in columns])
    return "\ufeff" + buffer.getvalue()


def entra_csv(records: list[dict]) -> str:
    """The admin center's download: no legacy flag; both "Incoming token type" cells filled, the second empty."""
    header = next(csv.reader([ENTRA_CSV_HEADER]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for record in records:
        code = record["status"]["errorCode"]
        values = {"Date (UTC)": record["createdDateTime"], "Request ID": record["id"],
                  "User agent": record["userAgent"], "Username": record["userPrincipalName"],
                  "User": record["userPrincipalName"].split("@")[0], "Application": record["appDisplayName"],
                  "Application ID ": record["appId"], "IP address": record["ipAddress"],
                  "Status": "Failure" if code else "Success", "Sign-in error code": str(code),
                  "Failure reason": record["status"]["failureReason"], "Device ID": record["deviceDetail"]["deviceId"],
                  "Autonomous system  number": "64500"}
        cells, seen = [], set()
        for name in header:
            if name == "Incoming token type":
                cells.append("none" if name not in seen else "")
                seen.add(name)
            else:
                cells.append(values.get(name, ""))
        writer.writerow(cells)
    return "\ufeff" + buffer.getvalue()
