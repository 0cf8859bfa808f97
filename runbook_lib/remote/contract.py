"""The output contract of the operation scripts: JSON Schema files shipped in ``runbook_lib/remote/schemas``.

Every result a script writes is checked against ``<operation>.schema.json`` before anything reads it, and the
simulator is tested against the same files, so the two cannot drift: a probe whose ``ok`` means something other
than "the handshake completed", or a field a real script could not fill, is refused on both sides. The scripts'
schemas build on the core contracts (``inspect`` writes host facts, ``probe`` writes probe records), so the
registry holds both folders.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from runbook_lib.core import json_schema

PACKAGES = ("runbook_lib.core", "runbook_lib.remote")


def validator(name: str) -> Draft202012Validator:
    """The validator of one schema file by its stem: an operation, ``result`` (the envelope) or ``probe-record``."""
    return json_schema.validator(name, PACKAGES)


def contract_problem(name: str, document: Any) -> str | None:
    """The most relevant way ``document`` breaks schema ``name``, as "'field.path' message", or None."""
    problem = json_schema.schema_problem(name, document, PACKAGES)
    if problem is None:
        return None
    field, message = problem
    return f"{field or '(the document)'!r} {message}"
