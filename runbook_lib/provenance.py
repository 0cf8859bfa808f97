"""Who ran a fleet run, where, with which code: the facts a manifest records about its own making.

The operator is the account the process runs as, asked from the operating system (the effective uid's password
entry on POSIX, the logon name on Windows), never an environment variable such as LOGNAME or USERNAME that any
caller can set.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CODE_SUFFIXES = (".py", ".ps1", ".json")


def operator_identity() -> dict:
    if os.name == "nt":
        return {"name": _windows_logon_name(), "source": "Windows logon name (GetUserNameExW)"}
    import pwd

    effective = os.geteuid()
    identity = {"name": _pw_name(pwd, effective), "uid": effective, "source": "effective uid (pwd)"}
    if os.getuid() != effective:
        identity.update(real_uid=os.getuid(), real_name=_pw_name(pwd, os.getuid()))
    return identity


def _pw_name(pwd, uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid} (no password entry)"


def _windows_logon_name() -> str:
    import ctypes

    size = ctypes.c_ulong(0)
    secur32 = ctypes.WinDLL("secur32")  # type: ignore[attr-defined]
    name_sam_compatible = 2  # DOMAIN\user
    secur32.GetUserNameExW(name_sam_compatible, None, ctypes.byref(size))
    buffer = ctypes.create_unicode_buffer(size.value or 512)
    if secur32.GetUserNameExW(name_sam_compatible, buffer, ctypes.byref(size)):
        return buffer.value
    advapi32 = ctypes.WinDLL("advapi32")  # type: ignore[attr-defined]
    size = ctypes.c_ulong(512)
    buffer = ctypes.create_unicode_buffer(size.value)
    return buffer.value if advapi32.GetUserNameW(buffer, ctypes.byref(size)) else "unknown (GetUserName failed)"


def machine() -> dict:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version()}


def _digest_files(paths: list[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(paths):
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def tool_digest() -> str:
    """One SHA-256 over every source, script and profile file of the installed package (names and contents)."""
    files = [(p.relative_to(_PACKAGE).as_posix(), p) for p in _PACKAGE.rglob("*")
             if p.suffix in _CODE_SUFFIXES and p.is_file() and "__pycache__" not in p.parts]
    return _digest_files(files)


def file_digests(paths: list[Path]) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name if sys.argv else "", *sys.argv[1:]]
