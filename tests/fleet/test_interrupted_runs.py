"""A 6-host --apply run stopped by SIGINT or killed by SIGKILL at several points: the bundle is valid and partial,
every host that was changed has its rollback.reg and apply report in it, no worker or kernel is left, and
--resume finishes the rest (keeping the first apply's backup, so a rollback still restores the original)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conftest import FLEET_PROFILES
from runbook_lib.fleet import evidence

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


class WatchedRun:
    """``tls-runbook run`` in a subprocess, with every process it ever started remembered (psutil)."""

    def __init__(self, inventory: Path, out: Path):
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", str(inventory), "--apply",
             "--notebooks", "02,03", "--parallel", "3", "--out", str(out), "--notebooks-dir", str(NOTEBOOKS_DIR)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.seen: dict[int, psutil.Process] = {}

    def watch_until(self, condition, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, self.process.communicate()
            assert time.monotonic() < deadline, "the run never reached the point to interrupt it at"
            self.note_children()
            time.sleep(0.05)
        self.note_children()

    def note_children(self) -> None:
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.Error:
            pass

    @property
    def root(self) -> Path:
        [root] = [p for p in self.out.iterdir() if p.is_dir()]
        return root

    def has(self, pattern: str) -> bool:
        """Whether the run folder exists yet and holds a file matching ``pattern``."""
        folders = [p for p in self.out.iterdir() if p.is_dir()] if self.out.is_dir() else []
        return bool(folders) and any(folders[0].glob(pattern))

    def host_file(self, host: str, name: str) -> Path:
        return self.root / "hosts" / host / name

    def assert_nothing_left(self) -> None:
        """Every worker and kernel the run started is gone (a zombie runs no code: it only waits to be reaped)."""
        def gone(process: psutil.Process) -> bool:
            try:
                return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
            except psutil.Error:
                return True

        assert len(self.seen) >= 3, "the watch saw no workers: the test would prove nothing"
        deadline = time.monotonic() + 20
        while not all(gone(p) for p in self.seen.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [(p.pid, " ".join(p.cmdline())[-120:], p.status()) for p in self.seen.values() if not gone(p)]
        assert not left, f"processes outlived the runner: {left}"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def manifest(root: Path) -> dict:
    """The run as its bundle records it: the manifest and, while the run is unfinished, its hosts' seals."""
    return evidence.current_manifest(root)


def assert_valid_partial_bundle_with_every_change_backed_up(run: WatchedRun, nodes, originals) -> dict:
    verified = cli("evidence", "verify", run.root)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "run: PARTIAL" in verified.stdout and "signature: valid" in verified.stdout
    doc = manifest(run.root)
    assert doc["complete"] is False
    assert any(h["state"] != "done" for h in doc["hosts"])
    for node in nodes:
        if sorted(node.host.snapshot(), key=str) != sorted(originals[node.name], key=str):
            for evidence_file in ("rollback.reg", "apply-report.json"):
                assert run.host_file(node.name, evidence_file).is_file(), (node.name, evidence_file)
                assert f"hosts/{node.name}/{evidence_file}" in doc["files"], (node.name, evidence_file)
    return doc


def resume_and_finish(run: WatchedRun, nodes) -> dict:
    resumed = cli("run", "--resume", run.root, "--notebooks-dir", NOTEBOOKS_DIR)
    assert resumed.returncode in (0, 1), resumed.stderr[-3000:]  # 1: the fleet has a blocked host
    assert "Signed with the per-run key: SHA256:" in resumed.stdout
    doc = manifest(run.root)
    assert doc["complete"] is True and doc["state"] == "complete" and len(doc["resumes"]) == 1
    assert {h["state"] for h in doc["hosts"]} == {"done"}
    assert not {h["outcome"] for h in doc["hosts"]} & {"interrupted", "failed"}, doc["hosts"]
    assert cli("evidence", "verify", run.root).returncode == 0
    summary = json.loads((run.root / "summary.json").read_text())
    assert {row["host"] for row in summary["hosts"]} == {node.name for node in nodes}
    return doc


def wait_for_the_host_to_end_its_apply(node, timeout: float = 60) -> None:
    """WinRM shells outlive their client: the apply the runner gave the host goes on (or was stopped) on its own."""
    deadline = time.monotonic() + timeout
    while node.host.apply_running:
        assert time.monotonic() < deadline, f"{node.name} is still applying after {timeout} s"
        time.sleep(0.05)


def pending_apply(run: WatchedRun, host: str) -> bool:
    try:
        return json.loads(run.host_file(host, "apply-report.json").read_text()).get("pending") is True
    except (OSError, ValueError, StopIteration):
        return False


def test_sigkill_during_an_apply_leaves_the_apply_id_and_resume_reads_the_hosts_journal(
        simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(FLEET_PROFILES, base=100)
    originals = {node.name: node.host.snapshot() for node in nodes}
    stalled = nodes[1]  # ws2016_untouched: eight .NET values
    stalled.host.apply_value_s = 0.4  # a slow host: a pause after each value, which the runner dies in
    run = WatchedRun(inventory, tmp_path / "out")
    # killed once the host has the apply: a kill before the command reaches it is the "did not start" case
    run.watch_until(lambda: pending_apply(run, stalled.name) and stalled.host.apply_running)
    run.process.send_signal(signal.SIGKILL)
    run.process.wait(10)
    run.assert_nothing_left()
    wait_for_the_host_to_end_its_apply(stalled)
    assert_valid_partial_bundle_with_every_change_backed_up(run, nodes, originals)
    first_apply = json.loads(run.host_file(stalled.name, "apply-report.json").read_text())["apply_id"]

    resume_and_finish(run, nodes)
    report = json.loads(run.host_file(stalled.name, "apply-report.json").read_text())
    [earlier] = report["earlier_applies"]
    assert earlier["apply_id"] == first_apply and earlier["recovered_from_journal"] and earlier["completed"]
    assert earlier["file"] == "attempt-1/apply-report.json"
    assert first_apply in next(h for h in manifest(run.root)["hosts"] if h["name"] == stalled.name)["apply_ids"]
    assert sorted(stalled.host.snapshot(), key=str) != sorted(originals[stalled.name], key=str)
    rolled_back = cli("rollback", "--evidence", run.root, "--host", stalled.name, "--inventory", inventory, "--apply")
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert sorted(stalled.host.snapshot(), key=str) == sorted(originals[stalled.name], key=str)


def test_sigkill_while_the_first_notebooks_run_leaves_a_resumable_bundle(simulated_fleet, credential, tmp_path):
    nodes, inventory = simulated_fleet(FLEET_PROFILES, base=110)
    originals = {node.name: node.host.snapshot() for node in nodes}
    run = WatchedRun(inventory, tmp_path / "out")
    run.watch_until(lambda: run.has("hosts/*/02_os_check.ipynb"))
    run.process.send_signal(signal.SIGKILL)
    run.process.wait(10)
    run.assert_nothing_left()
    doc = assert_valid_partial_bundle_with_every_change_backed_up(run, nodes, originals)
    assert {h["state"] for h in doc["hosts"]} <= {"pending", "interrupted"}
    resume_and_finish(run, nodes)


def test_ctrl_c_lets_running_hosts_finish_their_notebook_and_starts_no_new_host(simulated_fleet, credential,
                                                                                 tmp_path):
    nodes, inventory = simulated_fleet(FLEET_PROFILES, base=120)
    originals = {node.name: node.host.snapshot() for node in nodes}
    run = WatchedRun(inventory, tmp_path / "out")
    run.watch_until(lambda: run.has("hosts/*/apply-report.json"))
    run.process.send_signal(signal.SIGINT)
    _, stderr = run.process.communicate(timeout=120)
    assert run.process.returncode == 130, stderr[-2000:]
    assert "finish the notebook they are in" in stderr and f"--resume {run.root}" in stderr
    run.assert_nothing_left()
    doc = assert_valid_partial_bundle_with_every_change_backed_up(run, nodes, originals)
    states = {h["name"]: h["state"] for h in doc["hosts"]}
    assert "pending" in states.values(), "hosts queued behind the running ones must not start"
    for host, state in states.items():  # a host that got as far as 03 finished it: no apply left half-recorded
        if run.host_file(host, "apply-report.json").exists():
            assert not pending_apply(run, host)
    resume_and_finish(run, nodes)


def test_a_second_ctrl_c_stops_running_hosts_at_once_and_records_them_interrupted(simulated_fleet, credential,
                                                                                  tmp_path):
    nodes, inventory = simulated_fleet(FLEET_PROFILES, base=130)
    originals = {node.name: node.host.snapshot() for node in nodes}
    stalled = nodes[1]
    stalled.host.apply_value_s = 0.4
    run = WatchedRun(inventory, tmp_path / "out")
    run.watch_until(lambda: pending_apply(run, stalled.name) and stalled.host.apply_running)
    run.process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    run.process.send_signal(signal.SIGINT)
    _, stderr = run.process.communicate(timeout=60)
    assert run.process.returncode == 130, stderr[-2000:]
    run.assert_nothing_left()
    wait_for_the_host_to_end_its_apply(stalled)
    doc = assert_valid_partial_bundle_with_every_change_backed_up(run, nodes, originals)
    record = next(h for h in doc["hosts"] if h["name"] == stalled.name)
    assert record["state"] == "interrupted" and "stopped by the operator" in record["error"]
    resume_and_finish(run, nodes)
