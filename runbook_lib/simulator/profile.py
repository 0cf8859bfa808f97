"""Simulated hosts as data files: each profile is a host's facts-like state, what it is meant to show (its intent)
and the faults it has. They are checked when loaded, through the same loader real host facts go through, so a
profile cannot describe a host the runbook could never meet."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..core import facts as facts_module
from ..core.errors import InputError
from ..core.files import FileTooLarge, read_limited
from .group_policy import PolicyStore
from .wsman import QUOTA_FIELDS


def _profiles_folder():
    return resources.files("runbook_lib.simulator").joinpath("profiles")
INTENTS = ("fixable", "compliant", "blocked", "failed")  # failed: the runbook cannot run its scripts there
LANGUAGE_MODES = ("FullLanguage", "ConstrainedLanguage", "RestrictedLanguage", "NoLanguage")


@dataclass(frozen=True)
class HostProfile:
    """A host as a data file: facts-like state, what the profile is meant to show, and its faults."""

    name: str
    description: str
    intent: str
    intent_blockers: tuple[str, ...]
    state: dict
    boot_seconds: float = 2.0
    faults: dict = field(default_factory=dict)
    language_mode: str = "FullLanguage"  # ConstrainedLanguage under AppLocker/WDAC enforcement
    winrm: dict = field(default_factory=dict)  # quota overrides, e.g. {"max_shells_per_user": 2}
    group_policy: dict | None = None  # GPOs (see simulator.group_policy); values they set are not in ``state``

    @classmethod
    def from_dict(cls, doc: Any, origin: str) -> "HostProfile":
        if not isinstance(doc, dict):
            raise InputError(f"profile {origin}: expected a JSON object")
        try:
            intent = doc["intent"]
            profile = cls(name=str(doc["name"]), description=str(doc["description"]), intent=intent["outcome"],
                          intent_blockers=tuple(intent.get("blockers", ())), state=doc["state"],
                          boot_seconds=float(doc.get("boot_seconds", 2.0)), faults=dict(doc.get("faults", {})),
                          language_mode=str(doc.get("language_mode", "FullLanguage")),
                          winrm=dict(doc.get("winrm", {})), group_policy=doc.get("group_policy"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"profile {origin}: missing or malformed field {exc}") from None
        if profile.intent not in INTENTS:
            raise InputError(f"profile {origin}: intent.outcome must be one of {', '.join(INTENTS)}")
        if profile.language_mode not in LANGUAGE_MODES:
            raise InputError(f"profile {origin}: language_mode must be one of {', '.join(LANGUAGE_MODES)}")
        unknown = sorted(set(profile.winrm) - set(QUOTA_FIELDS))
        if unknown:
            raise InputError(f"profile {origin}: winrm has unknown quota {unknown[0]!r}")
        start = profile.initial_facts("check")  # validates the state through the host-facts loader
        if any(value.policy for value in start.registry):
            raise InputError(f"profile {origin}: a registry value says policy: true; declare the GPO that delivers "
                             "it under group_policy instead (the host reports policy as Windows shows it)")
        PolicyStore.from_profile(profile.group_policy, origin)
        return profile

    @classmethod
    def load(cls, path: Path | str) -> "HostProfile":
        path = Path(path)
        try:
            text = read_limited(path, facts_module.MAX_FACTS_BYTES).decode("utf-8")
            return cls.from_dict(json.loads(text), path.name)
        except FileTooLarge as exc:
            raise InputError(f"profile {path.name}: {exc}") from None
        except RecursionError:
            raise InputError(f"profile {path.name}: nested too deeply") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"profile {path.name}: {exc}") from None

    def initial_facts(self, host: str) -> facts_module.HostFacts:
        doc = {"schema": facts_module.SCHEMA, "host": host, "simulated": True,
               "collected_at": "2026-01-01T00:00:00Z", **self.state}
        try:
            return facts_module.from_dict(doc)
        except InputError as exc:
            raise InputError(f"profile {self.name}: {exc}") from None


def builtin_profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in _profiles_folder().iterdir() if p.name.endswith(".json"))


def builtin_profile(name: str) -> HostProfile:
    if name not in builtin_profile_names():
        raise InputError(f"unknown simulator profile {name!r} (tls-runbook simulate --list names them)")
    text = _profiles_folder().joinpath(f"{name}.json").read_text(encoding="utf-8")
    return HostProfile.from_dict(json.loads(text), f"{name}.json")
