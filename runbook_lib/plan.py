"""Remediation plans: a verdict's changes as a fix ``.reg`` and a rollback ``.reg`` that restores the prior state.

The rollback is built from the facts the plan was made from, so it restores each value with its original type
(a REG_SZ "1" comes back as REG_SZ "1") and deletes values that did not exist. It never deletes a key: a .reg
file can only delete a key with everything under it, so a key the fix created stays, empty, exactly as the
remote ``restore`` leaves it (one rollback meaning, whichever way it is applied).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import regfile
from .files import write_atomic
from .facts import HostFacts
from .registry import Registry, RegistryValue
from .regfile import RegOperation
from .verdict import SIMULATED_BANNER_HTML, Change, Verdict, changes_html


@dataclass(frozen=True)
class RemediationPlan:
    host: str
    profile: str
    simulated: bool
    changes: tuple[Change, ...]
    restart: str
    prior: tuple[RegistryValue | None, ...]  # the value each change replaces, in the same order

    @classmethod
    def from_verdict(cls, verdict: Verdict, facts: HostFacts):
        prior = tuple(facts.registry.get(change.path, change.name) for change in verdict.changes)
        return cls(verdict.host, verdict.profile, verdict.simulated, verdict.changes, verdict.restart, prior)

    def _comments(self, what: str) -> list[str]:
        lines = [f"tls-runbook {what} for {self.host} (profile {self.profile}, restart {self.restart})"]
        if self.simulated:
            lines.insert(0, "SIMULATED HOST: produced against the tls-runbook simulator")
        return lines

    def fix_operations(self) -> list[RegOperation]:
        return [RegOperation(c.path, c.name, c.type, c.data) for c in self.changes]

    def rollback_operations(self) -> list[RegOperation]:
        operations = []
        for change, before in zip(self.changes, self.prior):
            if before is None:
                operations.append(RegOperation(change.path, change.name))
            else:
                operations.append(RegOperation(before.path, before.name, before.type, before.data))
        return operations

    def fix_reg(self) -> str:
        return regfile.render(self.fix_operations(), self._comments("fix"))

    def rollback_reg(self) -> str:
        return regfile.render(self.rollback_operations(),
                              self._comments("rollback") + ["values only: keys the fix created stay, empty"])

    def write(self, fix_path: Path | str, rollback_path: Path | str,
              write: Callable[[Path, bytes], object] = write_atomic) -> None:
        """Rollback first: if writing stops half-way, the undo exists before the fix does. ``write`` is how a
        file is written (evidence goes through the scrubber)."""
        write(Path(rollback_path), regfile.to_bytes(self.rollback_reg()))
        write(Path(fix_path), regfile.to_bytes(self.fix_reg()))

    def apply_to(self, registry: Registry) -> Registry:
        return regfile.apply(registry, self.fix_operations())

    def rollback(self, registry: Registry) -> Registry:
        return regfile.apply(registry, self.rollback_operations())

    def _repr_html_(self) -> str:
        banner = SIMULATED_BANNER_HTML if self.simulated else ""
        return (f"{banner}<h3>Remediation plan for {html.escape(self.host)} (profile {html.escape(self.profile)})"
                f"</h3>{changes_html(self.changes, self.restart)}")
