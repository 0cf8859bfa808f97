"""Fleet throughput, three ways in one run, on the same kind of simulated fleet.

(a) bare pywinrm: the same WinRM operations the notebooks run for each host (each notebook reads the host; 03
    applies and reads back; 04 applies the session fix and reads again) with no notebooks, hosts in a thread pool
    of the same width as (c);
(b) naive loop: the papermill CLI once per host and notebook, one after another;
(c) ``tls-runbook run --parallel N``.

Each way gets a fresh fleet (the runbook changes hosts), with an injected per-request latency and a per-process
PowerShell start cost, so the work is shaped like real WinRM. Prints hosts per minute, peak memory of the process
tree and the ratios c/b and c/a.

    python benchmarks/fleet.py [--hosts 24] [--parallel 6] [--latency 0.02] [--ps-start 0.3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib.core.engine import assess  # noqa: E402
from runbook_lib.core.plan import RemediationPlan  # noqa: E402
from runbook_lib.remote.credentials import Credential  # noqa: E402
from runbook_lib.simulator.fleet import FleetProcess, write_inventory  # noqa: E402
from runbook_lib.simulator.profile import builtin_profile, builtin_profile_names  # noqa: E402
from runbook_lib.fleet.scheduler import BOOT_POLL_S  # noqa: E402
from runbook_lib.runbook.operations import apply_plan, inspect_host, session_fix  # noqa: E402
from runbook_lib.runbook.reboot import reboot_and_wait  # noqa: E402
from runbook_lib.remote.target import connect  # noqa: E402

NOTEBOOKS = ["01_cause", "02_os_check", "03_registry_remediation", "04_powershell_session_fix"]
USER = "bench-admin"


class PeakMemory:
    """Samples the RSS of a process tree (this process's by default) and keeps the largest sum. With ``pss=True``
    (Linux) it also keeps the largest sum of PSS, which counts a page shared by k processes as 1/k in each: the
    honest total for processes forked from one another, whose RSS sum counts shared pages again in every process.
    ``root`` is a callable giving the tree's root pid (None until it exists); ``exclude`` pids are left out with
    their own trees (a simulator measured apart)."""

    def __init__(self, interval: float = 0.2, pss: bool = False, root=None, exclude=()):
        self.interval, self.peak, self.peak_pss, self._stop = interval, 0, 0, threading.Event()
        self.pss, self.root, self.exclude = pss, root or os.getpid, set(exclude)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list:
        pid = self.root()
        if pid is None:
            return []
        try:
            top = psutil.Process(pid)
            excluded = {p.pid for e in self.exclude if psutil.pid_exists(e)
                        for p in [psutil.Process(e), *psutil.Process(e).children(recursive=True)]}
            return [p for p in [top, *top.children(recursive=True)] if p.pid not in excluded]
        except psutil.Error:
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            total = total_pss = 0
            for process in self._tree():
                try:
                    if self.pss:
                        info = process.memory_full_info()
                        total, total_pss = total + info.rss, total_pss + info.pss
                    else:
                        total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak, self.peak_pss = max(self.peak, total), max(self.peak_pss, total_pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def notebooks_remote_work(target, reboot: bool = False) -> None:
    """The WinRM operations notebooks 01-04 run for one host, in their order (as ``run --record`` shows them): each
    notebook reads the host itself, 03 applies and reads back (and schedules the restart, which the runner waits
    for), 04 reads the host, applies the session fix and reads again."""
    inspect_host(target)  # 01
    inspect_host(target)  # 02
    facts = inspect_host(target)  # 03
    apply_plan(target, RemediationPlan.from_verdict(assess(facts), facts), apply=True)
    inspect_host(target)
    if reboot:
        reboot_and_wait(target, poll_s=BOOT_POLL_S)
    inspect_host(target)  # 04
    session_fix(target, "bor")
    inspect_host(target)


def bare_pywinrm(nodes, password: str, parallel: int) -> None:
    credential = Credential(USER, password)

    def one(node) -> None:
        _, address, port = node
        notebooks_remote_work(connect(f"http://{address}:{port}/wsman", credential=credential))

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, nodes))


def naive_papermill_loop(inventory: Path, nodes, out: Path) -> None:
    papermill = str(Path(sys.executable).with_name("papermill"))
    for name, _, _ in nodes:
        folder = out / name
        folder.mkdir(parents=True)
        for notebook in NOTEBOOKS:
            subprocess.run([papermill, str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(folder / f"{notebook}.ipynb"),
                            "-p", "target", name, "-p", "inventory", str(inventory), "-p", "apply", "True",
                            "-p", "evidence_dir", str(folder), "--cwd", str(folder), "--no-progress-bar"],
                           check=False, capture_output=True)


def tls_runbook_run(inventory: Path, out: Path, parallel: int) -> None:
    command = [sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", str(inventory), "--apply",
               "--parallel", str(parallel), "--out", str(out), "--notebooks-dir", str(ROOT / "notebooks")]
    subprocess.run(command, check=False, capture_output=True)


def measure(label: str, profiles: list[str], password: str, args, work) -> dict:
    with FleetProcess(profiles, [(USER, password)], strict=True, boot_seconds=1.0, latency=args.latency,
                      process_start_s=args.ps_start) as nodes, tempfile.TemporaryDirectory() as folder:
        inventory = write_inventory(Path(folder) / "fleet.yml", nodes)
        with PeakMemory() as memory:
            start = time.perf_counter()
            work(nodes, inventory, Path(folder) / "out")
            seconds = time.perf_counter() - start
    row = {"way": label, "seconds": seconds, "hosts_per_min": len(nodes) * 60 / seconds,
           "peak_mb": memory.peak / 2**20}
    print(f"{label:34} {seconds:8.1f} s {row['hosts_per_min']:8.1f} hosts/min {row['peak_mb']:8.0f} MB peak",
          flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=24)
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every WinRM request")
    parser.add_argument("--ps-start", type=float, default=0.3, help="seconds every command pays to start PowerShell")
    args = parser.parse_args()
    names = [name for name in builtin_profile_names() if builtin_profile(name).intent != "failed"]  # runnable hosts
    profiles = [names[i % len(names)] for i in range(args.hosts)]
    password = secrets.token_urlsafe(16)
    os.environ["TLS_RUNBOOK_USER"], os.environ["TLS_RUNBOOK_PASSWORD"] = USER, password
    print(f"{args.hosts} simulated hosts, {args.latency * 1000:.0f} ms per request, {args.ps_start:.2f} s per "
          f"PowerShell start, {os.cpu_count()} CPUs, --parallel {args.parallel}", flush=True)
    a = measure("(a) bare pywinrm, no notebooks", profiles, password, args,
                lambda nodes, inventory, out: bare_pywinrm(nodes, password, args.parallel))
    b = measure("(b) naive papermill CLI loop", profiles, password, args,
                lambda nodes, inventory, out: naive_papermill_loop(inventory, nodes, out))
    c = measure(f"(c) tls-runbook run --parallel {args.parallel}", profiles, password, args,
                lambda nodes, inventory, out: tls_runbook_run(inventory, out, args.parallel))
    print(f"c/b = {c['hosts_per_min'] / b['hosts_per_min']:.2f}x faster than the naive loop")
    print(f"c/a = {c['hosts_per_min'] / a['hosts_per_min']:.2f} (the cost of notebooks over bare remote work)")


if __name__ == "__main__":
    main()
