"""A host restarting holds no worker: notebook 03 schedules the restart and ends, the runner watches the boot time,
and notebook 04 runs once the host reports a new one, with the proof in reboot.json first."""

import json
from pathlib import Path

import nbformat

from runbook_lib.fleet.capacity import machine_parallel
from runbook_lib.fleet.runner import RunOptions, run_fleet

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def started(notebook: Path) -> str:
    return nbformat.read(notebook, as_version=4).metadata.papermill.start_time[:19]


def test_a_restarting_host_frees_the_only_worker_for_the_next_host_and_04_reads_it_after_the_new_boot(
        simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["win7_wmf51", "ws2022_healthy"], base=140)
    run = run_fleet(inventory, RunOptions(apply=True, reboot=True, parallel=1), tmp_path / "out",
                    notebooks_dir=NOTEBOOKS_DIR, secrets=[credential.password])
    assert run.exit_code == 0 and run.verify.ok, [(r.host, r.outcome, r.error) for r in run.rows]
    restarting, other = (run.root / "hosts" / node.name for node in nodes)
    proof = json.loads((restarting / "reboot.json").read_text())
    assert proof["state"] == "restarted" and proof["last_boot_after"] > proof["last_boot_before"]
    assert proof["simulated"] is True
    # the one worker ran the other host while this one restarted, and came back for 04 after the new boot
    assert proof["scheduled_at"][:19] <= started(other / "01_cause.ipynb") <= started(restarting /
                                                                                     "04_powershell_session_fix.ipynb")
    assert started(restarting / "04_powershell_session_fix.ipynb") >= proof["last_boot_after"][:19]
    assert {r.host: r.outcome for r in run.rows} == {nodes[0].name: "fixed_after_reboot", nodes[1].name: "compliant"}
    assert nodes[0].host.reboots == 1
    outcome = json.loads((restarting / "outcome.json").read_text())
    assert f"last boot {proof['last_boot_before']} -> {proof['last_boot_after']}" in outcome["detail"]
    notebook_03 = nbformat.read(restarting / "03_registry_remediation.ipynb", as_version=4)
    assert "Restart scheduled on" in json.dumps(notebook_03.cells)  # 03 says who waits, and ends


def test_the_default_parallel_names_the_limit_that_chose_it(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    chosen, reason = machine_parallel(hosts=200, maximum=64)
    assert chosen == 16 and "2 CPU(s) x 8" in reason and "--in-flight" in reason
    chosen, reason = machine_parallel(hosts=3, maximum=64)
    assert chosen == 3 and "3 host(s) to run" in reason


def test_in_flight_caps_the_hosts_started_and_one_windows_host_under_two_names_waits_for_itself(tmp_path):
    from runbook_lib.fleet.scheduler import LocalExecutor, _Flight
    from runbook_lib.fleet.supervision import StopRequest

    job = {"root": str(tmp_path), "secrets": [], "winrm_endpoints": {"a": ("10.0.0.1", 5985), "a-alias": ("10.0.0.1",
                                                                                                         5985)}}
    executor = LocalExecutor(["a", "a-alias", "b", "c"], job, RunOptions(parallel=4, in_flight=2), None, None,
                             StopRequest())
    executor.flights["a"] = _Flight("a", ["04"])  # restarting
    executor.pending.remove("a")
    assert executor._next_new_host().host == "b"  # a-alias is the same Windows host, still in flight as "a"
    executor.flights["b"] = _Flight("b", ["01"])
    executor.pending.remove("b")
    assert executor._next_new_host() is None  # two in flight: the cap
    executor.polls.shutdown()


def test_a_restart_whose_answer_is_lost_is_proven_by_the_boot_time_and_the_host_goes_on_to_04(
        simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(["win7_wmf51"], base=150)
    nodes[0].host.drop_reboot_answer = True  # shutdown.exe takes the restart; the answer never gets out
    run = run_fleet(inventory, RunOptions(apply=True, reboot=True, parallel=1), tmp_path / "out",
                    notebooks_dir=NOTEBOOKS_DIR, secrets=[credential.password])
    assert run.exit_code == 0 and run.verify.ok, [(r.host, r.outcome, r.error) for r in run.rows]
    assert [r.outcome for r in run.rows] == ["fixed_after_reboot"] and nodes[0].host.reboots == 1
    host = run.root / "hosts" / nodes[0].name
    proof = json.loads((host / "reboot.json").read_text())
    assert proof["answer_lost"] is True and proof["state"] == "restarted"
    facts = json.loads((host / "facts-after.json").read_text())
    assert proof["last_boot_before"] == facts["os"]["last_boot"] < proof["last_boot_after"]
    notebook_03 = nbformat.read(host / "03_registry_remediation.ipynb", as_version=4)
    assert "but its answer was lost on the way back" in json.dumps(notebook_03.cells)
