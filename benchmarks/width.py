"""Width: N hosts that all need a restart, all allowed in flight, two ways in one run on the same kind of fleet.

(a) bare pywinrm: the same WinRM operations the notebooks run for each host (benchmarks/fleet.py), the restart and
    the wait for the new boot time included (polled as often as the runner polls), every host in a thread of its
    own: the floor;
(b) ``tls-runbook run --apply --reboot`` with its defaults (``--parallel`` from the machine, no in-flight limit).

Each way gets a fresh simulated fleet (boot time ``--boot``, a per-request latency and a PowerShell start cost).
Prints wall time and the ratio b/a, the peak memory of each way's process tree (PSS, which counts pages shared
between forked kernels once; the simulator measured apart) and the evidence bytes per host.

    python benchmarks/width.py [--hosts 200] [--boot 60] [--latency 0.02] [--ps-start 0.3]
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from fleet import PeakMemory, notebooks_remote_work

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib.remote.credentials import Credential  # noqa: E402
from runbook_lib.remote.target import connect  # noqa: E402
from runbook_lib.simulator.fleet import FleetProcess, write_inventory  # noqa: E402

USER = "bench-admin"
PROFILE = "win7_wmf51"  # needs Schannel values, so a restart
MB = 1024 * 1024


def bare(nodes, password: str, _inventory: Path, _out: Path, _started: list) -> None:
    credential = Credential(USER, password)

    def one(node) -> None:
        _, address, port = node
        notebooks_remote_work(connect(f"http://{address}:{port}/wsman", credential=credential), reboot=True)

    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(one, nodes))


def runbook(_nodes, _password: str, inventory: Path, out: Path, started: list, parallel: int | None = None) -> int:
    command = [sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", str(inventory), "--apply", "--reboot",
               "--out", str(out), "--notebooks-dir", str(ROOT / "notebooks"),
               *(["--parallel", str(parallel)] if parallel else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started.append(process.pid)
    stdout, stderr = process.communicate()
    reason = next((line for line in stderr.splitlines() if "chosen from this machine" in line), "")
    print(f"    {reason}", flush=True)
    summary = [line for line in stdout.splitlines() if " host(s): " in line]
    print(f"    {summary[-1] if summary else stderr[-500:]}", flush=True)
    return process.returncode


def evidence_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def measure(label: str, args, password: str, work) -> dict:
    fleet = FleetProcess([PROFILE] * args.hosts, [(USER, password)], strict=True, boot_seconds=args.boot,
                         latency=args.latency, process_start_s=args.ps_start)
    with fleet as nodes, tempfile.TemporaryDirectory() as folder:
        inventory = write_inventory(Path(folder) / "fleet.yml", nodes)
        out = Path(folder) / "out"
        started: list[int] = []  # the runbook's process, once it exists; the bare way runs in this one
        root = None if work is bare else (lambda: started[0] if started else None)
        with PeakMemory(interval=0.5, pss=True, root=root, exclude=[fleet.pid]) as memory, \
                PeakMemory(interval=2.0, pss=True, root=lambda: fleet.pid) as simulator_memory:
            start = time.perf_counter()
            work(nodes, password, inventory, out, started)
            seconds = time.perf_counter() - start
            simulator_cpu = sum(psutil.Process(fleet.pid).cpu_times()[:2])
        per_host = evidence_bytes(out) / args.hosts if out.exists() else 0
    print(f"{label:44} {seconds:8.1f} s  peak {memory.peak_pss / MB:7.0f} MB PSS ({memory.peak / MB:.0f} MB RSS)"
          f"  simulator {simulator_memory.peak_pss / MB:.0f} MB {simulator_cpu:.0f} CPU-s  evidence {per_host / 1024:.0f} KB/host", flush=True)
    return {"seconds": seconds, "peak_pss": memory.peak_pss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--boot", type=float, default=60.0, help="seconds a simulated restart keeps WinRM away")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every WinRM request")
    parser.add_argument("--ps-start", type=float, default=0.3, help="seconds every command pays to start PowerShell")
    parser.add_argument("--parallel", type=int, help="passed to run (default: the run chooses from the machine)")
    parser.add_argument("--only-run", action="store_true", help="skip the bare way (when tuning the run)")
    args = parser.parse_args()
    password = secrets.token_urlsafe(16)
    os.environ["TLS_RUNBOOK_USER"], os.environ["TLS_RUNBOOK_PASSWORD"] = USER, password
    print(f"{args.hosts} simulated hosts that all need a restart (boot {args.boot:g} s), all in flight; "
          f"{args.latency * 1000:.0f} ms per request, {args.ps_start:.2f} s per PowerShell start, "
          f"{os.cpu_count()} CPUs", flush=True)
    b_way = functools.partial(runbook, parallel=args.parallel)
    if args.only_run:
        measure("(b) tls-runbook run --apply --reboot", args, password, b_way)
        return
    a = measure("(a) bare pywinrm, a thread per host", args, password, bare)
    b = measure("(b) tls-runbook run --apply --reboot", args, password, b_way)
    print(f"b/a = {b['seconds'] / a['seconds']:.2f} (wall time of the runbook over the bare remote work; "
          f"{b['seconds'] / args.boot:.1f}x the boot time)")


if __name__ == "__main__":
    main()
