"""Credentials by reference, so a password never becomes a notebook parameter, an output cell or a log line.

References:

``env:PREFIX``
    ``PREFIX_USER`` and ``PREFIX_PASSWORD`` from the environment. The default is ``env:TLS_RUNBOOK``.
    ``env:TLS_RUNBOOK_SIM`` is refused: those variables belong to the simulator (:func:`simulator_credential`).
``keyring:SERVICE/USER``
    The password stored in the system keyring for SERVICE and USER (``keyring set SERVICE USER``).
``keyring:SERVICE``
    The backend's own credential for SERVICE, for backends that keep one per service (Windows Credential
    Manager generic credentials do). The user name can contain a backslash (``DOMAIN\\user``) but not ``/``.
``prompt`` / ``prompt:USER``
    Ask interactively: the user name (unless given) with ``input``, the password with ``getpass``.

A single secret (a client secret, an access token, a certificate's password) uses the same schemes through
:func:`resolve_secret`: ``env:VARIABLE`` reads that variable itself, ``keyring:SERVICE/NAME`` the stored password,
``prompt`` asks with ``getpass``.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from runbook_lib.core.errors import CredentialError, InputError

DEFAULT_REFERENCE = "env:TLS_RUNBOOK"
# The accounts simulated hosts accept (TLS_RUNBOOK_SIM_USER / _PASSWORD). Kept apart from the runbook's own
# variables, so a simulator never learns a production password and the runbook never logs on with a simulator's.
SIMULATOR_PREFIX = "TLS_RUNBOOK_SIM"
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEME = re.compile(r"[a-z]{1,16}")


@dataclass(frozen=True)
class Credential:
    """A user name and password; ``repr`` and ``str`` show the user only."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, password=<hidden>)"

    def __str__(self) -> str:
        return self.username


def reference_problem(reference: object) -> str | None:
    """Why a reference is malformed, decided without resolving it (no environment, keyring or prompt).

    Inventories are checked with this at load time, before a headless run may touch any secret store; the message
    never repeats text that may be a password pasted into the wrong field.
    """
    if not isinstance(reference, str):
        return "credential reference must be a string"
    scheme, sep, rest = reference.partition(":")
    if scheme == "env" and sep:
        if rest == SIMULATOR_PREFIX:
            return f"env:{SIMULATOR_PREFIX} is the simulator's own account; the runbook never logs on with it"
        ok = _PREFIX.fullmatch(rest)
        return None if ok else "credential reference env:PREFIX needs a PREFIX of letters, digits and underscores"
    if scheme == "keyring" and sep:
        service, slash, user = rest.rpartition("/") if "/" in rest else (rest, "", "")
        return None if service and (user or not slash) else \
            "credential reference must be keyring:SERVICE or keyring:SERVICE/USER"
    if scheme == "prompt":
        return None
    shown = f" {scheme!r}" if sep and _SCHEME.fullmatch(scheme) else ""
    return f"unknown credential reference{shown}; use env:PREFIX, keyring:SERVICE[/USER] or prompt[:USER]"


def _from_env(prefix: str, environ: Mapping[str, str]) -> Credential:
    values = []
    for name in (f"{prefix}_USER", f"{prefix}_PASSWORD"):
        value = environ.get(name)
        if value is None:
            raise CredentialError(f"environment variable {name} is not set")
        if not value:
            raise CredentialError(f"environment variable {name} is empty")
        values.append(value)
    return Credential(*values)


def _from_keyring(spec: str) -> Credential:
    import keyring
    from keyring.errors import KeyringError

    service, _, user = spec.rpartition("/") if "/" in spec else (spec, "", "")
    try:
        if user:
            password = keyring.get_password(service, user)
            if password is None:
                raise CredentialError(f"keyring has no password for service {service!r} and user {user!r}")
            return Credential(user, password)
        stored = keyring.get_credential(service, None)
    except KeyringError as exc:
        raise CredentialError(f"keyring backend failed: {type(exc).__name__}") from None
    if stored is None or not stored.username:
        raise CredentialError(f"keyring has no credential for service {service!r}; use keyring:{service}/USER")
    return Credential(stored.username, stored.password)


def _from_prompt(user: str, ask_user: Callable[[str], str], ask_password: Callable[[str], str]) -> Credential:
    username = user or ask_user("User name: ").strip()
    if not username:
        raise CredentialError("no user name entered")
    password = ask_password(f"Password for {username}: ")
    if not password:
        raise CredentialError("no password entered")
    return Credential(username, password)


def simulator_credential(environ: Mapping[str, str] | None = None) -> Credential:
    """The account simulated hosts accept, from TLS_RUNBOOK_SIM_USER and TLS_RUNBOOK_SIM_PASSWORD only."""
    return _from_env(SIMULATOR_PREFIX, os.environ if environ is None else environ)


def resolve_credential(
    reference: str = DEFAULT_REFERENCE,
    *,
    environ: Mapping[str, str] | None = None,
    ask_user: Callable[[str], str] | None = None,
    ask_password: Callable[[str], str] | None = None,
) -> Credential:
    """Turn a reference into a Credential; errors name the variable or entry, never a value.

    ``prompt`` asks through ``input`` and ``getpass.getpass`` (looked up at call time) unless given other callables.
    """
    problem = reference_problem(reference)
    if problem:
        raise InputError(problem)
    scheme, _, rest = reference.partition(":")
    if scheme == "env":
        return _from_env(rest, os.environ if environ is None else environ)
    if scheme == "keyring":
        return _from_keyring(rest)
    return _from_prompt(rest, ask_user or input, ask_password or getpass.getpass)


def resolve_secret(
    reference: str,
    what: str,
    *,
    environ: Mapping[str, str] | None = None,
    ask_password: Callable[[str], str] | None = None,
) -> str:
    """One secret value by reference; errors name ``what`` and the variable or entry, never a value."""
    problem = reference_problem(reference)
    if problem:
        raise InputError(f"{what}: {problem}")
    scheme, _, rest = reference.partition(":")
    if scheme == "env":
        value = (os.environ if environ is None else environ).get(rest)
        if not value:
            raise CredentialError(f"{what}: environment variable {rest} is {'empty' if value == '' else 'not set'}")
        return value
    if scheme == "keyring":
        return _from_keyring(rest).password
    value = (ask_password or getpass.getpass)(f"{what}: ")
    if not value:
        raise CredentialError(f"{what}: nothing entered")
    return value
