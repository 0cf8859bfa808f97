"""``.reg`` files written as regedit writes them, and read back for rollback.

regedit's format: UTF-16LE with a BOM, CRLF line ends, the ``Windows Registry Editor Version 5.00`` header,
``dword:`` in 8 hex digits, other kinds as comma-separated hex bytes wrapped at 80 columns with a trailing
backslash. ``"Name"=-`` deletes a value and ``[-KEY]`` deletes a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .errors import RegFileError
from .registry import RegData, Registry, data_problem, name_problem, path_problem

HEADER = "Windows Registry Editor Version 5.00"
_HIVE_SHORT, _HIVE_LONG = "HKLM", "HKEY_LOCAL_MACHINE"
_WRAP = 80
MAX_REG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class RegOperation:
    """One line of a .reg file's effect: set a value, delete a value, or delete a key (name None)."""

    path: str
    name: str | None
    reg_type: str | None = None
    data: RegData | None = None

    @property
    def deletes(self) -> bool:
        return self.reg_type is None


def long_path(path: str) -> str:
    return _HIVE_LONG + path[len(_HIVE_SHORT):]


def short_path(path: str) -> str:
    if path.upper().startswith(_HIVE_LONG + "\\"):
        return _HIVE_SHORT + path[len(_HIVE_LONG):]
    return path


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hex_bytes(raw: bytes) -> list[str]:
    return [f"{byte:02x}" for byte in raw]


def _encode_data(reg_type: str, data: RegData) -> tuple[str, list[str] | None]:
    """The text after ``=``: either a complete literal or a hex prefix plus the bytes to wrap."""
    if reg_type == "REG_DWORD":
        return f"dword:{data:08x}", None
    if reg_type == "REG_SZ":
        return _quote(str(data)), None
    if reg_type == "REG_QWORD":
        return "hex(b):", _hex_bytes(int(data).to_bytes(8, "little"))  # type: ignore[arg-type]
    if reg_type == "REG_EXPAND_SZ":
        return "hex(2):", _hex_bytes((str(data) + "\0").encode("utf-16-le"))
    if reg_type == "REG_MULTI_SZ":
        joined = "".join(item + "\0" for item in data) + "\0"  # type: ignore[union-attr]
        return "hex(7):", _hex_bytes(joined.encode("utf-16-le"))
    if reg_type == "REG_BINARY":
        return "hex:", _hex_bytes(bytes.fromhex(str(data)))
    raise ValueError(f"unknown registry type {reg_type}")


def value_line(name: str, reg_type: str, data: RegData) -> str:
    literal, hex_items = _encode_data(reg_type, data)
    line = f"{_quote(name)}={literal}"
    if hex_items is None:
        return line
    lines, current = [], line
    for index, item in enumerate(hex_items):
        token = item + ("," if index < len(hex_items) - 1 else "")
        if len(current) + len(token) > _WRAP - 1:
            lines.append(current + "\\")
            current = "  "
        current += token
    lines.append(current)
    return "\r\n".join(lines)


def render(operations: Iterable[RegOperation], comments: Iterable[str] = ()) -> str:
    """The text of a .reg file; consecutive operations on one key share a [KEY] section."""
    out = [HEADER, ""]
    out += [f"; {comment}" for comment in comments]
    if len(out) > 2:
        out.append("")
    section: str | None = None
    for op in operations:
        if op.name is None:
            out += [f"[-{long_path(op.path)}]", ""]
            section = None
            continue
        if section is None or section.casefold() != op.path.casefold():
            if section is not None:
                out.append("")
            out.append(f"[{long_path(op.path)}]")
            section = op.path
        out.append(f"{_quote(op.name)}=-" if op.deletes else value_line(op.name, op.reg_type, op.data))
    if section is not None:
        out.append("")
    return "\r\n".join(out) + "\r\n"


def to_bytes(text: str) -> bytes:
    return b"\xff\xfe" + text.encode("utf-16-le")


# --- reading -------------------------------------------------------------------------------------------------
_STRING_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


def parse(raw: bytes | str) -> list[RegOperation]:
    """Read a .reg file this project (or regedit) wrote; anything else is a one-line RegFileError."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_REG_BYTES:
            raise RegFileError("reg: file is larger than 4 MiB")
        try:
            text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RegFileError("reg: not UTF-16 or UTF-8 text") from None
    else:
        text = raw
    logical, pending = [], ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if pending:
            line = pending + line.lstrip()
        if line.endswith("\\") and not line.startswith("["):
            pending = line[:-1]
            continue
        pending = ""
        logical.append(line)
    if not logical or logical[0].strip() != HEADER:
        raise RegFileError(f"reg: the first line must be {HEADER!r}")
    operations: list[RegOperation] = []
    key: str | None = None
    for number, line in enumerate(logical[1:], start=2):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise RegFileError(f"reg: line {number}: unterminated key")
            deleting = line.startswith("[-")
            path = short_path(line[2 if deleting else 1:-1])
            if path_problem(path):
                raise RegFileError(f"reg: line {number}: key {path_problem(path)}")
            if deleting:
                operations.append(RegOperation(path, None))
                key = None
            else:
                key = path
            continue
        if key is None:
            raise RegFileError(f"reg: line {number}: value outside a key")
        match = _STRING_RE.match(line)
        if not match or line[match.end():match.end() + 1] != "=":
            raise RegFileError(f"reg: line {number}: expected \"Name\"=...")
        name = _unquote(match.group(1))
        if name_problem(name):
            raise RegFileError(f"reg: line {number}: value name {name_problem(name)}")
        operations.append(_parse_value(key, name, line[match.end() + 1:], number))
    return operations


def _parse_value(key: str, name: str, literal: str, number: int) -> RegOperation:
    try:
        if literal == "-":
            return RegOperation(key, name)
        if literal.startswith('"'):
            match = _STRING_RE.fullmatch(literal)
            if not match:
                raise ValueError("bad string")
            return _checked(key, name, "REG_SZ", _unquote(match.group(1)), number)
        if literal.lower().startswith("dword:"):
            return _checked(key, name, "REG_DWORD", int(literal[6:], 16), number)
        prefix, _, body = literal.partition(":")
        raw = bytes(int(item, 16) for item in body.replace(" ", "").split(",") if item)
        kinds = {"hex": "REG_BINARY", "hex(b)": "REG_QWORD", "hex(2)": "REG_EXPAND_SZ", "hex(7)": "REG_MULTI_SZ"}
        reg_type = kinds[prefix.lower()]
    except (ValueError, KeyError):
        raise RegFileError(f"reg: line {number}: cannot read the value of {name!r}") from None
    if reg_type == "REG_BINARY":
        return _checked(key, name, reg_type, raw.hex(), number)
    if reg_type == "REG_QWORD":
        return _checked(key, name, reg_type, int.from_bytes(raw, "little"), number)
    decoded = raw.decode("utf-16-le", errors="replace")
    if reg_type == "REG_EXPAND_SZ":
        return _checked(key, name, reg_type, decoded.rstrip("\0"), number)
    items = decoded[:-2].split("\0") if decoded.endswith("\0\0") else decoded.rstrip("\0").split("\0")
    return _checked(key, name, reg_type, [] if items == [""] else items, number)


def _checked(key: str, name: str, reg_type: str, data: RegData, number: int) -> RegOperation:
    problem = data_problem(reg_type, data)
    if problem:
        raise RegFileError(f"reg: line {number}: {problem}")
    return RegOperation(key, name, reg_type, data)


def apply(registry: Registry, operations: Iterable[RegOperation]) -> Registry:
    """What importing the file does to the values the runbook models."""
    for op in operations:
        if op.name is None:
            for value in [v for v in registry if v.path.casefold() == op.path.casefold()
                          or v.path.casefold().startswith(op.path.casefold() + "\\")]:
                registry = registry.delete(value.path, value.name)
        elif op.deletes:
            registry = registry.delete(op.path, op.name)
        else:
            registry = registry.set(op.path, op.name, op.reg_type, op.data)  # type: ignore[arg-type]
    return registry
