"""Which registry values Group Policy owns on a host, read from the facts (``group_policy`` and ``policy`` flags).

Windows writes a GPO's administrative-template settings (``Registry.pol``, logged in RSoP) and its Group Policy
Preferences registry items again whenever it processes the GPO: at startup, on ``gpupdate /force`` and at
background refreshes (every 90 minutes plus a random 0-30 by default, [G2]). A local write to such a value does not
last, and a value the policy deletes cannot be written either. So the engine plans nothing for them and assesses
the host as the next refresh will leave it.

What lands when several sources name one value: among RSoP settings the winning GPO (precedence 1, [G1]); GPP
items over administrative templates (the registry extension runs first, GPP's after it); GPP items that disagree
with each other are "uncertain" (their order is not in the history cache). GPP actions ([G3]): Update and Replace
set the value, Delete removes it, Create only creates a missing value (a local write stands), "apply once" items
are not reapplied, and an item with item-level targeting may or may not apply: that is reported, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .facts import HostFacts, PreferenceItem, RsopSetting
from .registry import Registry, RegistryValue, is_policy_path

SET, DELETE, UNCERTAIN = "set", "delete", "uncertain"
REFRESH_TEXT = ("Group Policy writes it back when it next processes the GPO (background refresh every 90 minutes "
                "plus up to 30, startup, gpupdate /force)")
_GUID = re.compile(r"\{[0-9A-Fa-f-]{36}\}")


@dataclass(frozen=True)
class Claim:
    """What Group Policy will make of one value (``name`` None: every value of the key and of its subkeys)."""

    path: str
    name: str | None
    effect: str  # SET, DELETE or UNCERTAIN
    type: str | None
    data: Any
    source: str  # for people: which mechanism and which GPO
    cites: str  # the knowledge source (runbook_lib.core.knowledge.SOURCES) that documents the mechanism

    def covers(self, path: str, name: str) -> bool:
        if self.name is None:
            folded = path.casefold()
            return folded == self.path.casefold() or folded.startswith(self.path.casefold() + "\\")
        return path.casefold() == self.path.casefold() and name.casefold() == self.name.casefold()

    def describe_effect(self) -> str:
        if self.effect == DELETE:
            return f"{self.source} deletes it"
        if self.effect == SET:
            return f"{self.source} sets it to {_fmt(self.type, self.data)}"
        return f"{self.source} may set it"


def gpo_label(gpo_id: str, gpo_name: str | None) -> str:
    """'Name' {GUID}: what an administrator finds the GPO by in GPMC."""
    guid = _GUID.search(gpo_id)
    ident = guid.group(0).upper() if guid else gpo_id
    return f"'{gpo_name}' {ident}" if gpo_name else f"GPO {ident}"


def _fmt(reg_type: str | None, data: Any) -> str:
    if reg_type is None:
        return "a value the RSoP data does not show"
    return f"{reg_type} {data!r}"


def _rsop_claims(settings: tuple[RsopSetting, ...]) -> list[Claim]:
    winners: dict[tuple[str, str | None], RsopSetting] = {}
    for setting in settings:
        key = (setting.path.casefold(), setting.name.casefold() if setting.name is not None else None)
        if key not in winners or setting.precedence < winners[key].precedence:
            winners[key] = setting
    claims = []
    for s in winners.values():
        source = f"the administrative template in {gpo_label(s.gpo_id, s.gpo_name)} (RSoP)"
        claims.append(Claim(s.path, s.name, DELETE if s.deleted else SET, None if s.deleted else s.type,
                            None if s.deleted else s.data, source, "G1"))
    return claims


def _preference_claim(item: PreferenceItem) -> Claim | None:
    if item.disabled or item.run_once:
        return None  # not applied, or applied once and never again: a local write stands
    source = f"Group Policy Preferences item ({item.action}) in {gpo_label(item.gpo_id, item.gpo_name)}"
    if item.name is None:  # an item on the key: Delete and Replace take the key's values with it
        effect = DELETE if item.action in ("D", "R") else None
    else:
        effect = {"R": SET, "U": SET, "D": DELETE}.get(item.action)
    if effect is None:
        return None  # Create: only ever makes a missing value
    if item.targeting == "uncertain":
        source += f" with item-level targeting ({', '.join(item.filters) or 'unnamed filter'}) not evaluated"
        effect = UNCERTAIN
    return Claim(item.path, item.name, effect, item.type if effect == SET else None,
                 item.data if effect == SET else None, source, "G3")


def _preference_claims(items: tuple[PreferenceItem, ...]) -> list[Claim]:
    by_value: dict[tuple[str, str | None], list[Claim]] = {}
    for item in items:
        claim = _preference_claim(item)
        if claim is not None:
            key = (claim.path.casefold(), claim.name.casefold() if claim.name is not None else None)
            by_value.setdefault(key, []).append(claim)
    claims = []
    for same in by_value.values():
        outcomes = {(c.effect, c.type, repr(c.data)) for c in same}
        if len(outcomes) == 1:
            claims.append(same[0])
        else:
            sources = "; ".join(c.source for c in same)
            claims.append(Claim(same[0].path, same[0].name, UNCERTAIN, None, None,
                                f"Group Policy Preferences items that disagree ({sources}; which lands depends on "
                                "GPO order)", "G3"))
    return claims


class PolicyOwnership:
    """The claims Group Policy makes on a host's values, strongest first: GPP, then RSoP, then policy flags."""

    def __init__(self, facts: HostFacts):
        gp = facts.group_policy
        self.claims: list[Claim] = []
        if gp is not None:
            self.claims += _preference_claims(gp.preferences)
            self.claims += _rsop_claims(gp.rsop)
        for value in facts.registry:
            if value.from_policy:
                source = ("a value under HKLM\\SOFTWARE\\Policies (Group Policy)" if is_policy_path(value.path)
                          else "Group Policy (marked policy in the facts)")
                self.claims.append(Claim(value.path, value.name, SET, value.type, value.data, source, "S1"))

    def claim(self, path: str, name: str) -> Claim | None:
        """The claim that decides this value: a certain one over an uncertain one, else the strongest source."""
        matching = [c for c in self.claims if c.covers(path, name)]
        certain = [c for c in matching if c.effect != UNCERTAIN]
        return (certain or matching or [None])[0]

    def after_refresh(self, registry: Registry) -> Registry:
        """The registry as the next Group Policy refresh leaves it: what the host keeps, not a local moment."""
        result = registry
        for value in registry:
            claim = self.claim(value.path, value.name)
            if claim is not None and claim.effect == DELETE:
                result = result.delete(value.path, value.name)
        for claim in self.claims:
            if claim.effect == SET and claim.name is not None and claim.type is not None \
                    and self.claim(claim.path, claim.name) is claim:
                current = result.get(claim.path, claim.name)
                path, name = (current.path, current.name) if current else (claim.path, claim.name)
                result = Registry([*result, RegistryValue(path, name, claim.type, claim.data, True)])
        return result

    def reverted(self, registry: Registry) -> list[Revert]:
        """Values that differ from what the policy puts back: a local write, or a refresh that has not run yet."""
        durable = self.after_refresh(registry)
        names = {(v.path.casefold(), v.name.casefold()): (v.path, v.name) for v in [*registry, *durable]}
        found = []
        for path, name in names.values():
            live, kept = registry.get(path, name), durable.get(path, name)
            if live is not None and kept is not None and live.same_as(kept.type, kept.data):
                continue
            if live is not None or kept is not None:
                found.append(Revert(path, name, live, kept, self.claim(path, name)))
        return found


@dataclass(frozen=True)
class Revert:
    path: str
    name: str
    live: RegistryValue | None
    kept: RegistryValue | None
    claim: Claim
