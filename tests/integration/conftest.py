"""Simulated hosts on loopback reached through the real pywinrm client (NTLM with message encryption)."""

import pytest

from runbook_lib.simulator.fleet import start_node
from runbook_lib.simulator.host import builtin_profile


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
