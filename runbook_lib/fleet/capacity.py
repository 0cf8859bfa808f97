"""How many notebooks a run executes at once when the operator does not say: chosen from this machine.

A running notebook costs a worker process and a kernel (about 250 MB between them before pages are shared) and
spends most of its time waiting on WinRM, so a few per CPU keep the CPUs busy. A host waiting for its restart costs
neither, so the number of hosts in flight is not the machine's business: it is limited by the hosts and by
``--in-flight``.
"""

from __future__ import annotations

import os

import psutil

NOTEBOOKS_PER_CPU = 8
MB_PER_NOTEBOOK = 250
MB = 1024 * 1024


def machine_parallel(hosts: int, maximum: int) -> tuple[int, str]:
    """The number of notebooks to run at once, and the reason in one line for the operator."""
    cpus = os.cpu_count() or 1
    available_mb = psutil.virtual_memory().available // MB
    by_cpu, by_memory = cpus * NOTEBOOKS_PER_CPU, max(1, available_mb // MB_PER_NOTEBOOK)
    chosen = max(1, min(by_cpu, by_memory, maximum, hosts))
    limits = {by_cpu: f"{cpus} CPU(s) x {NOTEBOOKS_PER_CPU} (a notebook mostly waits on WinRM)",
              by_memory: f"{available_mb / 1024:.1f} GB available / about {MB_PER_NOTEBOOK} MB per running notebook",
              maximum: f"the most --parallel allows ({maximum})", hosts: f"{hosts} host(s) to run"}
    return chosen, (f"--parallel {chosen} chosen from this machine: {limits[chosen]} "
                    f"[{cpus} CPU(s), {available_mb / 1024:.1f} GB available]; hosts waiting for a restart hold no "
                    "notebook, so every host may be in flight (--in-flight limits that)")
