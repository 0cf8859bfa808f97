"""The output contract of the operation scripts: JSON Schema files shipped in ``runbook_lib/remote/schemas``.

Every result a script writes is checked against ``<operation>.schema.json`` before anything reads it, and the
simulator is tested against the same files, so the two cannot drift: a probe whose ``ok`` means something other
than "the handshake completed", or a field a real script could not fill, is refused on both sides.
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


@lru_cache(maxsize=None)
def _registry() -> Registry:
    folder = resources.files("runbook_lib.remote").joinpath("schemas")
    documents = [json.loads(item.read_text(encoding="utf-8")) for item in folder.iterdir()
                 if item.name.endswith(".schema.json")]
    return Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in documents)


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    """The validator of one schema file by its stem: an operation, ``result`` (the envelope) or ``probe-record``."""
    registry = _registry()
    return Draft202012Validator(registry.contents(f"{SCHEMA_BASE}{name}.schema.json"), registry=registry)


def _field(error: ValidationError) -> str:
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the document)"


def contract_problem(name: str, document: Any) -> str | None:
    """The most relevant way ``document`` breaks schema ``name``, as "'field.path' message", or None."""
    error = best_match(validator(name).iter_errors(document))
    if error is None:
        return None
    return f"{_field(error)!r} {error.message}"
