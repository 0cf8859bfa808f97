"""A live read of the sign-in logs from Microsoft Graph beta (``/beta/auditLogs/signIns``).

The legacy-TLS flag is a beta property. Graph returns only interactive sign-ins unless the filter names a
``signInEventTypes`` value, so each of the four types is one query; filtering on ``authenticationProcessingDetails``
on the server has failed for users ("Invalid filter clause", empty results), so the server filters on time and
type and the flag is tested here. Pages follow ``@odata.nextLink`` (1,000 sign-ins each), only on Graph's own
origin, so the token never goes anywhere else. Graph allows 5 requests per 10 s per app and tenant for these
reports and answers 429 with Retry-After beyond that: the wait it asks for is honoured.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator
from urllib.parse import urlsplit

from ..core.errors import one_line
from . import entra_json
from .auth import Endpoints, GraphAuth
from .errors import (GraphError, GraphUnreachable, LicenceRequired, PermissionMissing, RequestRejected, SourceError,
                     Throttled, TokenRefused)
from .records import EVENT_TYPES, Window, format_time
from .sources import GRAPH_PREFIX, SourceRead

FORMAT = "graph"
DEFAULT_DAYS = 7  # without --since: a week, what the admin center offers to download; Graph keeps 30 days on P1/P2
RETRY_STATUSES = (429, 503, 504)
_LICENCE_CODE = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"


class GraphClient:
    """GET with a bearer token, retries where Graph asks for them, one-line errors grouped by cause."""

    def __init__(self, token: str, endpoints: Endpoints, *, sleep: Callable[[float], None] = time.sleep,
                 notify: Callable[[str], None] = lambda text: None, attempts: int = 8, max_wait_s: float = 120.0,
                 timeout_s: float = 120.0, scrub: Callable[[str], str] = lambda text: text):
        import requests

        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._token = token
        self.endpoints = endpoints
        self.sleep, self.notify, self.scrub_more = sleep, notify, scrub
        self.attempts, self.max_wait_s, self.timeout_s = attempts, max_wait_s, timeout_s
        self.requests = 0

    def scrub(self, text: str) -> str:
        return self.scrub_more(text.replace(self._token, "[REDACTED]"))

    def pages(self, path: str, params: dict) -> Iterator[dict]:
        url, query = f"{self.endpoints.graph}{path}", params
        while url:
            page = self._get(url, query)
            yield page
            url, query = page.get("@odata.nextLink"), None
            if url is not None and not _same_origin(url, self.endpoints.graph):
                raise GraphError("Graph's next-page link points away from Graph; the token is not sent there")

    def _get(self, url: str, params: dict | None) -> dict:
        import requests

        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._session.get(url, params=params, timeout=self.timeout_s, allow_redirects=False)
            except requests.RequestException as exc:
                if attempt == self.attempts:
                    raise GraphUnreachable(f"no answer from {self.endpoints.graph}: {type(exc).__name__}") from None
                self.sleep(min(2.0 ** attempt, self.max_wait_s))
                continue
            self.requests += 1
            if response.status_code in RETRY_STATUSES:
                if attempt == self.attempts:
                    raise Throttled(f"Graph still answered {response.status_code} after {self.attempts} attempts; "
                                    "try a shorter window or later")
                wait = _retry_after(response.headers.get("Retry-After"), default=2.0 ** attempt)
                wait = min(wait, self.max_wait_s)
                self.notify(f"Graph answered {response.status_code}; waiting {wait:g} s as it asks (Retry-After)")
                self.sleep(wait)
                continue
            if response.status_code == 200:
                try:
                    page = response.json()
                except ValueError:
                    page = None
                if not isinstance(page, dict) or not isinstance(page.get("value"), list):
                    raise GraphError("Graph answered 200 without a list of sign-ins")
                return page
            raise self._error(response)

    def _error(self, response) -> GraphError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        code = str(error.get("code") or "")
        said = self.scrub(one_line(f"{response.status_code} {code}: {error.get('message') or response.reason}", 200))
        status = response.status_code
        if status == 401:
            return TokenRefused(f"Graph refused the token ({said}); sign in again or check the tenant")
        if status == 403 and (code == _LICENCE_CODE or "premium license" in said.lower()):
            return LicenceRequired(f"Graph serves sign-in logs only to tenants with Microsoft Entra ID P1 or P2 "
                                   f"(Graph said {said}); download the sign-ins as JSON from the Entra admin center "
                                   "instead, which works on every edition")
        if status == 403:
            return PermissionMissing(f"Graph refused the sign-in logs ({said}): the app or user needs AuditLog.Read.All "
                                     "and Directory.Read.All with admin consent, and a person also a role such as "
                                     "Reports Reader, Security Reader or Global Reader")
        if status == 400:
            return RequestRejected(f"Graph rejected the query ({said}); Graph keeps sign-ins 30 days")
        return GraphError(f"Graph answered {said}")


def _same_origin(url: object, origin: str) -> bool:
    if not isinstance(url, str):
        return False
    link, home = urlsplit(url), urlsplit(origin)
    return (link.scheme, link.netloc.lower()) == (home.scheme, home.netloc.lower())


def _retry_after(value: str | None, default: float) -> float:
    """Retry-After in seconds, or as an HTTP date (both are allowed by RFC 9110)."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return default


def query_filter(window: Window, event_type: str) -> str:
    """Time and sign-in type only: the flag is tested on each record, never in the filter."""
    parts = [f"createdDateTime ge {format_time(window.since)}"] if window.since else []
    parts += [f"createdDateTime le {format_time(window.until)}"] if window.until else []
    parts.append(f"signInEventTypes/any(t: t eq '{event_type}')")
    return " and ".join(parts)


def parse_spec(spec: str) -> str:
    """``graph:`` or ``graph:TENANT`` -> the tenant ("" for the signed-in user's own)."""
    return spec[len(GRAPH_PREFIX):].strip()


def read_graph(spec: str, window: Window, auth: GraphAuth, event_types: tuple[str, ...] = EVENT_TYPES, *,
               notify: Callable[[str], None] = lambda text: None, endpoints: Endpoints | None = None,
               sleep: Callable[[float], None] = time.sleep) -> SourceRead:
    """Every sign-in of the chosen types in the window (the last week when --since is not given)."""
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown or not event_types:
        raise SourceError(f"--sign-in-types takes a comma-separated subset of {','.join(EVENT_TYPES)}")
    endpoints = endpoints or Endpoints.current()
    if endpoints.test:
        notify(f"test endpoint {endpoints.graph} in use instead of Microsoft Graph")
    if window.since is None:
        window = Window(datetime.now(timezone.utc) - timedelta(days=DEFAULT_DAYS), window.until)
        notify(f"graph: reading the last {DEFAULT_DAYS} days (give --since for more; Graph keeps 30)")
    token = auth.acquire(endpoints, notify)
    client = GraphClient(token, endpoints, sleep=sleep, notify=notify, scrub=auth.scrub)
    records = []
    for event_type in event_types:
        for page in client.pages("/beta/auditLogs/signIns", {"$filter": query_filter(window, event_type)}):
            for number, item in enumerate(page["value"], 1):
                try:
                    record = entra_json.sign_in(item)
                except ValueError as exc:
                    raise GraphError(f"Graph returned a sign-in this tool cannot read ({event_type}, item {number}): "
                                     f"{exc}") from None
                if record.time in window:
                    records.append(record)
    return SourceRead(f"{GRAPH_PREFIX}{parse_spec(spec)}", FORMAT, tuple(records))
