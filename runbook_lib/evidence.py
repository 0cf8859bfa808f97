"""Evidence bundles: one folder per run, a manifest with the SHA-256 of every file, and a verifier.

An auditor gets the folder; ``tls-runbook evidence verify DIR`` recomputes every hash and names each file that
changed, is missing or was added. Credentials never belong in a bundle: the :class:`~runbook_lib.scrub.Scrubber`
removes them from every file before it enters the bundle, and the verifier fails if it finds one anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import InputError
from .scrub import REDACTED, Scrubber

__all__ = ["MANIFEST", "MANIFEST_SCHEMA", "REDACTED", "Scrubber", "VerifyResult", "bundle_files", "load_manifest",
           "secrets_from_environment", "sha256_file", "verify", "write_manifest"]

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "tls-runbook/evidence-manifest/v1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST)


def write_manifest(root: Path, manifest: dict) -> Path:
    """Hash every file in the bundle into the manifest; written last, so it covers everything."""
    files = {p.relative_to(root).as_posix(): sha256_file(p) for p in bundle_files(root)}
    doc = {"schema": MANIFEST_SCHEMA, **manifest, "files": files}
    path = root / MANIFEST
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


@dataclass
class VerifyResult:
    root: Path
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    secrets_found: list[str] = field(default_factory=list)
    checked: int = 0
    leak_scan: bool = True  # False: no credential value was at hand, so nothing was looked for

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.added or self.secrets_found)

    def lines(self) -> list[str]:
        out = [f"changed: {p}" for p in self.changed] + [f"missing: {p}" for p in self.missing]
        out += [f"added: {p}" for p in self.added] + [f"credential found in: {p}" for p in self.secrets_found]
        if not self.leak_scan:
            out.append("leak scan SKIPPED: no credential value at hand (set the variables the manifest's "
                       "credential_references name, then verify again)")
        out.append(f"{'OK' if self.ok else 'FAILED'}: {self.checked} file(s) checked in {self.root}")
        return out


def load_manifest(root: Path) -> dict:
    path = root / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{root} has no {MANIFEST}: not an evidence bundle") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or not isinstance(doc.get("files"), dict):
        raise InputError(f"{path}: not a {MANIFEST_SCHEMA} manifest")
    return doc


def verify(root: Path | str, secrets: Iterable[str] = ()) -> VerifyResult:
    root = Path(root)
    manifest = load_manifest(root)
    result = VerifyResult(root)
    expected: dict[str, str] = manifest["files"]
    present = {p.relative_to(root).as_posix(): p for p in bundle_files(root)}
    scrubber = Scrubber(secrets)
    result.leak_scan = scrubber.active
    for name in sorted(expected):
        if name not in present:
            result.missing.append(name)
        elif sha256_file(present[name]) != expected[name]:
            result.changed.append(name)
    result.added = sorted(set(present) - set(expected))
    for name in sorted(present):
        if scrubber.active and scrubber.contains(present[name].read_bytes()):
            result.secrets_found.append(name)
        result.checked += 1
    return result


def secrets_from_environment(references: Iterable[str]) -> list[str]:
    """Credential values behind ``env:`` references, for verifying a bundle after the run (prompted ones are gone)."""
    values = []
    for reference in references:
        scheme, _, prefix = reference.partition(":")
        if scheme == "env":
            values += [v for v in (os.environ.get(f"{prefix}_PASSWORD"),) if v]
    return values
