"""An access token for Microsoft Graph's sign-in logs, from MSAL, held in memory only.

Three ways, chosen by the options given:

- a person: the device code flow (``--client-id`` defaults to Microsoft Graph Command Line Tools, the app
  ``Connect-MgGraph`` and Microsoft's own legacy-TLS script sign in with), delegated AuditLog.Read.All and
  Directory.Read.All;
- automation: client credentials of an app registration with those application permissions, a certificate
  (``--client-certificate`` PEM or PFX, its password by reference) or a secret by reference (``--client-secret``);
- a token acquired elsewhere, by reference (``--token``).

The token goes into one Authorization header and nowhere else: MSAL's cache is in memory, no log is configured,
and errors carry MSAL's and Graph's descriptions, never the token or the secret.

Microsoft's endpoints are fixed. Tests point both at a local server with ``TLS_RUNBOOK_TEST_ENTRA_ORIGIN``
(``https://127.0.0.1:PORT``), which is refused unless it names a loopback IP address over HTTPS, so it cannot send
a token off the machine.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from ..core.errors import InputError, one_line
from ..core.files import FileTooLarge, read_limited
from ..remote.credentials import reference_problem, resolve_secret
from .errors import GraphUnreachable, SignInFailed

GRAPH_CLI_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"  # Microsoft Graph Command Line Tools
TEST_ORIGIN_VARIABLE = "TLS_RUNBOOK_TEST_ENTRA_ORIGIN"
DELEGATED_PERMISSIONS = ("AuditLog.Read.All", "Directory.Read.All")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TENANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_MAX_CERTIFICATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Endpoints:
    """Where Graph and the identity platform are; the test origin replaces both."""

    graph: str = "https://graph.microsoft.com"
    login: str = "https://login.microsoftonline.com"
    test: bool = False

    @classmethod
    def current(cls, environ: Mapping[str, str] | None = None) -> "Endpoints":
        value = (os.environ if environ is None else environ).get(TEST_ORIGIN_VARIABLE, "")
        if not value:
            return cls()
        parts = urlsplit(value.strip())
        try:
            loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            loopback = False
        if parts.scheme != "https" or not loopback or parts.username or parts.password or parts.path.strip("/") \
                or parts.query or parts.fragment:
            raise InputError(f"{TEST_ORIGIN_VARIABLE} is for tests only and must be https://<loopback IP>:PORT; "
                             "unset it to use Microsoft Graph")
        origin = f"https://{parts.netloc}"
        return cls(origin, origin, True)


@dataclass(frozen=True)
class GraphAuth:
    """How to get the token; secrets are references (``env:VARIABLE``, ``keyring:SERVICE/NAME``, ``prompt``)."""

    tenant: str = ""
    client_id: str = ""
    client_secret: str = ""
    client_certificate: str = ""
    certificate_password: str = ""
    token: str = ""
    _known: list = field(default_factory=list, repr=False, compare=False)  # resolved secrets, to scrub from errors

    @property
    def method(self) -> str:
        if self.token:
            return "token"
        if self.client_certificate:
            return "certificate"
        return "secret" if self.client_secret else "device_code"

    def validate(self) -> "GraphAuth":
        """Checks the options without resolving any secret, so a mistake costs nothing and shows nothing."""
        chosen = [flag for flag, value in (("--token", self.token), ("--client-secret", self.client_secret),
                                           ("--client-certificate", self.client_certificate)) if value]
        if len(chosen) > 1:
            raise InputError(f"{' and '.join(chosen)} exclude each other: give one way to get the Graph token")
        for flag, reference in (("--token", self.token), ("--client-secret", self.client_secret),
                                ("--certificate-password", self.certificate_password)):
            problem = reference and reference_problem(reference)
            if problem:
                raise InputError(f"{flag} takes a reference (env:VARIABLE, keyring:SERVICE/NAME or prompt): {problem}")
        if self.certificate_password and not self.client_certificate:
            raise InputError("--certificate-password goes with --client-certificate")
        if self.tenant and not _TENANT.fullmatch(self.tenant):
            raise InputError("the tenant in graph:TENANT is a tenant id (GUID) or a domain such as contoso.com")
        if self.client_id and not _GUID.fullmatch(self.client_id):
            raise InputError("--client-id is an application (client) id, a GUID")
        if self.method in ("secret", "certificate") and not (self.tenant and self.client_id):
            raise InputError("client credentials need the tenant (graph:TENANT) and --client-id of the app registration")
        return self

    def describe(self) -> str:
        return {"token": "a token given by reference", "certificate": f"app {self.client_id} with a certificate",
                "secret": f"app {self.client_id} with a client secret",
                "device_code": f"device code sign-in (app {self.client_id or GRAPH_CLI_CLIENT_ID})"}[self.method]

    def acquire(self, endpoints: Endpoints, notify: Callable[[str], None]) -> str:
        """The access token. ``notify`` shows the device-code instructions (a URL and a one-time code)."""
        if self.method == "token":
            return self._secret(self.token, "--token")
        import msal
        import requests

        authority = f"{endpoints.login}/{self.tenant or 'organizations'}"
        try:
            if self.method == "device_code":
                app = msal.PublicClientApplication(self.client_id or GRAPH_CLI_CLIENT_ID, authority=authority,
                                                   instance_discovery=False, timeout=60)
                flow = app.initiate_device_flow(scopes=[f"https://graph.microsoft.com/{p}"
                                                        for p in DELEGATED_PERMISSIONS])
                if "user_code" not in flow:
                    raise SignInFailed(f"device code sign-in could not start: {_why(flow)}")
                notify(flow["message"])
                result = app.acquire_token_by_device_flow(flow)
            else:
                app = msal.ConfidentialClientApplication(self.client_id, client_credential=self._client_credential(),
                                                         authority=authority, instance_discovery=False, timeout=60)
                result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        except requests.RequestException as exc:
            raise GraphUnreachable(f"cannot reach {endpoints.login}: {type(exc).__name__}") from None
        except ValueError as exc:  # MSAL: the authority (tenant) could not be resolved
            raise SignInFailed(self.scrub(f"sign-in to tenant {self.tenant or 'organizations'} failed: "
                                          f"{one_line(str(exc), 200)}")) from None
        if not isinstance(result, dict) or "access_token" not in result:
            raise SignInFailed(self.scrub(f"no Graph token ({self.describe()}): {_why(result)}"))
        return result["access_token"]

    def scrub(self, text: str) -> str:
        """``text`` without any secret this object resolved (an identity provider may echo what it was sent)."""
        for value in self._known:
            text = text.replace(value, "[REDACTED]")
        return text

    def _secret(self, reference: str, what: str) -> str:
        value = resolve_secret(reference, what)
        self._known.append(value)
        return value

    def _client_credential(self) -> str | dict:
        if self.method == "secret":
            return self._secret(self.client_secret, "--client-secret")
        path = Path(self.client_certificate)
        try:
            raw = read_limited(path, _MAX_CERTIFICATE_BYTES)
        except (OSError, FileTooLarge) as exc:
            raise InputError(f"--client-certificate {path.name}: cannot read it "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
        password = self._secret(self.certificate_password, "--certificate-password") \
            if self.certificate_password else None
        return certificate_credential(raw, password, path.name)


def certificate_credential(raw: bytes, password: str | None, name: str) -> dict:
    """MSAL's certificate credential from a PEM (key and certificate in one file) or a PFX/PKCS#12 file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    secret = password.encode("utf-8") if password else None
    try:
        if b"-----BEGIN" in raw:
            key = serialization.load_pem_private_key(raw, secret)
            certificate = x509.load_pem_x509_certificate(raw)
        else:
            key, certificate, _ = pkcs12.load_key_and_certificates(raw, secret)
    except (ValueError, TypeError):
        raise InputError(f"--client-certificate {name}: not a PEM with its private key or a PFX, or the password "
                         "is wrong") from None
    if key is None or certificate is None:
        raise InputError(f"--client-certificate {name}: needs both the certificate and its private key")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    return {"private_key": key_pem,
            "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")}


def _why(result: object) -> str:
    if not isinstance(result, dict):
        return "no answer"
    text = f"{result.get('error', 'error')}: {result.get('error_description', '')}"
    return one_line(text, 240)
