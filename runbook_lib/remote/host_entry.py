"""One inventory host and how to reach it (address, port, scheme, auth, a credential *reference*), with the checks
every format's fields go through: a plain-text password or an Ansible Vault value is refused wherever it appears,
and no error ever shows a value that may be a secret.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.facts import host_problem
from .credentials import DEFAULT_REFERENCE, reference_problem
from .transport import AUTH_METHODS


_AUTH_ALIASES = {"plaintext": "basic", "ssl": "basic"}  # pywinrm's names for Basic over http and over https
# password, passwd, passphrase, and Ansible's *_pass (ansible_ssh_pass, ansible_become_pass, ansible_winrm_pass).
_PASSWORD_KEY = re.compile(r"passw(?:or)?d|passphrase|(?:^|_)pass$", re.IGNORECASE)
VAULT_MARK = "$ANSIBLE_VAULT"
BY_REFERENCE = ("pass it by reference: set tls_runbook_credential (or credential:) to env:PREFIX (reads "
                 "PREFIX_USER and PREFIX_PASSWORD), keyring:SERVICE/USER or prompt")
_TRUTHY = {"true", "yes", "on", "1", "validate"}
_FALSY = {"false", "no", "off", "0", "ignore"}
EGRESS_VARIABLE = "tls_runbook_egress"  # where a host's sign-ins leave for Entra: IP addresses and CIDR ranges


@dataclass(frozen=True)
class HostEntry:
    """How to reach one host; ``credential`` is a reference resolved only when connecting."""

    name: str
    address: str
    port: int | None = None  # None: 5985 for http, 5986 for https
    scheme: str = "http"
    auth: str = "ntlm"
    credential: str = DEFAULT_REFERENCE
    username: str | None = None  # a hint for prompt:USER, never used on its own
    validate_certificate: bool = True
    ca_trust_path: str | None = None
    groups: tuple[str, ...] = ()
    variables: dict = field(default_factory=dict, hash=False)
    egress: tuple[str, ...] = ()  # networks (ipaddress notation) Entra sees this host's sign-ins come from

class EntryProblem(Exception):
    """A problem in the file; ``load_inventory`` adds the file name and turns it into an InputError."""

def show_value(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 62 else shown[:59] + "..."

def refuse_secrets(variables: Any, where: str) -> None:
    """Refuse password-like keys and vault values at any depth; ``id`` tracking keeps YAML aliases linear."""
    pending, seen = [variables], set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(key, str) and _PASSWORD_KEY.search(key):
                    raise EntryProblem(f"{where}: a plain-text password in {show_value(key)} is refused; {BY_REFERENCE}")
                if isinstance(value, str) and value.lstrip().startswith(VAULT_MARK):
                    raise EntryProblem(f"{where}: an Ansible Vault value in {show_value(key)} is refused; {BY_REFERENCE}")
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


def port_number(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{1,5}", value.strip(), re.ASCII):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise EntryProblem(f"port must be a number from 1 to 65535, got {show_value(value)}")
    return value


def _scheme(value: object, port: int | None, ansible: bool) -> str:
    """Ansible defaults to https unless the port is 5985 (its default port is 5986); the runbook to http."""
    if value is None:
        if ansible:
            return "http" if port == 5985 else "https"
        return "https" if port == 5986 else "http"
    if not isinstance(value, str) or value.strip().lower() not in ("http", "https"):
        raise EntryProblem(f"scheme must be http or https, got {show_value(value)}")
    return value.strip().lower()


def _auth(value: object) -> str:
    """The first supported method: Ansible's ansible_winrm_transport may be a list or a comma-separated string."""
    if value is None:
        return "ntlm"
    choices = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [None]
    for choice in choices:
        method = choice.strip().lower() if isinstance(choice, str) else None
        method = _AUTH_ALIASES.get(method, method)
        if method in AUTH_METHODS:
            return method
    raise EntryProblem(f"auth {show_value(value)} is not one of {', '.join(AUTH_METHODS)} (plaintext means basic)")


def _flag(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUTHY | _FALSY:
        return value.strip().lower() in _TRUTHY
    raise EntryProblem(f"{what} must be true/false (or validate/ignore), got {show_value(value)}")


def _text(value: object, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise EntryProblem(f"{what} must be one line of printable text, at most {limit} characters")
    return value


def group_name(name: object) -> str:
    if host_problem(name):
        raise EntryProblem(f"group {show_value(name)}: a group name uses letters, digits, '-', '_' and '.' only")
    return name  # type: ignore[return-value]  # host_problem accepts strings only


def host_entry(name: object, fields: dict, variables: dict, groups: tuple[str, ...], *, ansible: bool) -> HostEntry:
    where = f"host {show_value(name)}"
    problem = host_problem(name)
    if problem:
        raise EntryProblem(f"{where}: name {problem}")
    try:
        address = fields.get("address") or name
        problem = host_problem(address)
        if problem:
            raise EntryProblem(f"address {show_value(address)} {problem}")
        port = port_number(fields.get("port"))
        credential = fields.get("credential") or DEFAULT_REFERENCE
        problem = reference_problem(credential)
        if problem:
            raise EntryProblem(problem)
        validate = fields.get("validate_certificate")
        return HostEntry(
            name=name,  # type: ignore[arg-type]  # host_problem accepts strings only
            address=address,
            port=port,
            scheme=_scheme(fields.get("scheme"), port, ansible),
            auth=_auth(fields.get("auth")),
            credential=credential,
            username=_text(fields.get("username"), "username", 256),
            validate_certificate=True if validate is None else _flag(validate, "validate_certificate"),
            ca_trust_path=_text(fields.get("ca_trust_path"), "ca_trust_path", 1024),
            groups=groups,
            variables=variables,
            egress=_egress(fields["egress"] if "egress" in fields else variables.get(EGRESS_VARIABLE)),
        )
    except EntryProblem as exc:
        raise EntryProblem(f"{where}: {exc}") from None


def _egress(value: object) -> tuple[str, ...]:
    """A list (or a comma/space/semicolon-separated text, as INI and CSV cells hold it) of IPs or CIDR ranges."""
    if value is None:
        return ()
    items = re.split(r"[\s,;]+", value.strip()) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise EntryProblem(f"{EGRESS_VARIABLE} must be a list of IP addresses or CIDR ranges")
    networks = []
    for item in items:
        if item == "":
            continue
        try:
            networks.append(str(ipaddress.ip_network(item.strip() if isinstance(item, str) else None)))
        except (ValueError, TypeError):
            raise EntryProblem(f"{EGRESS_VARIABLE}: {show_value(item)} is not an IP address or CIDR range (host bits "
                           "must be zero: 198.51.100.0/24)") from None
    return tuple(dict.fromkeys(networks))


def refuse_duplicates(hosts: list[HostEntry]) -> None:
    seen: dict[str, str] = {}
    for host in hosts:
        earlier = seen.get(host.name.lower())
        seen[host.name.lower()] = host.name
        if earlier is not None:
            also = f" (also as {show_value(earlier)})" if earlier != host.name else ""
            raise EntryProblem(f"host {show_value(host.name)} is listed twice{also}")
