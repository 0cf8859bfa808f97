"""Simulated fleets for fleet-run tests: in this process (so faults can be injected), reached over TCP by the
runner's worker processes and their kernels."""

import json

import pytest

from runbook_lib.simulator.fleet import start_node, write_inventory
from runbook_lib.simulator.profile import builtin_profile

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


NET4 = "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319"


@pytest.fixture
def signed_bundle(tmp_path):
    """A small finished run, as the runner leaves it, signed with a fresh per-run key; returns (root, key, make).

    ``make(report)`` rewrites srv01's apply report and re-signs the bundle with the same key, the way a bundle
    written by this tool with that content would look: for refusals that must hold even for a valid signature."""
    from runbook_lib.fleet import evidence
    from runbook_lib.fleet.signing import new_run_key

    root, key = tmp_path / "20261201T000000Z-abcdef", new_run_key()
    folder = root / "hosts" / "srv01"
    folder.mkdir(parents=True)
    (root / "hosts" / "srv02").mkdir()
    (folder / "facts.json").write_text('{"host": "srv01"}\n')
    (root / "hosts" / "srv02" / "facts.json").write_text('{"host": "srv02"}\n')
    (root / "summary.json").write_text('{"run_id": "20261201T000000Z-abcdef"}\n')
    meta = {"run_id": root.name, "started_at": "2026-12-01T00:00:00+00:00", "complete": True,
            "operator": {"name": "alice", "uid": 1000, "source": "effective uid (pwd)"},
            "credential_references": ["env:TLS_RUNBOOK"],
            "hosts": [{"name": "srv01", "state": "done", "outcome": "fixed"},
                      {"name": "srv02", "state": "done", "outcome": "compliant"}]}

    def make(report):
        data = report if isinstance(report, (bytes, str)) else json.dumps(report)
        (folder / "apply-report.json").write_bytes(data.encode() if isinstance(data, str) else data)
        evidence.write_manifest(root, meta, key)
        return root

    make(apply_report())
    return root, key, make


def apply_report(**overrides):
    """srv01's report after writing the two .NET 4 values its plan named."""
    names = ["SchUseStrongCrypto", "SystemDefaultTlsVersions"]
    backup = [{"path": NET4, "name": name, "existed": False, "type": None, "data": None, "key_existed": True}
              for name in names]
    results = [{"path": NET4, "name": name, "status": "written", "before": None,
                "after": {"type": "REG_DWORD", "data": 1}, "error": None} for name in names]
    return {"host": "srv01", "simulated": True, "apply_id": "20261201T000001Z-0a1b2c3d", "completed": True,
            "error": None, "restart": "new_process", "results": results, "backup": backup, **overrides}
