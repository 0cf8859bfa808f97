"""Reading operator-supplied files without trusting their size."""

from __future__ import annotations

from pathlib import Path


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
