"""Evidence bundles: one folder per run, a manifest with the SHA-256 of every file, and a verifier.

An auditor gets the folder; ``tls-runbook evidence verify DIR`` recomputes every hash and names each file that
changed, is missing or was added. Credentials never belong in a bundle: :class:`Scrubber` removes them from every
file before it enters the bundle, and the verifier fails if any encoding of a credential value is found anyway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import InputError

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "tls-runbook/evidence-manifest/v1"
REDACTED = "[REDACTED]"
_MIN_SECRET = 4  # shorter values would match ordinary text everywhere


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def secret_encodings(secret: str) -> list[bytes]:
    """Every form in which papermill, nbformat, Python or a .reg file could have written ``secret``."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], secret.encode("unicode_escape").decode()}
    encoded: set[bytes] = set()
    for text in forms:
        encoded.add(text.encode("utf-8"))
        encoded.add(text.encode("utf-16-le"))
    for raw in (secret.encode("utf-8"), secret.encode("utf-16-le")):
        b64 = base64.b64encode(raw)
        encoded.add(b64.rstrip(b"="))
        encoded.add(base64.urlsafe_b64encode(raw).rstrip(b"="))
    return sorted((e for e in encoded if len(e) >= _MIN_SECRET), key=len, reverse=True)


class Scrubber:
    """Replaces credential values in files before they are copied into a bundle."""

    def __init__(self, secrets: Iterable[str]):
        self.patterns = [(e, self._replacement(e)) for s in secrets if s and len(s) >= _MIN_SECRET
                         for e in secret_encodings(s)]

    @staticmethod
    def _replacement(encoded: bytes) -> bytes:
        utf16 = len(encoded) > 1 and encoded[1:2] == b"\x00"
        return REDACTED.encode("utf-16-le") if utf16 else REDACTED.encode()

    def scrub_bytes(self, data: bytes) -> tuple[bytes, int]:
        hits = 0
        for pattern, replacement in self.patterns:
            count = data.count(pattern)
            if count:
                hits += count
                data = data.replace(pattern, replacement)
        return data, hits

    def copy(self, source: Path, destination: Path) -> int:
        """Copy one file, scrubbed; returns how many secret occurrences were removed."""
        data, hits = self.scrub_bytes(source.read_bytes())
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        return hits


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

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.added or self.secrets_found)

    def lines(self) -> list[str]:
        out = [f"changed: {p}" for p in self.changed] + [f"missing: {p}" for p in self.missing]
        out += [f"added: {p}" for p in self.added] + [f"credential found in: {p}" for p in self.secrets_found]
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
    patterns = [e for s in secrets if s and len(s) >= _MIN_SECRET for e in secret_encodings(s)]
    for name in sorted(expected):
        if name not in present:
            result.missing.append(name)
        elif sha256_file(present[name]) != expected[name]:
            result.changed.append(name)
    result.added = sorted(set(present) - set(expected))
    for name in sorted(present):
        data = present[name].read_bytes()
        if any(pattern in data for pattern in patterns):
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
