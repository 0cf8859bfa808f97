"""The slice of a Windows registry the runbook reads, with Windows' comparison rules.

Registry paths and value names compare case-insensitively on Windows; a facts file written by hand or by another
tool may spell ``TLS 1.2\\client`` where the engine asks for ``TLS 1.2\\Client``. Everything that looks a value up
goes through :class:`Registry` so that rule lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Union

REG_TYPES = ("REG_DWORD", "REG_QWORD", "REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ", "REG_BINARY")
POLICIES_ROOT = "HKLM\\SOFTWARE\\Policies\\"

RegData = Union[int, str, list]

# A key path: HKLM\ then backslash-separated non-empty segments, printable, no control characters.
_PATH_RE = re.compile(r"HKLM(\\[^\\\x00-\x1f\x7f]+)+", re.IGNORECASE)  # fullmatch: '$' allows a final newline
_MAX_PATH = 1024
_MAX_NAME = 255


def path_problem(path: object) -> str | None:
    """Why a registry key path is unacceptable, or None. Shared by the facts loader and plan readers."""
    if not isinstance(path, str):
        return f"expected a string, got {type(path).__name__}"
    if len(path) > _MAX_PATH:
        return f"longer than {_MAX_PATH} characters"
    if not _PATH_RE.fullmatch(path):
        return "must be a key path starting with HKLM\\ with no empty segments or control characters"
    return None


def name_problem(name: object) -> str | None:
    """Why a value name is unacceptable, or None. An empty name (the key's default value) is never read."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name or len(name) > _MAX_NAME:
        return f"must be 1 to {_MAX_NAME} characters"
    if any(not ch.isprintable() for ch in name):
        return "contains control characters"
    return None


def data_problem(reg_type: str, data: object) -> str | None:
    """Why ``data`` cannot be a value of ``reg_type``, or None.

    REG_SZ "1" is a string and stays one: .NET discards non-DWORD values, so the model must never coerce.
    """
    if reg_type == "REG_DWORD":
        return _int_problem(data, 0xFFFFFFFF)
    if reg_type == "REG_QWORD":
        return _int_problem(data, 0xFFFFFFFFFFFFFFFF)
    if reg_type in ("REG_SZ", "REG_EXPAND_SZ"):
        if not isinstance(data, str):
            return f"{reg_type} data must be a string, got {type(data).__name__}"
        return "contains a NUL character" if "\x00" in data else None
    if reg_type == "REG_MULTI_SZ":
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            return "REG_MULTI_SZ data must be a list of strings"
        return "contains a NUL character" if any("\x00" in item for item in data) else None
    if reg_type == "REG_BINARY":
        if not isinstance(data, str) or len(data) % 2 or re.fullmatch(r"[0-9a-fA-F]*", data) is None:
            return "REG_BINARY data must be a hex string with an even number of digits"
        return None
    return f"unknown registry type {reg_type!r} (expected one of {', '.join(REG_TYPES)})"


def _int_problem(data: object, maximum: int) -> str | None:
    if isinstance(data, bool) or not isinstance(data, int):
        return f"data must be an integer, got {type(data).__name__}"
    if not 0 <= data <= maximum:
        return f"data {data} is outside 0..{maximum:#x}"
    return None


def is_policy_path(path: str) -> bool:
    """Anything under HKLM\\SOFTWARE\\Policies is Group Policy by definition."""
    return path.upper().startswith(POLICIES_ROOT.upper())


@dataclass(frozen=True)
class RegistryValue:
    path: str
    name: str
    type: str
    data: RegData
    policy: bool = False

    @property
    def from_policy(self) -> bool:
        """Whether a local write to this value would be reverted by the next Group Policy refresh."""
        return self.policy or is_policy_path(self.path)

    @property
    def dword(self) -> int | None:
        """The data when this is a REG_DWORD, else None: Windows readers ignore other kinds."""
        return self.data if self.type == "REG_DWORD" else None  # type: ignore[return-value]

    def same_as(self, reg_type: str, data: RegData) -> bool:
        return self.type == reg_type and self.data == data

    def to_dict(self) -> dict:
        data = list(self.data) if isinstance(self.data, list) else self.data
        return {"path": self.path, "name": self.name, "type": self.type, "data": data, "policy": self.policy}


def _key(path: str, name: str) -> tuple[str, str]:
    return path.casefold(), name.casefold()


class Registry:
    """An immutable, case-insensitive set of registry values."""

    def __init__(self, values: Iterable[RegistryValue] = ()):
        self._values: dict[tuple[str, str], RegistryValue] = {}
        for value in values:
            self._values[_key(value.path, value.name)] = value

    def get(self, path: str, name: str) -> RegistryValue | None:
        return self._values.get(_key(path, name))

    def dword(self, path: str, name: str) -> int | None:
        value = self.get(path, name)
        return value.dword if value else None

    def has_key(self, path: str) -> bool:
        """Whether any listed value lives in ``path`` (facts do not list empty keys)."""
        folded = path.casefold()
        return any(key_path == folded for key_path, _ in self._values)

    def set(self, path: str, name: str, reg_type: str, data: RegData) -> "Registry":
        """A copy with one value written; the write keeps the existing spelling of path and name."""
        existing = self.get(path, name)
        if existing:
            new = replace(existing, type=reg_type, data=data, policy=False)
        else:
            new = RegistryValue(path, name, reg_type, data)
        return Registry([*self, new])

    def delete(self, path: str, name: str) -> "Registry":
        gone = _key(path, name)
        return Registry(value for key, value in self._values.items() if key != gone)

    def __iter__(self) -> Iterator[RegistryValue]:
        return iter(self._values.values())

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Registry):
            return NotImplemented
        return self._comparable() == other._comparable()

    def _comparable(self) -> dict:
        return {key: (v.type, v.data, v.from_policy) for key, v in self._values.items()}

    def __repr__(self) -> str:
        return f"Registry({len(self)} values)"
