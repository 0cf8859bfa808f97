"""Which host a runbook step talks to, and how: a WinRM URL or an inventory entry, resolved to a transport.

Credentials are resolved here, by reference (``env:``, ``keyring:``, ``prompt``), and live only inside the
transport object: a ``Target`` can be printed, logged or shown in a notebook without exposing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..core.errors import InputError, one_line
from ..core.facts import host_problem
from .credentials import DEFAULT_REFERENCE, Credential, resolve_credential
from .transport import AUTH_METHODS, Transport, WinRMTransport

if TYPE_CHECKING:
    from .inventory import Inventory

DEFAULT_ENDPOINTS = ("login.microsoftonline.com:443",)


@dataclass
class Target:
    """One host as the runbook sees it. ``simulated`` turns True as soon as the host says it is simulated."""

    name: str
    transport: Transport = field(repr=False)
    endpoint: str
    simulated: bool = False
    warnings: tuple[str, ...] = field(default=(), repr=False)  # what the last operation's script warned about

    def run(self, operation: str, args: dict) -> dict:
        result = self.transport.run(operation, args)
        self.warnings = result.warnings
        if result.data.get("simulated") is True:
            self.simulated = True
        return result.data

    def scrubber(self):
        """Removes this host's credential from anything written about it (see :func:`~runbook_lib.remote.scrub.write_scrubbed`)."""
        from .scrub import Scrubber

        return Scrubber(self.transport.secret_values())


def parse_winrm_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``http(s)://host[:port]/wsman``; anything else is bad input.

    Errors never repeat the URL: it may hold a password (``user:password@``), which is refused before anything else,
    so that it cannot reach a notebook parameter, an output or a log.
    """
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        raise InputError("target URL must not carry user info (user:password@); the credential comes from "
                         "--credential, the inventory or a prompt")
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        raise InputError("target URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InputError("target is not a WinRM URL: its host or port cannot be read") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") not in ("", "wsman") \
            or parts.query or parts.fragment or port == 0:
        raise InputError("target URL must look like http://HOST:5985/wsman or https://HOST:5986/wsman")
    problem = host_problem(parts.hostname)
    if problem:
        raise InputError(f"target host {problem}")
    return parts.scheme, parts.hostname, port or (5986 if parts.scheme == "https" else 5985)


def connect(target: str, *, inventory: Path | str | Inventory | None = None, credential: str | Credential | None = None,
            auth: str | None = None, ca_trust_path: str | None = None, validate_certificate: bool | None = None,
            operation_timeout_s: int = 20, read_timeout_s: int = 30) -> Target:
    """Resolve TARGET (an inventory host name or a WinRM URL) to a Target ready to run operations; ``inventory`` is
    a file, or one already loaded (a caller connecting to many of its hosts reads it once)."""
    if not isinstance(target, str) or not target:
        raise InputError("target must be an inventory host name or a WinRM URL")
    if "://" in target:
        scheme, host, port = parse_winrm_url(target)
        name, reference, username = host, DEFAULT_REFERENCE, None
        chosen_auth, trust, validate = auth or "ntlm", ca_trust_path, True if validate_certificate is None \
            else validate_certificate
    else:
        problem = host_problem(target)
        if problem:  # not echoed: it may be a URL without its scheme, user info included
            raise InputError(f"target is neither a WinRM URL nor an inventory host name: a name {problem}")
        if inventory is None:
            raise InputError(f"target {target!r} is not a URL; name an inventory to look it up in")
        from .inventory import Inventory, load_inventory

        entry = (inventory if isinstance(inventory, Inventory) else load_inventory(inventory)).get(target)
        name, host, port, scheme = entry.name, entry.address, entry.port, entry.scheme
        reference, username = entry.credential, entry.username
        chosen_auth = auth or entry.auth
        trust = ca_trust_path or entry.ca_trust_path
        validate = entry.validate_certificate if validate_certificate is None else validate_certificate
    if chosen_auth not in AUTH_METHODS:
        raise InputError(f"auth must be one of {', '.join(AUTH_METHODS)}")
    if ca_trust_path is not None and scheme != "https":
        raise InputError(f"--ca-trust-path is for https targets; {name} is reached over http, where no "
                         "certificate is checked")
    trust = trust if scheme == "https" else None  # an inventory's group-wide CA path means nothing over http
    if trust is not None and not _is_readable_path(trust):
        raise InputError(f"CA bundle {one_line(repr(trust), 120)} is not a readable file or folder")
    if isinstance(credential, Credential):
        resolved = credential
    else:
        resolved = resolve_credential(credential or _with_user_hint(reference, username))
    transport = WinRMTransport(host, resolved, auth=chosen_auth, https=scheme == "https", port=port,
                               validate_certificate=validate, ca_trust_path=trust,
                               operation_timeout_s=operation_timeout_s, read_timeout_s=read_timeout_s)
    return Target(name, transport, transport.endpoint)


def _is_readable_path(text: str) -> bool:
    try:
        return "\x00" not in text and Path(text).exists()
    except OSError:
        return False


def _with_user_hint(reference: str, username: str | None) -> str:
    return f"prompt:{username}" if reference == "prompt" and username else reference
