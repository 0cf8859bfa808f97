"""Simulated fleets for fleet-run tests: in this process (so faults can be injected), reached over TCP by the
runner's worker processes and their kernels."""

import pytest

from runbook_lib.simulator.fleet import start_node, write_inventory
from runbook_lib.simulator.host import builtin_profile

FLEET_PROFILES = ["win7_wmf51", "ws2016_untouched", "ws2022_healthy", "ws2019_tls12_disabled_by_gpo",
                  "ws2012r2_net452", "ws2016_wow6432node_only"]
INTENDED = {"fixable": {"fixed", "fixed_after_reboot"}, "compliant": {"compliant"}, "blocked": {"blocked"}}


@pytest.fixture
def simulated_fleet(credential, tmp_path):
    """Start named profiles on 127.0.0.(base+i); returns (nodes, inventory path)."""
    nodes = []

    def start(profiles, base=30, port=0):
        for index, profile in enumerate(profiles):
            nodes.append(start_node(builtin_profile(profile), [(credential.username, credential.password)], address=f"127.0.0.{base + index}",
                                    port=port, strict=True, boot_seconds=1.5))
        inventory = write_inventory(tmp_path / "fleet.yml",
                                    [(n.name, n.server.address, n.server.port) for n in nodes])
        return nodes, inventory

    yield start
    for node in nodes:
        node.stop()
