"""A run's bundle while the run writes it: checked for room first, sealed host by host, never left unsigned.

Files land in the bundle as they are produced (through :func:`runbook_lib.fleet.evidence.write_scrubbed`). Each host's
state is signed into its own seal (``seals/<host>.json``) as the host starts and ends, and by a worker that has to
stop because its runner died; the runner folds the seals into the signed manifest when it updates the run, and for
good when the run ends (see :func:`evidence.fold_seals`). The manifest says ``complete: false`` until then. A seal
costs one host's files, not the whole run's: with one manifest rewritten for every host change, hundreds of hosts
queued behind it. A host's seal has one writer at a time; writers of the manifest take turns through a lock file
beside the run folder, so no update is lost.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import psutil

from . import evidence
from ..core.errors import InputError
from ..core.files import is_temporary, private_folder, write_atomic
from ..runbook.operations import apply_reports
from .signing import SigningKey

# What one host adds to a bundle, per notebook: the executed notebook, its HTML copy (nbconvert's page template is
# most of it) and the JSON and .reg files it writes. Measured on simulated runs at about 0.4 MB per notebook, then
# more than doubled for real hosts' longer outputs and logs.
MB = 1024 * 1024
BYTES_PER_NOTEBOOK = 1 * MB
BYTES_PER_RUN = 5 * MB  # manifest, summary files and chart


def estimate(hosts: int, notebooks: int) -> int:
    return hosts * notebooks * BYTES_PER_NOTEBOOK + BYTES_PER_RUN


def check_out_folder(out: Path, hosts: int, notebooks: int) -> None:
    """Before any host is touched: ``out`` is a folder this process can write to, with room for the run."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    try:
        private_folder(out)
        probe = out / f".tls-runbook-write-test-{os.getpid()}"
        write_atomic(probe, b"\0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {out} is not writable: {exc.strerror or exc.__class__.__name__}") from None
    free = shutil.disk_usage(out).free
    need = estimate(hosts, notebooks)
    if free < need:
        per_host = notebooks * BYTES_PER_NOTEBOOK / MB
        raise InputError(f"--out {out} has {free / MB:.0f} MB free and this run needs about {need / MB:.0f} MB "
                         f"({hosts} host(s) x {per_host:.1f} MB for {notebooks} notebook(s), plus "
                         f"{BYTES_PER_RUN // MB} MB for the run)")


def _lock(descriptor: int, wait: bool) -> bool:
    if os.name == "nt":
        import msvcrt

        while True:
            try:
                msvcrt.locking(descriptor, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
                return True
            except OSError:  # LK_LOCK gives up after ~10 s: try again
                if not wait:
                    return False
                time.sleep(0.1)
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory lock held until the block ends, or until the holder dies (the OS releases it then)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock(descriptor, wait=True)
        yield
    finally:
        os.close(descriptor)  # closing releases both kinds of lock


def _lock_path(root: Path) -> Path:
    return root.parent / f".{root.name}.lock"


@contextlib.contextmanager
def hold_run(root: Path) -> Iterator[None]:
    """Held by the process running or resuming a run for as long as it does, so a resume cannot start while the
    run is still being written (the OS drops it when that process dies, however it dies)."""
    path = Path(root).parent / f".{Path(root).name}.running"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _lock(descriptor, wait=False):
            raise InputError(f"run {Path(root).name} is being written by another tls-runbook process right now")
        yield
    finally:
        os.close(descriptor)
        with contextlib.suppress(OSError):
            path.unlink()


class LiveBundle:
    """The run folder being written: the runner and its workers update the manifest through this class only."""

    def __init__(self, root: Path, key: SigningKey):
        self.root = Path(root)
        self.key = key
        self.lock_path = _lock_path(self.root)
        self._run_id: str | None = None

    # --- manifest -----------------------------------------------------------------------------------------------
    def create(self, meta: dict, hosts: list[str]) -> None:
        private_folder(self.root.parent)
        self.root.mkdir(mode=0o700)
        private_folder(self.root / "hosts")
        doc = {**meta, "complete": False, "state": "running",
               "hosts": [{"name": host, "state": "pending"} for host in hosts], "files": {}}
        with _exclusive(self.lock_path):
            evidence.store_manifest(self.root, evidence.finish_document(doc, self.key))

    def read(self) -> dict:
        return evidence.current_manifest(self.root)

    def seal_hosts(self, hosts: dict[str, dict], *, finished: bool = False) -> None:
        """Hash each named host's files into its seal, merge the given fields into its record, sign and rename into
        place. Only that host's files are read and only its seal is written, so a host's change costs the same
        however many hosts the run has, and hosts never wait for each other. An entry is never dropped: a file that
        vanished stays listed, so verify names it missing. ``finished`` means the host's writer is gone, so its
        unfinished temporary files are debris and are removed.

        A host has one writer at a time (its worker while it runs the host, the runner before and after), so a seal
        needs no lock: it is replaced whole, by rename."""
        for host, fields in hosts.items():
            seq, record, files = self._sealed(host)
            _remove_debris(self.root / "hosts" / host, everything=finished)
            for name, path in evidence.list_bundle(self.root, f"hosts/{host}", skip_temporary=True).files.items():
                with contextlib.suppress(OSError):  # a link or a file that just went: verify reports it
                    files[name] = evidence.sha256_file(path)
            record.update(fields, apply_ids=self.apply_ids(host), files=len(files))
            private_folder(self.root / evidence.SEALS)
            write_atomic(evidence.seal_path(self.root, host),
                         evidence.make_seal(self._run(), host, seq + 1, record, files, self.key))

    def _run(self) -> str:
        if self._run_id is None:
            self._run_id = str(evidence.load_manifest(self.root).get("run_id"))
        return self._run_id

    def _sealed(self, host: str) -> tuple[int, dict, dict[str, str]]:
        """The host's last seal, else its record in the manifest (its first change in this run or this resume).

        A seal is built on only if this run's key signed it for this host: one edited, re-signed with another key or
        unreadable is set aside (``<host>.json~refused-N``, which verify names) and the host starts again from its
        record in the manifest, so the run never signs what someone else wrote."""
        path = evidence.seal_path(self.root, host)
        if path.exists() or path.is_symlink():
            try:
                seal = evidence.checked_seal(path, self._run(), self.key.fingerprint, (host,))
                return seal["seq"], dict(seal["record"]), dict(seal["files"])
            except evidence.SealRefused:
                _set_aside(path)
        prefix = f"hosts/{host}/"
        doc = evidence.load_manifest(self.root)
        self._run_id = self._run_id or str(doc.get("run_id"))  # read once for both
        record = next(dict(entry) for entry in doc["hosts"] if entry["name"] == host)
        return (int(record.pop("seq", 0)), record,
                {name: digest for name, digest in doc["files"].items() if name.startswith(prefix)})

    def update(self, *, run_files: bool = False, fold: bool = False, **meta) -> dict:
        """The runner's update of the run: every host's seal folded in, the run-level files hashed (``run_files``)
        and the given fields merged into the run's metadata, signed and renamed into place. ``fold`` also removes
        the seals it folded, for when no host writer runs (the run's end, a resume's start); a seal that did not
        count stays, for verify to name."""
        with _exclusive(self.lock_path):
            doc, _, seals = evidence.fold_seals(self.root, evidence.load_manifest(self.root))
            _remove_debris(self.root, everything=False, below=False)
            _remove_debris(self.root / evidence.SEALS, everything=fold, below=False)
            files: dict[str, str] = doc["files"]
            if run_files:
                for name, path in evidence.list_bundle(self.root, skip_temporary=True).files.items():
                    if evidence.host_of(name) is None:
                        files[name] = evidence.sha256_file(path)
            doc.update(meta)
            doc["simulated"] = bool(doc.get("simulated")) or any(
                (record.get("summary") or {}).get("simulated") for record in doc["hosts"])
            doc = evidence.finish_document(doc, self.key)
            evidence.store_manifest(self.root, doc)
            if fold:
                for seal in seals:
                    seal.unlink()
                with contextlib.suppress(OSError):  # not empty: a seal that did not count
                    (self.root / evidence.SEALS).rmdir()
            return doc

    def apply_ids(self, host: str) -> list[str]:
        """Every apply id this host's evidence names: how a later run finds the host's own journal again."""
        found: set[str] = set()
        for report in apply_reports(self.root / "hosts" / host):
            found.add(str(report["apply_id"]))
            found.update(str(e["apply_id"]) for e in report.get("earlier_applies", []) if isinstance(e, dict)
                         and isinstance(e.get("apply_id"), str))
        return sorted(found)

    # --- resume -------------------------------------------------------------------------------------------------
    def set_aside(self, host: str) -> str | None:
        """Move what an unfinished host left into ``hosts/<host>/attempt-<n>/`` (same bytes, same hashes, renamed in
        the manifest too), so its next attempt starts in a clean folder and nothing of the first one is lost."""
        folder = self.root / "hosts" / host
        leftovers = [p for p in folder.iterdir() if not p.name.startswith("attempt-")] if folder.is_dir() else []
        if not leftovers:
            return None
        with _exclusive(self.lock_path):
            doc = self.read()
            number = 1 + sum(1 for p in folder.iterdir() if p.name.startswith("attempt-"))
            attempt = f"attempt-{number}"
            private_folder(folder / attempt)
            prefix = f"hosts/{host}/"
            moved = {name for name in doc["files"] if name.startswith(prefix)
                     and not name[len(prefix):].startswith("attempt-")}
            for path in leftovers:
                os.replace(path, folder / attempt / path.name)
            doc["files"] = {(f"{prefix}{attempt}/{name[len(prefix):]}" if name in moved else name): digest
                            for name, digest in doc["files"].items()}
            for entry in doc["hosts"]:
                if entry["name"] == host:
                    entry["attempts"] = number
            evidence.store_manifest(self.root, evidence.finish_document(doc, self.key))
        return attempt

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.lock_path.unlink()


def _set_aside(seal: Path) -> None:
    """Keep a refused seal where verify will name it, under a name no host's seal can have."""
    for number in itertools.count(1):
        aside = seal.with_name(f"{seal.name}~refused-{number}")
        if not (aside.exists() or aside.is_symlink()):
            seal.rename(aside)
            return


def _remove_debris(folder: Path, everything: bool, below: bool = True) -> None:
    """Temporary files a writer left when it was killed mid-write (see :func:`files.write_atomic`): those of
    processes that no longer run, or all of them once the folder's writers are known to be gone."""
    if not folder.is_dir():
        return
    for path in folder.rglob("*") if below else folder.iterdir():
        if not is_temporary(path.name) or path.is_symlink() or not path.is_file():
            continue
        writer = path.name.rsplit(".", 2)[-2]
        if everything or not writer.isdigit() or not psutil.pid_exists(int(writer)):
            with contextlib.suppress(OSError):
                path.unlink()


def remove_debris(root: Path) -> None:
    """Before a resume: what the stopped run's writers left half-written anywhere in the bundle."""
    with _exclusive(_lock_path(Path(root))):
        _remove_debris(Path(root), everything=False)
