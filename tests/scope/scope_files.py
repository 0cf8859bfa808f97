"""Paths of the sign-in fixtures, and the scope command run as an operator runs it."""

import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
ENTRA_JSON = sorted(FIXTURES.glob("*SignIns_*.json"))  # interactive, non-interactive ({"value"}), application, MSI
ENTRA_CSV = FIXTURES / "InteractiveSignIns_2026-11-01_2026-11-30.csv"
LA_JSON = FIXTURES / "log_analytics_signins.json"
LA_CSV = FIXTURES / "log_analytics_signins.csv"
INVENTORY = FIXTURES / "inventory.yml"


def scope_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """``tls-runbook scope`` in its own process, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "scope", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)
