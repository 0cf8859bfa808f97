"""%ProgramData%\\tls-runbook on a simulated host: who owns it, who else may change it, and the journals in it.

It answers what the scripts' journal functions in ``common.ps1`` see on Windows: the same refusal text for a
folder someone else could have planted, the newest readable copy of a journal, and the claim that keeps a late
apply from starting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

PATH = "C:\\ProgramData\\tls-runbook"
ADMINISTRATORS = ("BUILTIN\\Administrators", "S-1-5-32-544")
SYSTEM = ("NT AUTHORITY\\SYSTEM", "S-1-5-18")
_TRUSTED_SIDS = {ADMINISTRATORS[1], SYSTEM[1]}
_ADVICE = ": it may have been planted to forge journals; check it, remove it, then run again"


class JournalRefused(Exception):
    """The folder, or a journal in it, cannot be used; the text is what the script reports."""


def _account(account: tuple[str, str]) -> str:
    return f"{account[0]} ({account[1]})"


@dataclass
class JournalFolder:
    """The folder apply creates with a protected ACL, or one somebody else made first."""

    owner: tuple[str, str] = ADMINISTRATORS
    writers: tuple[tuple[str, str], ...] = ()  # accounts besides SYSTEM and Administrators that may change it
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, doc: dict) -> "JournalFolder":
        """``{"owner": [name, sid], "writers": [[name, sid], ...]}``: a folder that existed before the runbook."""
        return cls(tuple(doc.get("owner", ADMINISTRATORS)), tuple(tuple(w) for w in doc.get("writers", ())))

    @property
    def owner_text(self) -> str:
        """The owner as Get-TrAccountText writes it: ``ACCOUNT (SID)``."""
        return _account(self.owner)

    def problem(self) -> str | None:
        """Test-TrJournalFolder: why a folder someone besides SYSTEM and Administrators owns or may change cannot be
        trusted, or None."""
        if self.owner[1] not in _TRUSTED_SIDS:
            return f"journal folder {PATH} is owned by {self.owner_text}, not Administrators or SYSTEM{_ADVICE}"
        for writer in self.writers:
            if writer[1] not in _TRUSTED_SIDS:
                return f"journal folder {PATH} lets {_account(writer)} change it{_ADVICE}"
        return None

    def check(self) -> None:
        """Use-TrJournalFolder: refuse a folder that cannot be trusted."""
        problem = self.problem()
        if problem is not None:
            raise JournalRefused(problem)

    def read(self, apply_id: str) -> dict | None:
        """Read-TrJournal: the newest copy (by revision) of <id>.json and <id>.json.tmp that parses."""
        best = None
        for name in (f"{apply_id}.json", f"{apply_id}.json.tmp"):
            try:
                doc = json.loads(self.files[name])
            except (KeyError, ValueError):
                continue
            if isinstance(doc, dict) and "revision" in doc and (best is None or doc["revision"] > best["revision"]):
                best = doc
        return best

    def used(self, apply_id: str) -> bool:
        return f"{apply_id}.json" in self.files or f"{apply_id}.json.tmp" in self.files

    def save(self, doc: dict) -> None:
        """Save-TrJournal: the first save creates the journal and fails if one exists; later ones replace it."""
        name = f"{doc['apply_id']}.json"
        if doc["revision"] == 0 and name in self.files:
            raise JournalRefused(f"apply_id {doc['apply_id']} was already used or claimed on this host: nothing was "
                                 "written")
        doc["revision"] += 1
        self.files[name] = json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def claim(self, apply_id: str) -> None:
        """Leave a claim where no journal is, so that apply refuses this apply_id from now on."""
        self.files.setdefault(f"{apply_id}.json", json.dumps({"apply_id": apply_id, "claimed": True, "revision": 0}))
