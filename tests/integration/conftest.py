"""Simulated hosts on loopback reached through the real pywinrm client (NTLM with message encryption)."""

import secrets

import pytest

from runbook_lib.remote.credentials import Credential
from runbook_lib.simulator.fleet import start_node
from runbook_lib.simulator.host import builtin_profile

USER = "runbook-admin"


@pytest.fixture(scope="session")
def password():
    """A fresh password per test session, so a leak test can grep for a value no fixture file contains."""
    return "Pw-" + secrets.token_urlsafe(12)


@pytest.fixture
def credential(password, monkeypatch):
    monkeypatch.setenv("TLS_RUNBOOK_USER", USER)
    monkeypatch.setenv("TLS_RUNBOOK_PASSWORD", password)
    return Credential(USER, password)


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
