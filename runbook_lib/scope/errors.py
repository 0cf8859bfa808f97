"""Why a scope could not be made, grouped by cause; every message is one line and never holds a token or secret.

Bad sources, windows and options are ``InputError`` (exit 2). What Microsoft Graph or the identity platform refused
is a ``GraphError`` (exit 1): the input was fine, the tenant said no.
"""

from __future__ import annotations

from ..core.errors import InputError, RunbookError


class SourceError(InputError):
    """A sign-in export that cannot be read: unknown shape, a record without a time, bad JSON or CSV."""


class EmptyWindow(InputError):
    """No sign-in at all in the window: a report of zero would look like good news and is not."""


class GraphError(RunbookError):
    """Microsoft Graph or the identity platform refused or failed a request."""


class SignInFailed(GraphError):
    """No access token: the device code expired, the secret or certificate was refused, consent is missing."""


class TokenRefused(GraphError):
    """Graph answered 401: the token is expired, for another resource or another tenant."""


class LicenceRequired(GraphError):
    """Graph serves sign-in logs only to tenants with Microsoft Entra ID P1 or P2."""


class PermissionMissing(GraphError):
    """Graph answered 403: AuditLog.Read.All and Directory.Read.All (and for a person, a reader role) are needed."""


class RequestRejected(GraphError):
    """Graph answered 400 (for example "Invalid filter clause" for a window older than it keeps)."""


class Throttled(GraphError):
    """Graph kept answering 429 or 503 after every wait it asked for."""


class GraphUnreachable(GraphError):
    """No answer from Graph or the identity platform (DNS, TCP, TLS, timeout)."""
