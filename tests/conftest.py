import secrets
from pathlib import Path

import pytest

from runbook_lib.remote.credentials import Credential
from runbook_lib.simulator.fleet import start_node
from runbook_lib.simulator.profile import builtin_profile

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


@pytest.fixture
def simulated(credential):
    """Start simulated hosts by profile name (strict Windows defaults, fast reboots); stop them afterwards."""
    nodes = []

    def start(profile_name, address="127.0.0.1", **options):
        options.setdefault("strict", True)
        options.setdefault("boot_seconds", 0.5)
        node = start_node(builtin_profile(profile_name), [(credential.username, credential.password)],
                          address=address, **options)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()
