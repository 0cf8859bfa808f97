"""Evidence bundles: one folder per run, a signed manifest with the SHA-256 of every file, and a verifier.

An auditor gets the folder; ``tls-runbook evidence verify DIR`` checks the manifest's Ed25519 signature (which
covers its metadata as well as its file list), recomputes every hash, refuses links and special files, names each
file that changed, is missing or was added, and says what it could not check. Credentials never belong in a bundle:
every file enters it through :func:`write_scrubbed` (the :class:`~runbook_lib.remote.scrub.Scrubber` finds them in any
written form), and the verifier fails if it finds one anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Container, Iterable, NamedTuple

from . import signing
from ..core.errors import InputError, one_line
from ..core.files import FileTooLarge, is_temporary, read_limited, write_atomic
from ..remote.scrub import MIN_SECRET, REDACTED, Scrubber, write_scrubbed

__all__ = ["MANIFEST", "MANIFEST_SCHEMA", "REDACTED", "SEALS", "Scrubber", "VerifyResult", "credentials_for_scan",
           "current_manifest", "fold_seals", "list_bundle", "load_manifest", "make_seal", "seal_path", "sha256_file",
           "verify", "write_manifest", "write_scrubbed"]

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "tls-runbook/evidence-manifest/v2"
SEALS = "seals"  # seals/<host>.json: a host's signed record while the run is being written
SEAL_SCHEMA = "tls-runbook/host-seal/v1"
MAX_SEAL_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_SCANNED_BYTES = 256 * 1024 * 1024  # a larger file is hashed but not searched for credentials (and says so)


class NotARegularFile(OSError):
    """A link or special file where evidence must be a plain file."""


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read without following a symbolic link (a link is refused, not hashed)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if os.path.islink(path):
        raise NotARegularFile(f"{path} is a symbolic link")
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise NotARegularFile(f"{path} is a symbolic link") from None
        raise exc
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- what a bundle holds -----------------------------------------------------------------------------------------
@dataclass
class Listing:
    """The plain files under a folder (bundle-relative names), and every link or special file found instead."""

    files: dict[str, Path] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


def list_bundle(root: Path, under: str = "", *, skip_temporary: bool = False) -> Listing:
    """Walk without following links: evidence is plain files, so a link (to identical content or not) is refused."""
    listing = Listing()
    start = root / under if under else root
    if not start.is_dir() or start.is_symlink():
        return listing
    stack = [start]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                name = Path(entry.path).relative_to(root).as_posix()
                if name in (MANIFEST, SEALS):  # signed themselves; verify checks the seals one by one
                    continue
                junction = getattr(entry, "is_junction", lambda: False)()
                if entry.is_symlink() or junction:
                    listing.refused.append(f"{name} (symbolic link)")
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    if not (skip_temporary and is_temporary(entry.name)):
                        listing.files[name] = Path(entry.path)
                else:
                    listing.refused.append(f"{name} (special file)")
    listing.refused.sort()
    return listing


def host_of(name: str) -> str | None:
    """The host a bundle-relative file belongs to (``hosts/<host>/...``), or None for a run-level file."""
    parts = name.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "hosts" else None


# --- the manifest --------------------------------------------------------------------------------------------------
def finish_document(doc: dict, key: signing.SigningKey) -> dict:
    """Counts that make a shrunken file list visible (per run and per host), then the signature over it all."""
    files = doc["files"]
    per_host: dict[str, int] = {}
    for name in files:
        host = host_of(name)
        if host is not None:
            per_host[host] = per_host.get(host, 0) + 1
    for entry in doc.get("hosts", []):
        entry["files"] = per_host.get(entry["name"], 0)
    doc = {"schema": MANIFEST_SCHEMA, **{k: v for k, v in doc.items() if k not in ("schema", "signature")},
           "file_count": len(files)}
    doc["files"] = dict(sorted(files.items()))  # last, so a reader meets the metadata first
    return signing.sign(doc, key)


def store_manifest(root: Path, doc: dict) -> Path:
    return write_atomic(root / MANIFEST, (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
                        .encode("utf-8"))


def write_manifest(root: Path, manifest: dict, key: signing.SigningKey) -> Path:
    """Hash every file in the bundle into a signed manifest (for a bundle written in one go)."""
    listing = list_bundle(root)
    if listing.refused:
        raise InputError(f"{root}: {listing.refused[0]} cannot be evidence")
    files = {name: sha256_file(path) for name, path in listing.files.items()}
    return store_manifest(root, finish_document({**manifest, "files": files}, key))


def seal_path(root: Path, host: str) -> Path:
    return Path(root) / SEALS / f"{host}.json"


def make_seal(run_id: str, host: str, seq: int, record: dict, files: dict[str, str],
              key: signing.SigningKey) -> bytes:
    doc = {"schema": SEAL_SCHEMA, "run_id": run_id, "host": host, "seq": seq, "record": record,
           "files": dict(sorted(files.items()))}
    return (json.dumps(signing.sign(doc, key), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


class SealRefused(Exception):
    """A file in ``seals/`` that does not count for its host; the message is the line verify prints."""


def checked_seal(path: Path, run_id: object, expected: str | None, hosts: Container[str]) -> dict:
    """The seal at ``path`` if ``expected``'s key signed it, for one of ``hosts`` in run ``run_id``, naming only that
    host's files; else :class:`SealRefused`."""
    name = f"{SEALS}/{path.name}"
    try:
        if path.is_symlink():
            raise ValueError
        seal = json.loads(read_limited(path, MAX_SEAL_BYTES).decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        host = seal["host"]
        if path.name != f"{host}.json" or seal.get("schema") != SEAL_SCHEMA:
            raise ValueError
        check = signing.check(seal, expected, subject="the seal")
        if not check.valid:
            raise SealRefused(f"{name}: {check.problem}")
        seq, record, files = seal["seq"], seal["record"], seal["files"]
        if host not in hosts or seal.get("run_id") != run_id or not isinstance(seq, int) \
                or not isinstance(record, dict) or not isinstance(files, dict) \
                or any(host_of(f) != host or not isinstance(d, str) for f, d in files.items()):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError, UnicodeError, FileTooLarge):
        raise SealRefused(f"{name}: not a seal of a host of this run") from None
    return seal


class Folded(NamedTuple):
    doc: dict
    problems: list[str]
    seals: list[Path]  # the seals that counted


def fold_seals(root: Path | str, manifest: dict) -> Folded:
    """The run as it stands: the manifest with each host's seal folded in where the seal is newer.

    While a run is written, each host's changes are sealed in ``seals/<host>.json`` (signed with the run's key, so a
    host's change costs the same in a run of 10 hosts or 1,000) and the runner folds them into the manifest when it
    updates the run and, for good, when the run ends. A seal counts only if the manifest's key signed it for a host
    of this run and names only that host's files; anything else in ``seals/`` is a problem (and stays)."""
    root = Path(root)
    doc = {**manifest, "files": dict(manifest["files"]),
           "hosts": [dict(h) if isinstance(h, dict) else h for h in manifest.get("hosts", [])]}
    records = {h.get("name"): h for h in doc["hosts"] if isinstance(h, dict)}
    public = (manifest.get("signature") or {}).get("public_key")
    expected = signing.fingerprint(public) if isinstance(public, str) else None
    problems: list[str] = []
    counted: list[Path] = []
    folder = root / SEALS
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return Folded(doc, [f"{SEALS}: not a folder of host seals"], [])
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if is_temporary(path.name) and not path.is_symlink() and manifest.get("complete") is not True:
            continue  # a seal being written (or a killed writer's debris): the previous one still stands
        try:
            seal = checked_seal(path, manifest.get("run_id"), expected, records)
        except SealRefused as refused:
            problems.append(str(refused))
            continue
        host, seq, record, files = seal["host"], seal["seq"], seal["record"], seal["files"]
        counted.append(path)
        if seq <= records[host].get("seq", 0):
            continue
        records[host].update(record, seq=seq)
        doc["files"].update(files)
    per_host: dict[str | None, int] = {}
    for name in doc["files"]:
        per_host[host_of(name)] = per_host.get(host_of(name), 0) + 1
    for host, record in records.items():
        if "seq" in record:
            record["files"] = per_host.get(host, 0)
    doc["file_count"] = manifest.get("file_count", 0) + len(doc["files"]) - len(manifest["files"])
    return Folded(doc, problems, counted)


def current_manifest(root: Path | str) -> dict:
    """The manifest with its hosts' seals folded in: what a resume, a rollback or a report reads."""
    return fold_seals(root, load_manifest(root)).doc


def _no_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def load_manifest(root: Path | str) -> dict:
    root = Path(root)
    path = root / MANIFEST
    if path.is_symlink():
        raise InputError(f"{path} is a symbolic link: not an evidence bundle")
    try:
        raw = read_limited(path, MAX_MANIFEST_BYTES)
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except FileNotFoundError:
        raise InputError(f"{root} has no {MANIFEST}: not an evidence bundle") from None
    except FileTooLarge as exc:
        raise InputError(f"{path}: {exc}, not a manifest") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc.__class__.__name__})") from None
    if isinstance(doc, dict) and doc.get("schema") == "tls-runbook/evidence-manifest/v1":
        raise InputError(f"{path}: a v1 manifest (unsigned, from before tls-runbook signed its evidence)")
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or not isinstance(doc.get("files"), dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc["files"].items()) \
            or not isinstance(doc.get("hosts", []), list):
        raise InputError(f"{path}: not a {MANIFEST_SCHEMA} manifest")
    return doc


# --- checking a bundle ---------------------------------------------------------------------------------------------
@dataclass
class VerifyResult:
    root: Path
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    secrets_found: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    signature: signing.SignatureCheck | None = None
    checked: int = 0
    complete: bool = False
    hosts_total: int = 0
    hosts_finished: int = 0
    credentials_scanned: int = 0
    scan_notes: list[str] = field(default_factory=list)
    not_scanned: list[str] = field(default_factory=list)

    @property
    def leak_scan(self) -> bool:
        """False when no credential value was at hand, so nothing was looked for."""
        return self.credentials_scanned > 0

    @property
    def ok(self) -> bool:
        failures = self.changed or self.missing or self.added or self.refused or self.secrets_found or self.problems
        return not failures and self.signature is not None and self.signature.valid

    def lines(self) -> list[str]:
        out = [f"changed: {p}" for p in self.changed] + [f"missing: {p}" for p in self.missing]
        out += [f"added: {p}" for p in self.added] + [f"refused: {p}" for p in self.refused]
        out += [f"unfinished write (a stopped writer's, not evidence; --resume removes it): {p}"
                for p in self.unfinished]
        out += [f"credential found in: {p}" for p in self.secrets_found] + [f"problem: {p}" for p in self.problems]
        if self.signature is not None:
            out.append(self.signature.line())
        if self.complete:
            out.append(f"run: complete, {self.hosts_total} host(s)")
        else:
            out.append(f"run: PARTIAL: {self.hosts_finished} of {self.hosts_total} host(s) finished; "
                       f"tls-runbook run --resume {self.root} runs the rest")
        if self.credentials_scanned:
            out.append(f"leak scan: {self.credentials_scanned} credential value(s) looked for in every file, in "
                       "every encoding the scrubber knows")
        else:
            out.append("leak scan SKIPPED: no credential value at hand (set the variables the manifest's "
                       "credential_references name, then verify again)")
        out += [f"leak scan: {note}" for note in self.scan_notes]
        out += [f"leak scan: not searched (larger than {MAX_SCANNED_BYTES >> 20} MiB): {p}" for p in self.not_scanned]
        out.append(f"{'OK' if self.ok else 'FAILED'}: {self.checked} file(s) checked in {self.root}")
        return out


def verify(root: Path | str, secrets: Iterable[str] = (), *, expected_key: str | None = None,
           scan_notes: Iterable[str] = ()) -> VerifyResult:
    """Check a bundle: signature (and signer, given ``expected_key``), the file list's shape, every hash, no link or
    special file, no credential value. ``scan_notes`` say which credentials could not be looked for, and why."""
    root = Path(root)
    signed = load_manifest(root)
    result = VerifyResult(root, signature=signing.check(signed, expected_key), scan_notes=list(scan_notes))
    manifest, result.problems, _ = fold_seals(root, signed)
    expected: dict[str, str] = manifest["files"]
    result.problems += _shape_problems(manifest)
    hosts = [h for h in manifest.get("hosts", []) if isinstance(h, dict)]
    result.hosts_total = len(hosts)
    result.hosts_finished = sum(1 for h in hosts if h.get("state") == "done")
    result.complete = manifest.get("complete") is True
    listing = list_bundle(root)
    result.refused = listing.refused
    present = listing.files
    scrubber = Scrubber(secrets)
    result.credentials_scanned = len({s for s in secrets if s and len(s) >= MIN_SECRET})
    for name in sorted(expected):
        if name not in present:
            result.missing.append(name)
            continue
        try:
            if sha256_file(present[name]) != expected[name]:
                result.changed.append(name)
        except NotARegularFile:
            result.refused.append(f"{name} (not a regular file)")
    unlisted = sorted(set(present) - set(expected))
    if result.complete:
        result.added = unlisted
    else:  # a writer killed with the run leaves its staging file; what it replaces (or nothing) still stands
        result.unfinished = [n for n in unlisted if is_temporary(PurePosixPath(n).name)]
        result.added = [n for n in unlisted if n not in result.unfinished]
    for name in sorted(present):
        result.checked += 1
        if not result.credentials_scanned:
            continue
        try:
            data = read_limited(present[name], MAX_SCANNED_BYTES)
        except FileTooLarge:
            result.not_scanned.append(name)
            continue
        except OSError:
            continue  # already reported as refused or missing
        if scrubber.contains(data):
            result.secrets_found.append(name)
    return result


def _shape_problems(manifest: dict) -> list[str]:
    """What a manifest that only lost entries (or was emptied) still gives away, signed or not."""
    files: dict[str, str] = manifest["files"]
    problems = []
    if not files:
        problems.append("the manifest lists no files")
    if manifest.get("file_count") != len(files):
        problems.append(f"the manifest says {manifest.get('file_count')!r} file(s) and lists {len(files)}")
    hosts = manifest.get("hosts", [])
    names = [h.get("name") for h in hosts if isinstance(h, dict)]
    if len(names) != len(hosts) or len(set(names)) != len(names):
        problems.append("the host list is malformed or names a host twice")
    listed: dict[str, int] = {}
    for name in files:
        host = host_of(name)
        if host is not None:
            listed[host] = listed.get(host, 0) + 1
            if host not in names:
                problems.append(f"{name}: belongs to no host of this run")
    for entry in hosts:
        if not isinstance(entry, dict):
            continue
        if entry.get("files") != listed.get(entry.get("name"), 0):
            problems.append(f"hosts/{one_line(str(entry.get('name')), 80)}: {listed.get(entry.get('name'), 0)} "
                            f"file(s) listed, the host's record says {entry.get('files')!r}")
        if manifest.get("complete") is True and entry.get("state") != "done":
            problems.append(f"the run is marked complete but host {one_line(str(entry.get('name')), 80)} is "
                            f"{entry.get('state')!r}")
    return problems


def credentials_for_scan(references: Iterable[str]) -> tuple[list[str], list[str]]:
    """The credential values a verifier can look for after the run, and a note for each one it cannot."""
    from ..core.errors import RunbookError
    from ..remote.credentials import resolve_credential

    values, notes = [], []
    for reference in references:
        scheme = reference.partition(":")[0]
        if scheme == "prompt":
            notes.append(f"{reference}: not looked for (typed at a prompt during the run and never kept)")
            continue
        try:
            values.append(resolve_credential(reference).password)
        except RunbookError as exc:
            notes.append(f"{reference}: not looked for ({exc})")
    return values, notes
