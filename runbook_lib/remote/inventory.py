"""Which Windows hosts a fleet run covers, read from the inventory file the operator already has.

Four formats are read so that nobody rewrites an inventory for this runbook: the runbook's own YAML, CSV (what a
CMDB or a spreadsheet exports), and Ansible's INI and YAML inventories. Ansible files are interpreted the way
Ansible does it (host ranges, ``host:port``, ``ast.literal_eval`` of INI values, group variables merged by depth,
then ``ansible_group_priority``, then name, host variables last) and their WinRM variables are mapped the way
Ansible's winrm connection plugin reads them, so a host is reached here exactly as a playbook reaches it.

An inventory holds credential *references* only. A plain-text password or an Ansible Vault value is refused
wherever it appears: what the runbook loads ends up in notebook parameters, outputs and evidence. Every problem is
one ``InputError`` line naming the file and the host, group, key or line, and never a value that may be a secret.
"""

from __future__ import annotations

import ast
import csv
import fnmatch
import hashlib
import io
import ipaddress
import re
import shlex
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # the parser behind re: the tree a regular expression compiles from
    from re import _parser as _sre_parse  # type: ignore[attr-defined]  # Python 3.11+
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from ..core.errors import InputError
from ..core.facts import host_problem
from ..core.files import FileTooLarge, decode_text, read_limited
from .credentials import DEFAULT_REFERENCE, reference_problem
from .transport import AUTH_METHODS

MAX_INVENTORY_BYTES = 5 * 1024 * 1024  # a 100,000-host inventory is about 5 MiB; anything bigger is a mistake
MAX_HOSTS = 100_000  # bounds what a host range such as web[0:99999999] may expand to
MAX_LIMIT_PATTERN = 2000
MAX_LIMIT_REGEX = 200

_AUTH_ALIASES = {"plaintext": "basic", "ssl": "basic"}  # pywinrm's names for Basic over http and over https
_ENTRY_FIELDS = ("address", "port", "scheme", "auth", "credential", "username", "validate_certificate",
                 "ca_trust_path", "groups")
_NATIVE_KEYS = ("name", *_ENTRY_FIELDS, "vars")
_CSV_COLUMNS = ("name", *_ENTRY_FIELDS)
# password, passwd, passphrase, and Ansible's *_pass (ansible_ssh_pass, ansible_become_pass, ansible_winrm_pass).
_PASSWORD_KEY = re.compile(r"passw(?:or)?d|passphrase|(?:^|_)pass$", re.IGNORECASE)
_VAULT_MARK = "$ANSIBLE_VAULT"
_BY_REFERENCE = ("pass it by reference: set tls_runbook_credential (or credential:) to env:PREFIX (reads "
                 "PREFIX_USER and PREFIX_PASSWORD), keyring:SERVICE/USER or prompt")
_TRUTHY = {"true", "yes", "on", "1", "validate"}
_FALSY = {"false", "no", "off", "0", "ignore"}
EGRESS_VARIABLE = "tls_runbook_egress"  # where a host's sign-ins leave for Entra: IP addresses and CIDR ranges
_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUP = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_HOST_RANGE = re.compile(r"\[([^\[\]]*:[^\[\]]*)\]")
_LOOKS_LIKE_YAML = re.compile(r"(?:---|%YAML.*|[A-Za-z0-9_.-]+:\s*(?:#.*)?)$")
_PATTERN_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")  # Ansible's ':'-separated form, keeping [..] whole


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


@dataclass(frozen=True)
class Inventory:
    """The hosts of one file; ``digest`` ties a fleet run's evidence to the exact file it was planned from."""

    path: Path
    format: str  # tls-runbook-yaml, csv, ansible-ini or ansible-yaml
    digest: str
    hosts: tuple[HostEntry, ...]

    def get(self, name: str) -> HostEntry:
        wanted = name.lower() if isinstance(name, str) else None
        for host in self.hosts:
            if host.name.lower() == wanted:
                return host
        raise InputError(f"inventory {self.path.name}: no host {_show(name)}")

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Group name to host names, with Ansible's implicit ``all`` and ``ungrouped``."""
        members: dict[str, list[str]] = {"all": [h.name for h in self.hosts],
                                         "ungrouped": [h.name for h in self.hosts if not h.groups]}
        for host in self.hosts:
            for group in host.groups:
                members.setdefault(group, []).append(host.name)
        return {group: tuple(names) for group, names in members.items()}

    def select(self, pattern: str | None) -> list[HostEntry]:
        """The hosts an Ansible ``--limit`` pattern names, in inventory order.

        Matching ignores case, as Windows and DNS do. A union term that matches nothing is an error rather than
        Ansible's warning: a mistyped host name must not silently drop a host from a remediation run.
        """
        if pattern is None or (isinstance(pattern, str) and not pattern.strip()):
            return list(self.hosts)
        if not isinstance(pattern, str):
            raise InputError("--limit must be a host pattern string")
        if len(pattern) > MAX_LIMIT_PATTERN or not pattern.isprintable():
            raise InputError(f"--limit must be one line of printable text, at most {MAX_LIMIT_PATTERN} characters")
        shown = _show(pattern)
        if "," not in pattern and _PATTERN_TERMS.sub("", pattern).strip(": \t"):
            raise InputError(f"--limit {shown}: unbalanced brackets; separate patterns with ',' instead of ':'")
        terms = [t.strip() for t in (pattern.split(",") if "," in pattern else _PATTERN_TERMS.findall(pattern))]
        terms = [t for t in terms if t]
        if any(t in ("&", "!") for t in terms):
            raise InputError(f"--limit {shown}: '&' and '!' need a name, group or pattern after them")
        groups = self.groups
        unions = [t for t in terms if t[0] not in "&!"]
        chosen: set[int] = set() if unions else set(range(len(self.hosts)))
        for term in unions:
            matched = self._matching(term, groups)
            if not matched:
                raise InputError(f"--limit {shown}: {_show(term)} matches no host" if len(terms) > 1 else
                                 f"--limit {shown} matches no host")
            chosen |= matched
        for term in (t for t in terms if t[0] == "&"):
            chosen &= self._matching(term[1:], groups)
        for term in (t for t in terms if t[0] == "!"):
            chosen -= self._matching(term[1:], groups)
        if not chosen:
            raise InputError(f"--limit {shown} matches no host")
        return [host for index, host in enumerate(self.hosts) if index in chosen]

    def _matching(self, term: str, groups: dict[str, tuple[str, ...]]) -> set[int]:
        if term in ("all", "*"):
            return set(range(len(self.hosts)))
        # Globs are safe as translated (fnmatch emulates atomic groups); a ~regex is checked for backtracking first.
        regex = _limit_regex(term[1:]) if term.startswith("~") else re.compile(fnmatch.translate(term), re.IGNORECASE)
        index = {host.name: i for i, host in enumerate(self.hosts)}
        matched = {i for name, i in index.items() if regex.match(name)}
        for group, names in groups.items():
            if regex.match(group):
                matched.update(index[name] for name in names)
        return matched


def load_inventory(path: Path | str) -> Inventory:
    path = Path(path)
    try:
        raw = read_limited(path, MAX_INVENTORY_BYTES)
    except FileTooLarge as exc:
        raise InputError(f"inventory {path.name}: {exc}") from None
    except OSError as exc:
        raise InputError(f"inventory {path.name}: cannot read it: {exc.strerror or type(exc).__name__}") from None
    try:
        fmt, hosts = _parse(path, _decode(raw))
        if not hosts:
            raise _Problem("no hosts in it")
        if len(hosts) > MAX_HOSTS:
            raise _Problem(f"more than {MAX_HOSTS} hosts")
        _refuse_duplicates(hosts)
    except _Problem as exc:
        raise InputError(f"inventory {path.name}: {exc}") from None
    except RecursionError:
        raise InputError(f"inventory {path.name}: nested too deeply") from None
    return Inventory(path, fmt, hashlib.sha256(raw).hexdigest(), tuple(hosts))


class _Problem(Exception):
    """A problem in the file; ``load_inventory`` adds the file name and turns it into an InputError."""


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_LONGEST_NAME = 253  # host and group names
_MAX_WAYS = (_LONGEST_NAME + 1) ** 2  # two unbounded repetitions over the longest name


def _limit_regex(text: str) -> re.Pattern[str]:
    """A ``--limit ~regex``, refused when it could backtrack for long: Python's engine has no time limit, and
    ``(a+)+$`` against a 30-character name takes minutes. Refused: a repetition or alternation inside a repetition
    (``(a+)+``, ``(a|ab)*``), backreferences, and repetitions whose ranges multiply beyond a quadratic in the
    longest name (``.*a.*a.*a`` is cubic; ``\\d{1,3}`` four times is 81 ways, fine)."""
    shown = _show("~" + text)
    if len(text) > MAX_LIMIT_REGEX:
        raise InputError(f"--limit {shown}: a regular expression is at most {MAX_LIMIT_REGEX} characters")
    try:
        tree = _sre_parse.parse(text, re.IGNORECASE)
        regex = re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise InputError(f"--limit: {shown} is not a regular expression: {exc.msg}") from None
    ways = 1  # how many ways the repetitions can split a name, at most

    def walk(items, inside_repeat: bool) -> None:
        nonlocal ways
        for op, argument in items:
            name = str(op)
            if name in ("GROUPREF", "GROUPREF_EXISTS"):
                raise InputError(f"--limit {shown}: backreferences are not supported")
            if name in _REPEATS and argument[1] > 1:
                if inside_repeat:
                    raise InputError(f"--limit {shown}: a repetition inside a repetition can take minutes; "
                                     "simplify it (a glob such as web* often does)")
                low, high = argument[0], min(argument[1], _LONGEST_NAME)
                ways *= max(1, high - low + 1)
                walk(argument[2], True)
            elif name == "BRANCH":
                if inside_repeat:
                    raise InputError(f"--limit {shown}: a repeated alternation can take minutes; simplify it")
                for branch in argument[1]:
                    walk(branch, inside_repeat)
            elif name in _REPEATS:
                walk(argument[2], inside_repeat)
            elif name == "SUBPATTERN":
                walk(argument[-1], inside_repeat)
            elif name in ("ASSERT", "ASSERT_NOT"):
                walk(argument[1], inside_repeat)
            elif name == "ATOMIC_GROUP":
                walk(argument, inside_repeat)

    walk(tree, False)
    if ways > _MAX_WAYS:
        raise InputError(f"--limit {shown}: too many repetitions (+, *, {{m,n}}) to match in reasonable time; "
                         "use at most two unbounded ones")
    return regex


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 62 else shown[:59] + "..."


def _decode(raw: bytes) -> str:
    try:
        return decode_text(raw)
    except UnicodeDecodeError as exc:
        raise _Problem(f"not UTF-8 text (byte {exc.start})") from None


def _parse(path: Path, text: str) -> tuple[str, list[HostEntry]]:
    if not text.strip():
        raise _Problem("no hosts in it")
    if text.lstrip().startswith(_VAULT_MARK):
        raise _Problem("an Ansible Vault encrypted file is refused; an inventory names hosts and holds no "
                       "secrets: set tls_runbook_credential to a reference instead (env:, keyring: or prompt)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv", _read_csv(text)
    if suffix not in (".yml", ".yaml"):
        first = next((s for s in (line.strip() for line in text.splitlines()) if s and s[0] not in "#;"), "")
        if not _LOOKS_LIKE_YAML.match(first):
            return "ansible-ini", _read_ini(text).entries()
    doc = _load_yaml(text)
    if doc is None:
        raise _Problem("no hosts in it")
    if not isinstance(doc, dict):
        raise _Problem("expected a mapping at the top: hosts: (tls-runbook) or all: (Ansible)")
    if "defaults" in doc or isinstance(doc.get("hosts"), list):
        return "tls-runbook-yaml", _read_native(doc)
    return "ansible-yaml", _read_ansible_yaml(doc).entries()


# --- values shared by all formats ---------------------------------------------------------------------------
def _refuse_secrets(variables: Any, where: str) -> None:
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
                    raise _Problem(f"{where}: a plain-text password in {_show(key)} is refused; {_BY_REFERENCE}")
                if isinstance(value, str) and value.lstrip().startswith(_VAULT_MARK):
                    raise _Problem(f"{where}: an Ansible Vault value in {_show(key)} is refused; {_BY_REFERENCE}")
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


def _port(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{1,5}", value.strip(), re.ASCII):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Problem(f"port must be a number from 1 to 65535, got {_show(value)}")
    return value


def _scheme(value: object, port: int | None, ansible: bool) -> str:
    """Ansible defaults to https unless the port is 5985 (its default port is 5986); the runbook to http."""
    if value is None:
        if ansible:
            return "http" if port == 5985 else "https"
        return "https" if port == 5986 else "http"
    if not isinstance(value, str) or value.strip().lower() not in ("http", "https"):
        raise _Problem(f"scheme must be http or https, got {_show(value)}")
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
    raise _Problem(f"auth {_show(value)} is not one of {', '.join(AUTH_METHODS)} (plaintext means basic)")


def _flag(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUTHY | _FALSY:
        return value.strip().lower() in _TRUTHY
    raise _Problem(f"{what} must be true/false (or validate/ignore), got {_show(value)}")


def _text(value: object, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise _Problem(f"{what} must be one line of printable text, at most {limit} characters")
    return value


def _group_name(name: object) -> str:
    if host_problem(name):
        raise _Problem(f"group {_show(name)}: a group name uses letters, digits, '-', '_' and '.' only")
    return name  # type: ignore[return-value]  # host_problem accepts strings only


def _entry(name: object, fields: dict, variables: dict, groups: tuple[str, ...], *, ansible: bool) -> HostEntry:
    where = f"host {_show(name)}"
    problem = host_problem(name)
    if problem:
        raise _Problem(f"{where}: name {problem}")
    try:
        address = fields.get("address") or name
        problem = host_problem(address)
        if problem:
            raise _Problem(f"address {_show(address)} {problem}")
        port = _port(fields.get("port"))
        credential = fields.get("credential") or DEFAULT_REFERENCE
        problem = reference_problem(credential)
        if problem:
            raise _Problem(problem)
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
    except _Problem as exc:
        raise _Problem(f"{where}: {exc}") from None


def _egress(value: object) -> tuple[str, ...]:
    """A list (or a comma/space/semicolon-separated text, as INI and CSV cells hold it) of IPs or CIDR ranges."""
    if value is None:
        return ()
    items = re.split(r"[\s,;]+", value.strip()) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _Problem(f"{EGRESS_VARIABLE} must be a list of IP addresses or CIDR ranges")
    networks = []
    for item in items:
        if item == "":
            continue
        try:
            networks.append(str(ipaddress.ip_network(item.strip() if isinstance(item, str) else None)))
        except (ValueError, TypeError):
            raise _Problem(f"{EGRESS_VARIABLE}: {_show(item)} is not an IP address or CIDR range (host bits "
                           "must be zero: 198.51.100.0/24)") from None
    return tuple(dict.fromkeys(networks))


def _refuse_duplicates(hosts: list[HostEntry]) -> None:
    seen: dict[str, str] = {}
    for host in hosts:
        earlier = seen.get(host.name.lower())
        seen[host.name.lower()] = host.name
        if earlier is not None:
            also = f" (also as {_show(earlier)})" if earlier != host.name else ""
            raise _Problem(f"host {_show(host.name)} is listed twice{also}")


# --- tls-runbook YAML and CSV ---------------------------------------------------------------------------------
def _native_groups(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Problem("groups must be a list of group names")
    return tuple(dict.fromkeys(_group_name(g) for g in value))


def _native_vars(value: object) -> dict:
    if not isinstance(value, dict):
        raise _Problem("vars must be a mapping")
    for key, item in value.items():
        if key == EGRESS_VARIABLE and isinstance(item, list):
            continue
        if not isinstance(key, str) or not isinstance(item, (str, int, float)):
            raise _Problem(f"vars: {_show(key)} must be a name with a text, number or true/false value")
    return dict(value)


def _read_native(doc: dict) -> list[HostEntry]:
    for key in doc:
        if key not in ("defaults", "hosts"):
            raise _Problem(f"unknown top-level key {_show(key)}; expected defaults and hosts")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise _Problem("defaults must be a mapping of host fields")
    _refuse_secrets(defaults, "defaults")
    for key in defaults:
        if key not in _NATIVE_KEYS or key in ("name", "address"):
            raise _Problem(f"defaults: unknown key {_show(key)}; expected host fields other than name and address")
    hosts = doc.get("hosts")
    if not isinstance(hosts, list):
        raise _Problem("hosts must be a list of mappings with name:")
    default_vars = _native_vars(defaults.get("vars", {}))
    entries = []
    for number, item in enumerate(hosts, 1):
        if not isinstance(item, dict) or "name" not in item:
            raise _Problem(f"hosts item {number}: expected a mapping with name:")
        where = f"host {_show(item['name'])}"
        _refuse_secrets(item, where)
        for key in item:
            if key not in _NATIVE_KEYS:
                raise _Problem(f"{where}: unknown key {_show(key)}; expected {', '.join(_NATIVE_KEYS)}")
        fields = {**defaults, **{k: v for k, v in item.items() if v is not None}}
        try:
            groups = _native_groups(fields.get("groups", []))
            variables = {**default_vars, **_native_vars(item.get("vars", {}))}
        except _Problem as exc:
            raise _Problem(f"{where}: {exc}") from None
        entries.append(_entry(item["name"], fields, variables, groups, ansible=False))
    return entries


def _read_csv(text: str) -> list[HostEntry]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip().lower() for column in next(reader, [])]
        if "name" not in header:
            raise _Problem("the CSV header row needs a name column")
        for number, column in enumerate(header, 1):
            if not column:
                raise _Problem(f"CSV column {number} has no name in the header row")
            if header.count(column) > 1:
                raise _Problem(f"CSV column {_show(column)} appears twice")
            _refuse_secrets({column: None}, "CSV header")
        entries = []
        for row in reader:
            cells = [cell.strip() for cell in row]
            if any(cells[len(header):]):
                raise _Problem(f"line {reader.line_num}: more fields than the header row has columns")
            values = {column: cell for column, cell in zip(header, cells) if cell}
            if not values:
                continue
            where = f"host {_show(values.get('name', ''))}"
            _refuse_secrets(values, where)
            try:
                groups = tuple(dict.fromkeys(_group_name(g.strip()) for g in values.get("groups", "").split(";")
                                             if g.strip()))
            except _Problem as exc:
                raise _Problem(f"{where}: {exc}") from None
            variables = {k: v for k, v in values.items() if k not in _CSV_COLUMNS}
            entries.append(_entry(values.get("name", ""), values, variables, groups, ansible=False))
    except csv.Error as exc:
        raise _Problem(f"line {reader.line_num}: bad CSV: {exc}") from None
    return entries


# --- Ansible INI and YAML -----------------------------------------------------------------------------------
class _AnsibleTree:
    """Groups, their variables and children, and hosts with their own variables, in file order."""

    def __init__(self) -> None:
        self.group_vars: dict[str, dict] = {"all": {}, "ungrouped": {}}
        self.children: dict[str, list[str]] = {"all": [], "ungrouped": []}
        self.host_vars: dict[str, dict] = {}
        self.host_groups: dict[str, list[str]] = {}

    def group(self, name: object) -> str:
        name = _group_name(name)
        self.group_vars.setdefault(name, {})
        self.children.setdefault(name, [])
        return name

    def set_group_vars(self, group: str, variables: dict) -> None:
        _refuse_secrets(variables, f"group {_show(group)}")
        for key in variables:
            if not isinstance(key, str):
                raise _Problem(f"group {_show(group)}: variable name {_show(key)} is not text")
        self.group_vars[group].update(variables)

    def add_child(self, parent: str, child: object) -> None:
        child = self.group(child)
        if child not in self.children[parent]:
            self.children[parent].append(child)

    def add_hosts(self, group: str, pattern: object, variables: dict) -> None:
        """A host pattern (``web[01:03].contoso.com:5986``) with its variables, under one group."""
        where = f"host {_show(pattern)}"
        _refuse_secrets(variables, where)
        if not isinstance(pattern, str):
            raise _Problem(f"{where}: a host name must be text")
        for key in variables:
            if not isinstance(key, str):
                raise _Problem(f"{where}: variable name {_show(key)} is not text")
        names, port = _expand_host_pattern(pattern)
        if port is not None:
            variables = {"ansible_port": port, **variables}
        for name in names:
            self.host_vars.setdefault(name, {}).update(variables)
            memberships = self.host_groups.setdefault(name, [])
            if group not in memberships:
                memberships.append(group)
            if len(self.host_vars) > MAX_HOSTS:
                raise _Problem(f"more than {MAX_HOSTS} hosts")

    def entries(self) -> list[HostEntry]:
        for group in self.children:
            if group != "all" and not any(group in kids for kids in self.children.values()):
                self.children["all"].append(group)
        depth, ancestors = self._walk_groups()
        priority = {}
        for group, variables in self.group_vars.items():
            try:
                priority[group] = int(variables.get("ansible_group_priority", 1))
            except (TypeError, ValueError):
                raise _Problem(f"group {_show(group)}: ansible_group_priority must be a number") from None
        entries = []
        for name, own in self.host_vars.items():
            direct = [g for g in self.host_groups[name] if g not in ("all", "ungrouped")]
            member_of = {"all", *(direct or ["ungrouped"])}
            member_of.update(*(ancestors[g] for g in list(member_of)))
            merged: dict = {}
            for group in sorted(member_of, key=lambda g: (depth[g], priority[g], g)):
                merged.update(self.group_vars[group])
            merged.update(own)
            fields, variables = _map_ansible_vars(merged)
            groups = tuple(sorted(member_of - {"all", "ungrouped"}))
            entries.append(_entry(name, fields, variables, groups, ansible=True))
        return entries

    def _walk_groups(self) -> tuple[dict[str, int], dict[str, set[str]]]:
        """Depth (longest path from ``all``) and ancestors of every group, in topological order (no recursion)."""
        incoming = {group: 0 for group in self.children}
        for kids in self.children.values():
            for kid in kids:
                incoming[kid] += 1
        if incoming["all"]:
            raise _Problem("group 'all' cannot be a child of another group")
        depth = {group: 0 for group in self.children}
        ancestors: dict[str, set[str]] = {group: set() for group in self.children}
        ready, done = ["all"], 0
        while ready:
            parent = ready.pop()
            done += 1
            for kid in self.children[parent]:
                depth[kid] = max(depth[kid], depth[parent] + 1)
                ancestors[kid] |= ancestors[parent] | {parent}
                incoming[kid] -= 1
                if not incoming[kid]:
                    ready.append(kid)
        if done < len(self.children):
            looped = next(group for group, count in incoming.items() if count)
            raise _Problem(f"group {_show(looped)} is its own ancestor through children")
        return depth, ancestors


def _map_ansible_vars(merged: dict) -> tuple[dict, dict]:
    """Entry fields from the winrm connection plugin's variables; where two name one option the later one wins."""
    def last(*names: str) -> Any:
        return next((merged[n] for n in reversed(names) if n in merged), None)

    validation = merged.get("ansible_winrm_server_cert_validation")
    fields = {
        "address": last("ansible_host", "ansible_winrm_host"),
        "port": last("ansible_port", "ansible_winrm_port"),
        "username": last("ansible_user", "ansible_winrm_user"),
        "scheme": merged.get("ansible_winrm_scheme"),
        "auth": merged.get("ansible_winrm_transport"),
        "credential": merged.get("tls_runbook_credential"),
        "ca_trust_path": merged.get("ansible_winrm_ca_trust_path"),
        "validate_certificate": None if validation is None else _ansible_validation(validation),
        "egress": merged.get(EGRESS_VARIABLE),
    }
    variables = {key: value for key, value in merged.items()
                 if not key.startswith("ansible_") and key != "tls_runbook_credential"
                 and isinstance(value, (str, int, float, bool))}
    return fields, variables


def _ansible_validation(value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("validate", "ignore"):
        return value.strip().lower() == "validate"
    raise _Problem(f"ansible_winrm_server_cert_validation must be validate or ignore, got {_show(value)}")


def _expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """Names and port of ``NAME[:PORT]`` where NAME may hold ranges ``[01:03]``, ``[a:c]``, ``[0:10:2]``."""
    depth, cut = 0, None
    for index, char in enumerate(pattern):
        depth += (char == "[") - (char == "]")
        if char == ":" and depth == 0:
            cut = index
    port = None
    if cut is not None:
        if not re.fullmatch(r"\d{1,5}", pattern[cut + 1:], re.ASCII):
            raise _Problem(f"host {_show(pattern)}: expected NAME or NAME:PORT")
        pattern, port = pattern[:cut], _port(pattern[cut + 1:])
    names, expanded = [pattern], []
    while names:
        name = names.pop()
        found = _HOST_RANGE.search(name)
        if not found:
            expanded.append(name)
            continue
        head, tail = name[:found.start()], name[found.end():]
        names.extend(reversed([head + part + tail for part in _range(found[1], pattern)]))
        if len(names) + len(expanded) > MAX_HOSTS:
            raise _Problem(f"host {_show(pattern)}: the range expands to more than {MAX_HOSTS} hosts")
    return expanded, port


def _range(spec: str, pattern: str) -> list[str]:
    bounds = spec.split(":")
    begin, end, step = bounds[0] or "0", bounds[1], bounds[2] if len(bounds) == 3 else "1"
    bad = f"host {_show(pattern)}: a range is [BEGIN:END] or [BEGIN:END:STEP] with END not before BEGIN"
    if len(bounds) > 3 or not re.fullmatch(r"\d{1,6}", step, re.ASCII) or int(step) == 0:
        raise _Problem(bad)
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise _Problem(bad)
        return list(letters[letters.index(begin):letters.index(end) + 1:int(step)])
    if not (re.fullmatch(r"\d{1,9}", begin, re.ASCII) and re.fullmatch(r"\d{1,9}", end, re.ASCII)):
        raise _Problem(bad)
    if int(begin) > int(end) or (int(end) - int(begin)) // int(step) >= MAX_HOSTS:
        raise _Problem(bad if int(begin) > int(end) else f"host {_show(pattern)}: more than {MAX_HOSTS} hosts")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise _Problem(f"host {_show(pattern)}: a zero-padded range needs BEGIN and END of the same length")
    return [str(n).zfill(width) for n in range(int(begin), int(end) + 1, int(step))]


def _ini_value(text: str) -> Any:
    """Ansible's reading of an INI value: a Python literal if it parses as one, else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def _read_ini(text: str) -> _AnsibleTree:
    tree = _AnsibleTree()
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        section = _INI_SECTION.match(line) if line.startswith("[") else None
        if section:
            group, kind = tree.group(section[1]), section[2] or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise _Problem(f"line {number}: section type {_show(kind)} is not hosts, children or vars")
        elif line.startswith("[") and line.endswith("]"):
            raise _Problem(f"line {number}: bad section header; group names have no spaces or ':'")
        elif kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise _Problem(f"line {number}: expected key=value in [{group}:vars]")
            tree.set_group_vars(group, {key.strip(): _ini_value(value.strip())})
        elif kind == "children":
            child = _INI_GROUP.match(line)
            if not child:
                raise _Problem(f"line {number}: expected one group name in [{group}:children]")
            tree.add_child(group, child[1])
        else:
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                raise _Problem(f"line {number}: unbalanced quotes") from None
            if not tokens:
                continue
            variables = {}
            for token in tokens[1:]:
                key, sep, value = token.partition("=")
                if not sep or not key:
                    raise _Problem(f"line {number}: expected key=value after the host name")
                variables[key] = _ini_value(value)
            tree.add_hosts(group, tokens[0], variables)
    return tree


def _read_ansible_yaml(doc: dict) -> _AnsibleTree:
    if isinstance(doc.get("plugin"), str):
        raise _Problem("is a dynamic inventory plugin configuration; export it with "
                       "ansible-inventory -i FILE --list --yaml and load that")
    tree = _AnsibleTree()
    for name, data in doc.items():
        _yaml_group(tree, tree.group(name), data)
    return tree


def _yaml_group(tree: _AnsibleTree, group: str, data: object) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise _Problem(f"group {_show(group)}: expected a mapping with hosts:, children: or vars:")
    for key, value in data.items():
        if key not in ("hosts", "children", "vars"):
            raise _Problem(f"group {_show(group)}: unknown key {_show(key)}; expected hosts, children or vars")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise _Problem(f"group {_show(group)}: {key} must be a mapping")
        if key == "vars":
            tree.set_group_vars(group, value)
        elif key == "children":
            for child, child_data in value.items():
                tree.add_child(group, child)
                _yaml_group(tree, child, child_data)
        else:
            for pattern, host_data in value.items():
                if host_data is not None and not isinstance(host_data, dict):
                    raise _Problem(f"host {_show(pattern)}: expected a mapping of variables")
                tree.add_hosts(group, pattern, host_data or {})


# --- YAML loading -------------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (one would silently drop hosts) and reads Ansible's ``!unsafe``."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if (key_node.tag, key_node.value) in seen:
                    raise _Problem(f"line {key_node.start_mark.line + 1}: key {_show(key_node.value)} appears "
                                   "twice in one mapping")
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


def _refuse_vault(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    raise _Problem(f"line {node.start_mark.line + 1}: an Ansible Vault value (!vault) is refused; {_BY_REFERENCE}")


_Loader.add_constructor("!vault", _refuse_vault)
_Loader.add_constructor("!unsafe", yaml.SafeLoader.construct_scalar)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise _Problem(f"bad YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError:
        raise _Problem("bad YAML") from None
