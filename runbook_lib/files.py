"""Reading operator-supplied files without trusting their size; writing evidence so no one else can read it and
no reader ever sees half a file.

Private means mode 0600 for files and 0700 for folders on POSIX. On Windows the mode bits are ignored: files and
folders inherit the ACL of the folder they are created in, so the evidence folder's own ACL decides who can read it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

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

