"""``tls-runbook demo``: the whole runbook against a simulated fleet, in one command.

It starts one simulated host per built-in profile on its own loopback address (NTLM with message encryption,
Windows' strict defaults), generates a credential for the run and hands it to the kernels through the environment
(never as a parameter), runs all four notebooks with apply and reboot, verifies the evidence bundle, prints the
summary and stops the fleet.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

from .fleet.report import render_text
from .fleet.runner import RunOptions, run_fleet
from .simulator.fleet import FleetProcess, write_inventory
from .simulator.profile import builtin_profile, builtin_profile_names

DEMO_USER = "demo-admin"
EXPECTED = {"fixable": ("fixed", "fixed_after_reboot"), "compliant": ("compliant",), "blocked": ("blocked",),
            "failed": ("failed",)}


def demo_profiles(count: int | None) -> list[str]:
    names = builtin_profile_names()
    count = count or len(names)
    return [names[i % len(names)] for i in range(count)]


def run_demo(hosts: int | None = None, out: Path | str = "evidence", parallel: int | None = None,
             stream=sys.stdout) -> int:
    profile_names = demo_profiles(hosts)
    password = secrets.token_urlsafe(18) + "-Aa1"
    os.environ["TLS_RUNBOOK_USER"] = DEMO_USER
    os.environ["TLS_RUNBOOK_PASSWORD"] = password  # inherited by every kernel; never a notebook parameter
    with FleetProcess(profile_names, [(DEMO_USER, password)], strict=True, boot_seconds=2.0) as nodes, \
            tempfile.TemporaryDirectory(prefix="tls-runbook-demo-") as folder:
        print(f"SIMULATED fleet: {len(nodes)} Windows hosts on loopback (NTLM with message encryption)",
              file=stream, flush=True)
        inventory = write_inventory(Path(folder) / "demo-fleet.yml", nodes)
        run = run_fleet(inventory, RunOptions(apply=True, reboot=True, parallel=parallel), out, secrets=[password])
    print(render_text(run.rows), file=stream)
    print("\n".join(run.verify.lines()), file=stream)
    print(f"Summary: {run.root / 'summary.html'}", file=stream)
    print("\n".join(run.key_lines()), file=stream)
    unexpected = [row.host for row, name in zip(run.rows, profile_names)
                  if row.outcome not in EXPECTED[builtin_profile(name).intent]]
    if unexpected:
        print(f"Not as the profiles intend: {', '.join(unexpected)}", file=stream)
    return 0 if run.verify.ok and not unexpected else 1
