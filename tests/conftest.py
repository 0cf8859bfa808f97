import secrets
from pathlib import Path

import pytest

from runbook_lib.remote.credentials import Credential

FACTS_DIR = Path(__file__).parent / "facts"


@pytest.fixture
def facts_path():
    """Path of a committed facts fixture by name (without .json)."""
    def resolve(name: str) -> Path:
        return FACTS_DIR / f"{name}.json"
    return resolve


@pytest.fixture(scope="session")
def password():
    """A fresh password per test session, so a leak test can grep for a value no fixture file contains."""
    return "Pw-" + secrets.token_urlsafe(14)


@pytest.fixture
def credential(password, monkeypatch):
    """The default credential reference (env:TLS_RUNBOOK) resolves to this for the test and its kernels."""
    monkeypatch.setenv("TLS_RUNBOOK_USER", "runbook-admin")
    monkeypatch.setenv("TLS_RUNBOOK_PASSWORD", password)
    return Credential("runbook-admin", password)
