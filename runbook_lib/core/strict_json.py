"""Reading an untrusted JSON document field by field: unknown fields, wrong types and non-printable text are
refused with the full field path in the error (a FactsError), and NaN or Infinity never parse. The host-facts
loader (:mod:`.facts`) reads every document through it."""

from __future__ import annotations

from typing import Any

from .errors import FactsError


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


class FieldReader:
    """Reads one JSON object field by field, naming the full field path in every error."""

    def __init__(self, doc: Any, where: str, allowed: tuple[str, ...], optional: tuple[str, ...] = ()):
        if not isinstance(doc, dict):
            raise FactsError(where, f"expected an object, got {json_type(doc)}")
        unknown = sorted(set(doc) - set(allowed) - set(optional))
        if unknown:
            raise FactsError(join_path(where, str(unknown[0])[:60]), "unknown field")
        self.doc, self.where = doc, where

    def field(self, name: str) -> str:
        return join_path(self.where, name)

    def get(self, name: str, kinds: tuple[type, ...], *, nullable: bool = False, optional: bool = False) -> Any:
        if name not in self.doc:
            if optional:
                return None
            raise FactsError(self.field(name), "missing field")
        value = self.doc[name]
        if value is None and (nullable or optional):
            return None
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            expected = " or ".join(_KIND_NAMES[k] for k in kinds) + (" or null" if nullable else "")
            raise FactsError(self.field(name), f"expected {expected}, got {json_type(value)}")
        return value

    def string(self, name: str, *, nullable: bool = False, optional: bool = False, max_len: int = 1000) -> str:
        value = self.get(name, (str,), nullable=nullable, optional=optional)
        if value is not None and (len(value) > max_len or any(not ch.isprintable() for ch in value)):
            raise FactsError(self.field(name), f"must be printable text of at most {max_len} characters")
        return value

    def check(self, name: str, problem: str | None) -> None:
        if problem:
            raise FactsError(self.field(name), problem)


_KIND_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "an object"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _KIND_NAMES.get(type(value), type(value).__name__)


def join_path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
