"""tls-runbook demo: the one command a newcomer runs, on a small fleet."""

import json
import os
import subprocess
import sys


def test_demo_fixes_reboots_and_blocks_as_the_profiles_intend_and_exits_0(tmp_path):
    """Into a relative folder, as ``make demo`` runs it (papermill runs each notebook from the host's folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLS_RUNBOOK_")}
    result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "demo", "--hosts", "5", "--out", "evidence"],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.startswith("SIMULATED fleet: 5 Windows hosts")
    assert "OK: " in result.stdout and "summary.html" in result.stdout
    [summary] = (tmp_path / "evidence").glob("*/summary.json")
    outcomes = {h["outcome"] for h in json.loads(summary.read_text())["hosts"]}
    assert {"fixed", "fixed_after_reboot", "blocked"} <= outcomes
