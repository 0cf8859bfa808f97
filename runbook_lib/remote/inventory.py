"""Which Windows hosts a fleet run covers, read from the inventory file the operator already has.

Four formats are read so that nobody rewrites an inventory for this runbook: the runbook's own YAML, CSV (what a
CMDB or a spreadsheet exports), and Ansible's INI and YAML inventories. Ansible files are interpreted the way
Ansible does it (host ranges, ``host:port``, ``ast.literal_eval`` of INI values, group variables merged by depth,
then ``ansible_group_priority``, then name, host variables last) and their WinRM variables are mapped the way
Ansible's winrm connection plugin reads them, so a host is reached here exactly as a playbook reaches it.

An inventory holds credential *references* only. A plain-text password or an Ansible Vault value is refused
wherever it appears: what the runbook loads ends up in notebook parameters, outputs and evidence. Every problem is
one ``InputError`` line naming the file and the host, group, key or line, and never a value that may be a secret.

The formats are read in :mod:`.inventory_formats`, each host's fields checked in :mod:`.host_entry`; this
module loads a file and selects hosts from it with Ansible's ``--limit`` patterns.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

try:  # the parser behind re: the tree a regular expression compiles from
    from re import _parser as _sre_parse  # type: ignore[attr-defined]  # Python 3.11+
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from ..core.errors import InputError
from ..core.files import FileTooLarge, read_limited
from .host_entry import EntryProblem, HostEntry, refuse_duplicates, show_value
from .inventory_formats import MAX_HOSTS, decode, parse


MAX_INVENTORY_BYTES = 5 * 1024 * 1024  # a 100,000-host inventory is about 5 MiB; anything bigger is a mistake
MAX_LIMIT_PATTERN = 2000
MAX_LIMIT_REGEX = 200
_PATTERN_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")  # Ansible's ':'-separated form, keeping [..] whole


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
        raise InputError(f"inventory {self.path.name}: no host {show_value(name)}")

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
        shown = show_value(pattern)
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
                raise InputError(f"--limit {shown}: {show_value(term)} matches no host" if len(terms) > 1 else
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


_last_loaded: dict[tuple[str, str], Inventory] = {}


def load_inventory(path: Path | str) -> Inventory:
    """The inventory in the file as it is now. A notebook reads it twice (its parameters are checked, then the
    host is connected to), a fleet run's worker once more, with hundreds of hosts: the file is read every time, but
    parsed again only when its bytes changed. Inventory and HostEntry are frozen, and nothing changes an entry's
    ``variables``, so the same object can be handed out again."""
    path = Path(path)
    try:
        raw = read_limited(path, MAX_INVENTORY_BYTES)
    except FileTooLarge as exc:
        raise InputError(f"inventory {path.name}: {exc}") from None
    except OSError as exc:
        raise InputError(f"inventory {path.name}: cannot read it: {exc.strerror or type(exc).__name__}") from None
    key = (str(path), hashlib.sha256(raw).hexdigest())
    inventory = _last_loaded.get(key)
    if inventory is None:
        inventory = _parsed(path, raw, key[1])
        _last_loaded.clear()
        _last_loaded[key] = inventory
    return inventory


def _parsed(path: Path, raw: bytes, digest: str) -> Inventory:
    try:
        fmt, hosts = parse(path, decode(raw))
        if not hosts:
            raise EntryProblem("no hosts in it")
        if len(hosts) > MAX_HOSTS:
            raise EntryProblem(f"more than {MAX_HOSTS} hosts")
        refuse_duplicates(hosts)
    except EntryProblem as exc:
        raise InputError(f"inventory {path.name}: {exc}") from None
    except RecursionError:
        raise InputError(f"inventory {path.name}: nested too deeply") from None
    return Inventory(path, fmt, digest, tuple(hosts))

_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_LONGEST_NAME = 253  # host and group names
_MAX_WAYS = (_LONGEST_NAME + 1) ** 2  # two unbounded repetitions over the longest name


def _limit_regex(text: str) -> re.Pattern[str]:
    """A ``--limit ~regex``, refused when it could backtrack for long: Python's engine has no time limit, and
    ``(a+)+$`` against a 30-character name takes minutes. Refused: a repetition or alternation inside a repetition
    (``(a+)+``, ``(a|ab)*``), backreferences, and repetitions whose ranges multiply beyond a quadratic in the
    longest name (``.*a.*a.*a`` is cubic; ``\\d{1,3}`` four times is 81 ways, fine)."""
    shown = show_value("~" + text)
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
