"""Sign-ins in Microsoft Graph's shape: the admin center's JSON download, a saved Graph response
(``{"value": [...]}``) and the live pages :mod:`runbook_lib.scope.graph` reads, which are all the beta ``signIn``."""

from __future__ import annotations

from typing import Any

from .records import SignIn, error_code, legacy_flag, parse_time

FORMAT = "entra_json"


def _text(item: dict, name: str) -> str:
    value = item.get(name)
    return value.strip() if isinstance(value, str) else ""


def sign_in(item: Any) -> SignIn:
    """One beta ``signIn``; ValueError names the field that is wrong."""
    if not isinstance(item, dict):
        raise ValueError("a sign-in is not a JSON object")
    try:
        time = parse_time(item.get("createdDateTime"))
    except ValueError:
        raise ValueError("createdDateTime is missing or not a time") from None
    status = item.get("status") if isinstance(item.get("status"), dict) else {}
    device = item.get("deviceDetail") if isinstance(item.get("deviceDetail"), dict) else {}
    types = item.get("signInEventTypes")
    try:
        legacy = legacy_flag(item.get("authenticationProcessingDetails"))
        code = error_code(status.get("errorCode"))
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return SignIn(
        id=_text(item, "id"), time=time, legacy=legacy, error_code=code,
        ip=_text(item, "ipAddress"), app_id=_text(item, "appId").lower(), app_name=_text(item, "appDisplayName"),
        service_principal_id=_text(item, "servicePrincipalId").lower(),
        service_principal_name=_text(item, "servicePrincipalName"),
        user=_text(item, "userPrincipalName"), user_id=_text(item, "userId"),
        device=_text(device, "displayName") or _text(device, "deviceId"), user_agent=_text(item, "userAgent"),
        event_type=types[0] if isinstance(types, list) and types and isinstance(types[0], str) else "")


def items(doc: Any) -> list | None:
    """The sign-in objects of a download (a top-level array) or a Graph response; None for other shapes."""
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):
        return doc["value"]
    if isinstance(doc, list) and all(isinstance(i, dict) and "createdDateTime" in i for i in doc[:1]):
        return doc
    return None
