"""The four inventory formats, each read into host entries: the runbook's own YAML, CSV (what a CMDB or a
spreadsheet exports), and Ansible's INI and YAML inventories, interpreted the way Ansible does it (host ranges,
``host:port``, ``ast.literal_eval`` of INI values, group variables merged by depth, then ``ansible_group_priority``,
then name, host variables last), with the WinRM variables mapped the way Ansible's winrm connection plugin reads
them.
"""

from __future__ import annotations

import ast
import csv
import io
import re
import shlex
import string
import warnings
import yaml
from pathlib import Path
from typing import Any

from ..core.files import decode_text
from .host_entry import (BY_REFERENCE, EGRESS_VARIABLE, VAULT_MARK, EntryProblem, HostEntry, group_name, host_entry,
                         port_number, refuse_secrets, show_value)


MAX_HOSTS = 100_000  # bounds what a host range such as web[0:99999999] may expand to
_ENTRY_FIELDS = ("address", "port", "scheme", "auth", "credential", "username", "validate_certificate",
                 "ca_trust_path", "groups")
_NATIVE_KEYS = ("name", *_ENTRY_FIELDS, "vars")
_CSV_COLUMNS = ("name", *_ENTRY_FIELDS)
_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUP = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_HOST_RANGE = re.compile(r"\[([^\[\]]*:[^\[\]]*)\]")
_LOOKS_LIKE_YAML = re.compile(r"(?:---|%YAML.*|[A-Za-z0-9_.-]+:\s*(?:#.*)?)$")


def decode(raw: bytes) -> str:
    try:
        return decode_text(raw)
    except UnicodeDecodeError as exc:
        raise EntryProblem(f"not UTF-8 text (byte {exc.start})") from None


def parse(path: Path, text: str) -> tuple[str, list[HostEntry]]:
    if not text.strip():
        raise EntryProblem("no hosts in it")
    if text.lstrip().startswith(VAULT_MARK):
        raise EntryProblem("an Ansible Vault encrypted file is refused; an inventory names hosts and holds no "
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
        raise EntryProblem("no hosts in it")
    if not isinstance(doc, dict):
        raise EntryProblem("expected a mapping at the top: hosts: (tls-runbook) or all: (Ansible)")
    if "defaults" in doc or isinstance(doc.get("hosts"), list):
        return "tls-runbook-yaml", _read_native(doc)
    return "ansible-yaml", _read_ansible_yaml(doc).entries()


# --- tls-runbook YAML and CSV ---------------------------------------------------------------------------------
def _native_groups(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise EntryProblem("groups must be a list of group names")
    return tuple(dict.fromkeys(group_name(g) for g in value))


def _native_vars(value: object) -> dict:
    if not isinstance(value, dict):
        raise EntryProblem("vars must be a mapping")
    for key, item in value.items():
        if key == EGRESS_VARIABLE and isinstance(item, list):
            continue
        if not isinstance(key, str) or not isinstance(item, (str, int, float)):
            raise EntryProblem(f"vars: {show_value(key)} must be a name with a text, number or true/false value")
    return dict(value)


def _read_native(doc: dict) -> list[HostEntry]:
    for key in doc:
        if key not in ("defaults", "hosts"):
            raise EntryProblem(f"unknown top-level key {show_value(key)}; expected defaults and hosts")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise EntryProblem("defaults must be a mapping of host fields")
    refuse_secrets(defaults, "defaults")
    for key in defaults:
        if key not in _NATIVE_KEYS or key in ("name", "address"):
            raise EntryProblem(f"defaults: unknown key {show_value(key)}; expected host fields other than name and address")
    hosts = doc.get("hosts")
    if not isinstance(hosts, list):
        raise EntryProblem("hosts must be a list of mappings with name:")
    default_vars = _native_vars(defaults.get("vars", {}))
    entries = []
    for number, item in enumerate(hosts, 1):
        if not isinstance(item, dict) or "name" not in item:
            raise EntryProblem(f"hosts item {number}: expected a mapping with name:")
        where = f"host {show_value(item['name'])}"
        refuse_secrets(item, where)
        for key in item:
            if key not in _NATIVE_KEYS:
                raise EntryProblem(f"{where}: unknown key {show_value(key)}; expected {', '.join(_NATIVE_KEYS)}")
        fields = {**defaults, **{k: v for k, v in item.items() if v is not None}}
        try:
            groups = _native_groups(fields.get("groups", []))
            variables = {**default_vars, **_native_vars(item.get("vars", {}))}
        except EntryProblem as exc:
            raise EntryProblem(f"{where}: {exc}") from None
        entries.append(host_entry(item["name"], fields, variables, groups, ansible=False))
    return entries


def _read_csv(text: str) -> list[HostEntry]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip().lower() for column in next(reader, [])]
        if "name" not in header:
            raise EntryProblem("the CSV header row needs a name column")
        for number, column in enumerate(header, 1):
            if not column:
                raise EntryProblem(f"CSV column {number} has no name in the header row")
            if header.count(column) > 1:
                raise EntryProblem(f"CSV column {show_value(column)} appears twice")
            refuse_secrets({column: None}, "CSV header")
        entries = []
        for row in reader:
            cells = [cell.strip() for cell in row]
            if any(cells[len(header):]):
                raise EntryProblem(f"line {reader.line_num}: more fields than the header row has columns")
            values = {column: cell for column, cell in zip(header, cells) if cell}
            if not values:
                continue
            where = f"host {show_value(values.get('name', ''))}"
            refuse_secrets(values, where)
            try:
                groups = tuple(dict.fromkeys(group_name(g.strip()) for g in values.get("groups", "").split(";")
                                             if g.strip()))
            except EntryProblem as exc:
                raise EntryProblem(f"{where}: {exc}") from None
            variables = {k: v for k, v in values.items() if k not in _CSV_COLUMNS}
            entries.append(host_entry(values.get("name", ""), values, variables, groups, ansible=False))
    except csv.Error as exc:
        raise EntryProblem(f"line {reader.line_num}: bad CSV: {exc}") from None
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
        name = group_name(name)
        self.group_vars.setdefault(name, {})
        self.children.setdefault(name, [])
        return name

    def set_group_vars(self, group: str, variables: dict) -> None:
        refuse_secrets(variables, f"group {show_value(group)}")
        for key in variables:
            if not isinstance(key, str):
                raise EntryProblem(f"group {show_value(group)}: variable name {show_value(key)} is not text")
        self.group_vars[group].update(variables)

    def add_child(self, parent: str, child: object) -> None:
        child = self.group(child)
        if child not in self.children[parent]:
            self.children[parent].append(child)

    def add_hosts(self, group: str, pattern: object, variables: dict) -> None:
        """A host pattern (``web[01:03].contoso.com:5986``) with its variables, under one group."""
        where = f"host {show_value(pattern)}"
        refuse_secrets(variables, where)
        if not isinstance(pattern, str):
            raise EntryProblem(f"{where}: a host name must be text")
        for key in variables:
            if not isinstance(key, str):
                raise EntryProblem(f"{where}: variable name {show_value(key)} is not text")
        names, port = _expand_host_pattern(pattern)
        if port is not None:
            variables = {"ansible_port": port, **variables}
        for name in names:
            self.host_vars.setdefault(name, {}).update(variables)
            memberships = self.host_groups.setdefault(name, [])
            if group not in memberships:
                memberships.append(group)
            if len(self.host_vars) > MAX_HOSTS:
                raise EntryProblem(f"more than {MAX_HOSTS} hosts")

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
                raise EntryProblem(f"group {show_value(group)}: ansible_group_priority must be a number") from None
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
            entries.append(host_entry(name, fields, variables, groups, ansible=True))
        return entries

    def _walk_groups(self) -> tuple[dict[str, int], dict[str, set[str]]]:
        """Depth (longest path from ``all``) and ancestors of every group, in topological order (no recursion)."""
        incoming = {group: 0 for group in self.children}
        for kids in self.children.values():
            for kid in kids:
                incoming[kid] += 1
        if incoming["all"]:
            raise EntryProblem("group 'all' cannot be a child of another group")
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
            raise EntryProblem(f"group {show_value(looped)} is its own ancestor through children")
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
    raise EntryProblem(f"ansible_winrm_server_cert_validation must be validate or ignore, got {show_value(value)}")


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
            raise EntryProblem(f"host {show_value(pattern)}: expected NAME or NAME:PORT")
        pattern, port = pattern[:cut], port_number(pattern[cut + 1:])
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
            raise EntryProblem(f"host {show_value(pattern)}: the range expands to more than {MAX_HOSTS} hosts")
    return expanded, port


def _range(spec: str, pattern: str) -> list[str]:
    bounds = spec.split(":")
    begin, end, step = bounds[0] or "0", bounds[1], bounds[2] if len(bounds) == 3 else "1"
    bad = f"host {show_value(pattern)}: a range is [BEGIN:END] or [BEGIN:END:STEP] with END not before BEGIN"
    if len(bounds) > 3 or not re.fullmatch(r"\d{1,6}", step, re.ASCII) or int(step) == 0:
        raise EntryProblem(bad)
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise EntryProblem(bad)
        return list(letters[letters.index(begin):letters.index(end) + 1:int(step)])
    if not (re.fullmatch(r"\d{1,9}", begin, re.ASCII) and re.fullmatch(r"\d{1,9}", end, re.ASCII)):
        raise EntryProblem(bad)
    if int(begin) > int(end) or (int(end) - int(begin)) // int(step) >= MAX_HOSTS:
        raise EntryProblem(bad if int(begin) > int(end) else f"host {show_value(pattern)}: more than {MAX_HOSTS} hosts")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise EntryProblem(f"host {show_value(pattern)}: a zero-padded range needs BEGIN and END of the same length")
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
                raise EntryProblem(f"line {number}: section type {show_value(kind)} is not hosts, children or vars")
        elif line.startswith("[") and line.endswith("]"):
            raise EntryProblem(f"line {number}: bad section header; group names have no spaces or ':'")
        elif kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise EntryProblem(f"line {number}: expected key=value in [{group}:vars]")
            tree.set_group_vars(group, {key.strip(): _ini_value(value.strip())})
        elif kind == "children":
            child = _INI_GROUP.match(line)
            if not child:
                raise EntryProblem(f"line {number}: expected one group name in [{group}:children]")
            tree.add_child(group, child[1])
        else:
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                raise EntryProblem(f"line {number}: unbalanced quotes") from None
            if not tokens:
                continue
            variables = {}
            for token in tokens[1:]:
                key, sep, value = token.partition("=")
                if not sep or not key:
                    raise EntryProblem(f"line {number}: expected key=value after the host name")
                variables[key] = _ini_value(value)
            tree.add_hosts(group, tokens[0], variables)
    return tree


def _read_ansible_yaml(doc: dict) -> _AnsibleTree:
    if isinstance(doc.get("plugin"), str):
        raise EntryProblem("is a dynamic inventory plugin configuration; export it with "
                       "ansible-inventory -i FILE --list --yaml and load that")
    tree = _AnsibleTree()
    for name, data in doc.items():
        _yaml_group(tree, tree.group(name), data)
    return tree


def _yaml_group(tree: _AnsibleTree, group: str, data: object) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise EntryProblem(f"group {show_value(group)}: expected a mapping with hosts:, children: or vars:")
    for key, value in data.items():
        if key not in ("hosts", "children", "vars"):
            raise EntryProblem(f"group {show_value(group)}: unknown key {show_value(key)}; expected hosts, children or vars")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise EntryProblem(f"group {show_value(group)}: {key} must be a mapping")
        if key == "vars":
            tree.set_group_vars(group, value)
        elif key == "children":
            for child, child_data in value.items():
                tree.add_child(group, child)
                _yaml_group(tree, child, child_data)
        else:
            for pattern, host_data in value.items():
                if host_data is not None and not isinstance(host_data, dict):
                    raise EntryProblem(f"host {show_value(pattern)}: expected a mapping of variables")
                tree.add_hosts(group, pattern, host_data or {})


# --- YAML loading -------------------------------------------------------------------------------------------
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader that refuses duplicate keys (one would silently drop hosts) and reads Ansible's ``!unsafe``.
    LibYAML's parser where PyYAML has it: every notebook of every host reads the whole inventory, and the pure-Python
    parser took 70 ms for 200 hosts."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if (key_node.tag, key_node.value) in seen:
                    raise EntryProblem(f"line {key_node.start_mark.line + 1}: key {show_value(key_node.value)} appears "
                                   "twice in one mapping")
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


def _refuse_vault(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    raise EntryProblem(f"line {node.start_mark.line + 1}: an Ansible Vault value (!vault) is refused; {BY_REFERENCE}")


_Loader.add_constructor("!vault", _refuse_vault)
_Loader.add_constructor("!unsafe", yaml.SafeLoader.construct_scalar)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise EntryProblem(f"bad YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError:
        raise EntryProblem("bad YAML") from None
