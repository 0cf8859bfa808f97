"""tls-runbook demo: the one command a newcomer runs, on a small fleet."""

import json
import os
import subprocess
import sys


def test_demo_fixes_reboots_and_blocks_as_the_profiles_intend_and_exits_0(tmp_path):
    """As `make demo` runs it: the bundle under the default, relative ``evidence`` folder of the current folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLS_RUNBOOK_")}
    result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "demo", "--hosts", "5"], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.startswith("SIMULATED fleet: 5 Windows hosts")
    assert "OK: " in result.stdout and "summary.html" in result.stdout
    [summary] = tmp_path.glob("evidence/*/summary.json")
    outcomes = {h["outcome"] for h in json.loads(summary.read_text())["hosts"]}
    assert {"fixed", "fixed_after_reboot", "blocked"} <= outcomes
    assert "chosen from this machine" in result.stderr  # no --parallel given: the reason for the default is printed
    restarted = json.loads(next(tmp_path.glob("evidence/*/hosts/win7-wmf51/reboot.json")).read_text())
    assert restarted["state"] == "restarted" and restarted["last_boot_after"] != restarted["last_boot_before"]
