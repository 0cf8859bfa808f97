"""Group Policy on a simulated host: the profile's GPOs, written into the registry whenever policy is processed.

What Windows does, and so what this does (sources in docs/group-policy.md): computer policy is processed at
startup, on ``gpupdate`` and at background refreshes (every 90 minutes plus a random 0-30 by default). Each
processing writes Group Policy Preferences registry items again (Create only when the value is missing; "apply
once" items never again; disabled items and items whose targeting does not match this host not at all).
Administrative-template settings (``Registry.pol``) are written at startup and on ``gpupdate /force``; a background
refresh or a plain ``gpupdate`` skips GPOs that did not change, unless "Configure registry policy processing:
Process even if the Group Policy objects have not changed" is in force (``NoGPOListChanges`` = 0).

The store also answers as the inspect script reads it: RSoP settings (unless RSoP logging is off) and the history
cache's GPP items, each only for the values the script was asked about, and which values it flags as policy.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import InputError
from ..core.registry import REG_TYPES, Registry, data_problem, name_problem, path_problem

# "Configure registry policy processing" (the registry extension's GUID) and "Turn off RSoP logging".
REGISTRY_CSE_POLICY = ("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\Group Policy\\"
                       "{35378EAC-683F-11D2-A89A-00C04FBBCFA2}", "NoGPOListChanges")
RSOP_LOGGING_SWITCHES = (("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\System", "RSoPLogging"),
                         ("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon", "RsopLogging"))
DEFAULT_REFRESH_S = (90 * 60.0, 30 * 60.0)  # interval and the upper bound of the random offset
_GUID = re.compile(r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}")
_FILTER = re.compile(r"Filter[A-Za-z]{1,54}")


@dataclass(frozen=True)
class TemplateSetting:
    """One Registry.pol entry: set a value, delete it, or (name None, delete) delete every value of the key."""

    path: str
    name: str | None
    type: str | None
    data: Any
    delete: bool


@dataclass(frozen=True)
class PreferenceSetting:
    """One GPP registry item; ``applies`` is whether its item-level targeting matches this host (hidden truth)."""

    path: str
    name: str | None
    action: str
    type: str | None
    data: Any
    disabled: bool
    filters: tuple[str, ...]
    applies: bool
    run_once: bool


@dataclass(frozen=True)
class Gpo:
    guid: str
    name: str
    templates: tuple[TemplateSetting, ...]
    preferences: tuple[PreferenceSetting, ...]

    @property
    def rsop_id(self) -> str:
        """RSOP_GPO.id: the GPO's directory path."""
        return f"cn={self.guid},cn=policies,cn=system,DC=example,DC=test"


def _covers(path: str, name: str | None, wanted: set[tuple[str, str]]) -> bool:
    folded = path.casefold()
    if name is not None:
        return (folded, name.casefold()) in wanted
    return any(p == folded or p.startswith(folded + "\\") for p, _ in wanted)


def _delete_key(registry: Registry, path: str, subkeys: bool) -> Registry:
    folded = path.casefold()
    for value in list(registry):
        p = value.path.casefold()
        if p == folded or subkeys and p.startswith(folded + "\\"):
            registry = registry.delete(value.path, value.name)
    return registry


class PolicyStore:
    """The GPOs that apply to one host, highest precedence first (GPMC's link order 1 first)."""

    def __init__(self, gpos: tuple[Gpo, ...] = ()):
        self.gpos = gpos
        self._applied_once: set[tuple[int, int]] = set()

    @classmethod
    def from_profile(cls, doc: Any, origin: str) -> "PolicyStore":
        if doc is None:
            return cls()
        try:
            return cls(tuple(_gpo(item) for item in doc["gpos"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"profile {origin}: group_policy: {exc}") from None

    # --- processing -------------------------------------------------------------------------------------------
    def process(self, registry: Registry, *, force: bool) -> Registry:
        """One policy processing. ``force``: startup or gpupdate /force; otherwise a background refresh."""
        if force or registry.dword(*REGISTRY_CSE_POLICY) == 0:
            for gpo in reversed(self.gpos):  # the lowest precedence first, so the winner writes last
                for setting in gpo.templates:
                    registry = _apply_template(registry, setting)
        for g, gpo in reversed(list(enumerate(self.gpos))):
            for i, item in enumerate(gpo.preferences):
                if item.disabled or not item.applies or item.run_once and (g, i) in self._applied_once:
                    continue
                self._applied_once.add((g, i))
                registry = _apply_preference(registry, item)
        return registry

    # --- what the inspect script reads --------------------------------------------------------------------------
    def rsop_unavailable_reason(self, registry: Registry) -> str | None:
        for path, name in RSOP_LOGGING_SWITCHES:
            if registry.dword(path, name) == 0:
                return f"RSoP logging is turned off ({path}\\{name}=0)"
        return None

    def facts(self, registry: Registry, values: list[tuple[str, str]]) -> dict:
        """The ``group_policy`` section inspect reports for these (path, name) values."""
        wanted = {(path.casefold(), name.casefold()) for path, name in values}
        reason = self.rsop_unavailable_reason(registry)
        settings, winners = [], {}
        for gpo in self.gpos if reason is None else ():
            for s in gpo.templates:
                if not _covers(s.path, s.name, wanted):
                    continue
                key = (s.path.casefold(), s.name.casefold() if s.name is not None else None)
                winners[key] = winners.get(key, 0) + 1
                settings.append({"path": s.path, "name": s.name, "type": None if s.delete else s.type,
                                 "data": None if s.delete else s.data, "deleted": s.delete, "gpo_id": gpo.rsop_id,
                                 "gpo_name": gpo.name, "precedence": winners[key]})
        items = []
        for gpo in self.gpos:
            for p in gpo.preferences:
                if not _covers(p.path, p.name, wanted):
                    continue
                targeting = [f for f in p.filters if f != "FilterRunOnce"]
                items.append({"path": p.path, "name": p.name, "action": p.action, "type": p.type, "data": p.data,
                              "disabled": p.disabled, "targeting": "uncertain" if targeting else "none",
                              "filters": targeting, "run_once": p.run_once, "gpo_id": gpo.guid,
                              "gpo_name": gpo.name if reason is None else None})
        return {"rsop": {"available": reason is None, "reason": reason, "settings": settings},
                "preferences": {"available": True, "reason": None, "items": items}}


def policy_set_values(section: dict) -> set[tuple[str, str]]:
    """(path, name) casefolded of the values inspect flags ``policy``: what the script's own rule gives."""
    flagged, winners = set(), {}
    for s in section["rsop"]["settings"]:
        if s["name"] is None:
            continue
        key = (s["path"].casefold(), s["name"].casefold())
        if key not in winners or s["precedence"] < winners[key]["precedence"]:
            winners[key] = s
    flagged |= {key for key, s in winners.items() if not s["deleted"]}
    for i in section["preferences"]["items"]:
        if i["name"] is not None and not (i["disabled"] or i["run_once"]) and i["targeting"] == "none" \
                and i["action"] in ("R", "U"):
            flagged.add((i["path"].casefold(), i["name"].casefold()))
    return flagged


def _apply_template(registry: Registry, s: TemplateSetting) -> Registry:
    if s.name is None:
        return _delete_key(registry, s.path, subkeys=False)
    if s.delete:
        return registry.delete(s.path, s.name)
    return registry.set(s.path, s.name, s.type, s.data)


def _apply_preference(registry: Registry, p: PreferenceSetting) -> Registry:
    if p.name is None:
        return _delete_key(registry, p.path, subkeys=True) if p.action in ("D", "R") else registry
    if p.action == "D":
        return registry.delete(p.path, p.name)
    if p.action == "C" and registry.get(p.path, p.name) is not None:
        return registry
    return registry.set(p.path, p.name, p.type, p.data)


def _value(doc: dict, allow_key: bool) -> tuple[str, str | None, str | None, Any]:
    path, name = doc["path"], doc.get("name")
    problem = path_problem(path) or (name_problem(name) if name is not None else None)
    if problem or name is None and not allow_key:
        raise ValueError(f"{path!r}\\{name!r}: {problem or 'a value name is needed'}")
    reg_type, data = doc.get("type"), doc.get("data")
    if reg_type is not None and (reg_type not in REG_TYPES or data_problem(reg_type, data)):
        raise ValueError(f"{path}\\{name}: {reg_type} {data!r} is not a registry value")
    return path, name, reg_type, data


def _gpo(doc: dict) -> Gpo:
    guid = str(doc["guid"]).upper()
    if not _GUID.fullmatch(guid):
        raise ValueError(f"GPO guid {guid[:40]!r} must look like {{6AC1786C-016F-11D2-945F-00C04FB984F9}}")
    templates = []
    for item in doc.get("administrative_templates", []):
        path, name, reg_type, data = _value(item, allow_key=True)
        delete = bool(item.get("delete", False))
        if not delete and (name is None or reg_type is None):
            raise ValueError(f"{path}\\{name}: a setting needs a name, type and data, or delete: true")
        templates.append(TemplateSetting(path, name, reg_type, data, delete))
    preferences = []
    for item in doc.get("preferences", []):
        path, name, reg_type, data = _value(item, allow_key=True)
        action = item["action"]
        if action not in ("C", "R", "U", "D"):
            raise ValueError(f"{path}\\{name}: action must be C, R, U or D")
        if name is not None and action != "D" and reg_type is None:
            raise ValueError(f"{path}\\{name}: action {action} needs a type and data")
        filters = tuple(item.get("filters", ()))
        if not all(isinstance(f, str) and _FILTER.fullmatch(f) for f in filters):
            raise ValueError(f"{path}\\{name}: filters are GPP element names such as FilterOrgUnit")
        preferences.append(PreferenceSetting(path, name, action, reg_type, data, bool(item.get("disabled", False)),
                                             filters, bool(item.get("applies", True)),
                                             "FilterRunOnce" in filters))
    return Gpo(guid, str(doc["name"]), tuple(templates), tuple(preferences))


class RefreshTimer:
    """Background refresh: every ``interval`` seconds plus a random 0..``offset``, until stopped."""

    def __init__(self, refresh: Callable[[], None], interval_s: float, offset_s: float, rng: random.Random):
        self._refresh, self._interval, self._offset, self._rng = refresh, interval_s, offset_s, rng
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gp-refresh", daemon=True)

    def start(self) -> "RefreshTimer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval + self._rng.uniform(0, self._offset)):
            self._refresh()
