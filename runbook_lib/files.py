"""Reading operator-supplied files without trusting their size; checking where output goes before any work;
writing evidence so no one else can read it and no reader ever sees half a file.

Private means mode 0600 for files and 0700 for folders on POSIX. On Windows the mode bits are ignored: files and
folders inherit the ACL of the folder they are created in, so the evidence folder's own ACL decides who can read it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import InputError, one_line

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


class FileTooLarge(ValueError):
    """The file is larger than its kind of input can be; it was not read to the end."""


def read_limited(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``; a larger file raises FileTooLarge after reading one byte past it, so a
    50 MB mistake (or attack) costs no more than a legitimate file. OSError passes to the caller."""
    with path.open("rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise FileTooLarge(f"larger than {limit // (1024 * 1024)} MiB")
    return raw


def decode_text(raw: bytes) -> str:
    """UTF-8 (with or without a byte-order mark), or UTF-16 with one, which Windows PowerShell 5.1 writes with
    ``>`` and Out-File. UnicodeDecodeError passes to the caller, which names the file."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def _shown(path: Path) -> str:
    return one_line(repr(str(path)), 120)


def output_file(path: Path, option: str, *, create_folder: bool = False) -> Path:
    """``path``, once it is clear a file can be written there; checked before any work starts, so nothing runs (or
    touches a host) whose result could not be saved. An existing file is replaced; its folder must exist unless
    ``create_folder``."""
    _refuse_nul(path, option)
    try:
        if path.is_dir():
            raise InputError(f"{option} {_shown(path)} is a folder; name a file")
        if create_folder:
            output_folder(path.parent, option)
        elif not path.parent.is_dir():
            raise InputError(f"{option} {_shown(path)}: its folder does not exist")
        writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    except (OSError, ValueError) as exc:
        raise InputError(f"{option} {_shown(path)} cannot be used: {_reason(exc)}") from None
    if not writable:
        raise InputError(f"{option} {_shown(path)} is not writable")
    return path


def output_folder(path: Path, option: str) -> Path:
    """``path`` as a folder that exists (created if need be) and takes new files; checked by writing one."""
    _refuse_nul(path, option)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {_shown(path)} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (OSError, ValueError) as exc:
        raise InputError(f"{option} {_shown(path)} cannot hold output: {_reason(exc)}") from None
    return path


def _refuse_nul(path: Path, option: str) -> None:
    if "\x00" in str(path):
        raise InputError(f"{option} {_shown(path)} contains a NUL character")


def _reason(exc: Exception) -> str:
    return one_line(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc), 80)


def private_folder(path: Path | str) -> Path:
    """Create ``path`` (and missing parents) readable by the operator only; an existing folder is left as it is."""
    path = Path(path)
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:
            pass
    return Path(missing[0]) if missing else path


def temporary_name(path: Path) -> Path:
    """Where :func:`write_atomic` stages ``path``: beside it, hidden, recognisable as unfinished."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def write_atomic(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to a private temporary file beside ``path``, flush it to disk, then rename it over ``path``:
    a reader (or a crash) sees the old file or the new one, never a truncated one; a full disk fails here, before
    the caller goes on to its next step. The folder must exist."""
    path = Path(path)
    temporary = temporary_name(path)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0),
                             PRIVATE_FILE)
    except OSError as exc:  # name the file the caller asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path

