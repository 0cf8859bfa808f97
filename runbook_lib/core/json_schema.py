"""The contracts as JSON Schema files, checked against one local registry: no ``$ref`` ever reaches the network.

Each layer ships its schemas as package data in its own ``schemas/`` folder (core: host facts, the verdict, a probe
record, a registry value; remote: every script's output). A layer's registry holds its own folder and the folders
below it, so a script's schema may refer to a core one and never the other way round.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

SCHEMA_BASE = "https://schemas.tls-runbook.invalid/"  # .invalid never resolves: nothing is ever fetched
CORE = ("runbook_lib.core",)
_SUFFIX = ".schema.json"


def _schema_files(packages: tuple[str, ...]):
    for package in packages:
        yield from (item for item in resources.files(package).joinpath("schemas").iterdir()
                    if item.name.endswith(_SUFFIX))


@lru_cache(maxsize=None)
def _registry(packages: tuple[str, ...]) -> Registry:
    documents = [json.loads(item.read_text(encoding="utf-8")) for item in _schema_files(packages)]
    return Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in documents)


@lru_cache(maxsize=None)
def validator(name: str, packages: tuple[str, ...] = CORE) -> Draft202012Validator:
    """The validator of schema file ``<name>.schema.json``, found in the ``schemas`` folders of ``packages``."""
    registry = _registry(packages)
    return Draft202012Validator(registry.contents(f"{SCHEMA_BASE}{name}{_SUFFIX}"), registry=registry)


def load_validators(packages: tuple[str, ...] = CORE) -> None:
    """Read the schemas of ``packages`` and build their validators now rather than at first use: the kernel
    template does it once, and every kernel forked from it starts with them."""
    for item in _schema_files(packages):
        validator(item.name[: -len(_SUFFIX)], packages)


def _field(parts) -> str:
    """A field as the loaders name it, ``observed.probes[0].mode``; "" for the document itself. Names from the
    document are cut short: a hostile key must not become a long error line."""
    text = ""
    for part in parts:
        part = part if isinstance(part, int) else str(part)[:60]
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


_JSON_TYPES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
               "array": "a list", "object": "an object", "null": "null"}


def _json_type(value: Any) -> str:
    names = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}
    return _JSON_TYPES[names.get(type(value), "null")]


def _explain(error: ValidationError) -> tuple[str, str]:
    """(field path, problem) in the loaders' words and in JSON's (null, false), rather than jsonschema's Python."""
    path, kind, expected = list(error.absolute_path), error.validator, error.validator_value
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    if "propertyNames" in error.relative_schema_path:
        return _field(path + [error.instance]), "field not allowed here"
    if kind == "required":
        missing = [name for name in expected if name not in error.instance]
        return _field(path + missing[:1]), "missing field"
    if kind in ("additionalProperties", "unevaluatedProperties"):
        unknown = sorted(name for name in error.instance if name not in error.schema.get("properties", {}))
        return _field(path + unknown[:1]), "unknown field"
    if kind == "type":
        wanted = expected if isinstance(expected, list) else [expected]
        return _field(path), (f"expected {' or '.join(_JSON_TYPES[name] for name in wanted)}, got "
                             f"{_json_type(error.instance)}")
    if kind == "const":
        return _field(path), f"expected {_json(expected)}, got {_json(error.instance)}"
    if kind == "enum":
        return _field(path), f"expected one of {', '.join(_json(v) for v in expected)}, got {_json(error.instance)}"
    if kind == "not" and expected == {}:
        return _field(path), "field not allowed here"
    if kind == "not" and described:
        return _field(path), described
    if kind == "pattern" and described:
        article, _, rest = described.partition(" ")
        lead = article.lower() if article in ("A", "An", "The") else article
        return _field(path), f"expected {lead} {rest}, got {_json(error.instance)}"
    return _field(path), error.message


def schema_problem(name: str, document: Any, packages: tuple[str, ...] = CORE) -> tuple[str, str] | None:
    """The most relevant way ``document`` breaks schema ``name``, as (field path, problem), or None."""
    error = best_match(validator(name, packages).iter_errors(document))
    return None if error is None else _explain(error)
