"""run --canary: canary hosts first, and a fleet that stops before the rest start when one ends unexpectedly."""

import json
import subprocess
import sys

import pytest

from runbook_lib.fleet import canary, evidence
from runbook_lib.fleet.runner import RunOptions, resume_fleet, run_fleet
from runbook_lib.simulator.fleet import write_inventory

CONSTRAINED = "Constrained Language Mode: the runbook needs FullLanguage or a signed script"


def count_commands(node) -> list[str]:
    """Every operation the host is asked to run from now on (by the script each command carries)."""
    seen, answer = [], node.server.handler

    def counted(command_line, stdin):
        seen.append(stdin.decode("ascii", "replace").split("\r\n", 1)[0].rpartition(": ")[2])
        return answer(command_line, stdin)

    node.server.handler = counted
    return seen


def test_a_canary_that_ends_unexpectedly_stops_the_fleet_before_the_rest_start_and_resume_runs_them(
        simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["ws2019_constrained_language", "ws2016_untouched", "ws2022_healthy"], base=140)
    locked, *others = nodes
    asked = {node.name: count_commands(node) for node in others}
    run = run_fleet(inventory, RunOptions(notebooks=("01",), canary=1, parallel=3), tmp_path / "out")
    rows = {row.host: row for row in run.rows}
    assert rows[locked.name].outcome == "failed" and rows[locked.name].error.endswith(CONSTRAINED)
    assert asked == {node.name: [] for node in others}, "a host after the canary was started"
    for node in others:
        assert rows[node.name].outcome == "not_run"
        assert rows[node.name].error == f"not started: canary {locked.name} ended failed"
        assert not (run.root / "hosts" / node.name).exists()
    assert run.stopped.startswith(f"CANARY STOPPED THE FLEET: {locked.name} ended failed (RemoteScriptFailed: ")
    assert run.stopped.endswith("2 other host(s) not started (recorded as not_run). Fix the cause, then run again "
                                "without those already done (--limit)")
    assert run.exit_code == 1 and run.verify.ok
    manifest = evidence.load_manifest(run.root)
    assert manifest["complete"] is False and manifest["state"] == "stopped by a canary"
    assert manifest["canary"] == {"hosts": [locked.name], "captions": None, "stopped_by": [locked.name]}
    assert {h["name"]: h["state"] for h in manifest["hosts"]} == {locked.name: "done", nodes[1].name: "not_run",
                                                                nodes[2].name: "not_run"}
    summary = json.loads((run.root / "summary.json").read_text())
    assert summary["counts"]["not_run"] == 2 and summary["counts"]["failed"] == 1
    assert "PARTIAL: 1 of 3 host(s) finished" in "\n".join(run.verify.lines())

    resumed = resume_fleet(run.root)  # the cause dealt with: the hosts not run start, a canary of them first
    rows = {row.host: row.outcome for row in resumed.rows}
    assert rows == {locked.name: "failed", nodes[1].name: "fixable", nodes[2].name: "fixable"}
    assert [op for op in asked[nodes[1].name] if op == "inspect"] and resumed.stopped is None
    assert evidence.load_manifest(run.root)["complete"] is True and resumed.verify.ok


def test_canary_alone_runs_one_host_per_os_caption_and_names_why_it_stopped(simulated_fleet, credential, tmp_path):
    nodes, _ = simulated_fleet(["ws2016_untouched", "ws2016_wow6432node_only", "ws2019_constrained_language"],
                               base=150)
    same_caption, locked = nodes[1], nodes[2]
    inventory = write_inventory(tmp_path / "fleet.yml", [(n.name, n.server.address, n.server.port) for n in nodes])
    asked = count_commands(same_caption)
    done = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", inventory, "--notebooks",
                           "01", "--canary", "--out", tmp_path / "out"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"Canary: {nodes[0].name}, {locked.name} first; the other 1 host(s) start only if each ends blocked, " \
           "compliant, fixable, reboot_pending" in done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("CANARY STOPPED THE FLEET")]
    assert line.startswith(f"CANARY STOPPED THE FLEET: {locked.name} ended failed (") and CONSTRAINED in line
    assert asked == ["preflight"], "only the read-only caption read reached the host that was not started"
    root = next((tmp_path / "out").iterdir())
    captions = evidence.load_manifest(root)["canary"]["captions"]
    assert captions == {nodes[0].name: "Microsoft Windows Server 2016 Standard",
                        same_caption.name: "Microsoft Windows Server 2016 Standard",
                        locked.name: canary.UNREAD_CAPTION}


@pytest.mark.parametrize("apply, reboot, outcome, expected", [
    (False, False, "fixable", True), (False, False, "fixed", False), (True, False, "fixable", False),
    (True, False, "reboot_pending", True), (True, True, "reboot_pending", False), (True, True, "blocked", True),
    (True, True, "fixed_after_reboot", True), (False, False, "failed", False), (True, True, "failed", False),
    (True, True, "interrupted", False),
])
def test_an_unexpected_end_is_any_outcome_the_run_cannot_end_in_as_designed(apply, reboot, outcome, expected):
    rows = {"srv01": {"outcome": outcome}}
    assert canary.unexpected(rows, ["srv01"], apply, reboot) == ([] if expected else ["srv01"])


def test_canaries_are_chosen_in_inventory_order():
    hosts = ["a", "b", "c", "d", "e"]
    captions = {"a": "2016", "b": "2016", "c": canary.UNREAD_CAPTION, "d": "2008 R2", "e": canary.UNREAD_CAPTION}
    assert canary.choose(hosts, canary.PER_CAPTION, captions) == ["a", "c", "d"]
    assert canary.choose(hosts, 2) == ["a", "b"] and canary.choose(hosts, 9) == hosts


@pytest.mark.parametrize("value", [0, -1, 1001, "all", 1.5, True])
def test_a_canary_that_is_neither_a_count_nor_per_caption_is_bad_input(value):
    from runbook_lib.core.errors import InputError

    with pytest.raises(InputError, match="--canary takes a number of hosts"):
        RunOptions(canary=value).validate()
