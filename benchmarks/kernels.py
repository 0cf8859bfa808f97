"""Kernel starts the normal way and forked from the template (runbook_lib.kernels), side by side in one run.

(old) jupyter_client's AsyncKernelManager: a new Python process per kernel, importing everything itself;
(new) runbook_lib.kernels.ForkingKernelManager: a fork of the template, which has imported it all once.

Each way starts N kernels one after another and keeps them running, as N hosts in flight would; each kernel runs
what every runbook notebook runs first (``from runbook_lib import notebook as nb``). Prints the time per kernel
start (until that first cell is done), the peak memory of this process tree while the N kernels live (RSS sum; on
Linux also PSS sum, which counts shared pages once, and that PSS less this process's, per kernel) and the ratios.
The template is included in the new way's memory and its start reported apart, since a fleet run pays it once. ``--notebooks M`` also runs notebook 01 headless
through papermill M times each way (built-in simulated host). The ways alternate over ``--rounds`` so load from
elsewhere on the machine falls on both.

    python benchmarks/kernels.py [--kernels 8] [--rounds 2] [--notebooks 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from fleet import PeakMemory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_client.manager import AsyncKernelManager  # noqa: E402

from runbook_lib.kernels import ForkingKernelManager, shared_template  # noqa: E402

FIRST_CELL = "from runbook_lib import notebook as nb"
WAYS = {"old": AsyncKernelManager, "new": ForkingKernelManager}


async def start_and_stop(manager_class: type, count: int, memory: PeakMemory) -> list[float]:
    kept, seconds = [], []
    for _ in range(count):
        started = time.perf_counter()
        manager = manager_class(kernel_name="python3")
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=120)
        reply = await client.execute_interactive(FIRST_CELL, timeout=120)
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"the first cell failed in a {manager_class.__name__} kernel: {reply['content']}")
        seconds.append(time.perf_counter() - started)
        kept.append((manager, client))
    await asyncio.sleep(3 * memory.interval)  # let the sampler see all of them at once
    for manager, client in kept:
        client.stop_channels()
        await manager.shutdown_kernel()
    return seconds


def kernels_way(way: str, count: int) -> dict:
    linux = sys.platform.startswith("linux")
    this_process = psutil.Process().memory_full_info().pss if linux else 0
    with PeakMemory(interval=0.1, pss=linux) as memory:
        template_s = 0.0
        if way == "new":
            started = time.perf_counter()
            with shared_template():
                template_s = time.perf_counter() - started
                seconds = asyncio.run(start_and_stop(WAYS[way], count, memory))
        else:
            seconds = asyncio.run(start_and_stop(WAYS[way], count, memory))
    return {"seconds": seconds, "template_s": template_s, "rss": memory.peak, "pss": memory.peak_pss,
            "pss_per_kernel": (memory.peak_pss - this_process) / count if linux else 0}


def notebooks_way(way: str, count: int, folder: Path) -> list[float]:
    import papermill

    options = {"kernel_manager_class": WAYS[way]} if way == "new" else {}
    seconds = []
    with shared_template() if way == "new" else contextlib.nullcontext():
        for index in range(count):
            output = folder / f"{way}-{index}" / "01_cause.ipynb"
            output.parent.mkdir(parents=True)
            started = time.perf_counter()
            papermill.execute_notebook(str(ROOT / "notebooks" / "01_cause.ipynb"), str(output),
                                       parameters={"simulator_profile": "ws2022_healthy",
                                                   "evidence_dir": str(output.parent / "evidence")},
                                       kernel_name="python3", progress_bar=False, cwd=str(output.parent), **options)
            seconds.append(time.perf_counter() - started)
    return seconds


def _mb(value: float) -> str:
    return f"{value / 2**20:7.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=8, help="kernels alive at once, per way and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs both ways, alternating the order")
    parser.add_argument("--notebooks", type=int, default=3, help="headless runs of notebook 01 per way and round")
    args = parser.parse_args()
    os.environ.setdefault("TLS_RUNBOOK_INTERACTIVE", "0")
    print(f"{args.kernels} kernels per way and round, {args.rounds} round(s), {os.cpu_count()} CPUs; "
          f"first cell: {FIRST_CELL}", flush=True)
    starts = {way: [] for way in WAYS}
    peaks = {way: {"rss": 0, "pss": 0, "pss_per_kernel": 0} for way in WAYS}
    templates, notebooks = [], {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as folder:
        for round_number in range(args.rounds):
            order = list(WAYS) if round_number % 2 == 0 else list(reversed(WAYS))
            for way in order:
                row = kernels_way(way, args.kernels)
                starts[way] += row["seconds"]
                peaks[way] = {k: max(peaks[way][k], row[k]) for k in peaks[way]}
                if way == "new":
                    templates.append(row["template_s"])
                print(f"round {round_number + 1} {way}: {statistics.median(row['seconds']):.3f} s per kernel "
                      f"(median), peak RSS sum {_mb(row['rss'])}, PSS sum {_mb(row['pss'])}", flush=True)
                if args.notebooks:
                    notebooks[way] += notebooks_way(way, args.notebooks, Path(folder) / f"round{round_number}")
    print()
    print(f"{'':44}{'old (new process)':>20}{'new (forked)':>16}{'old/new':>10}")
    old, new = statistics.median(starts["old"]), statistics.median(starts["new"])
    print(f"{'kernel start to first cell done, median':44}{old:18.3f} s{new:14.3f} s{old / new:9.1f}x")
    old, new = statistics.mean(starts["old"]), statistics.mean(starts["new"])
    print(f"{'kernel start to first cell done, mean':44}{old:18.3f} s{new:14.3f} s{old / new:9.1f}x")
    if notebooks["old"]:
        old, new = statistics.median(notebooks["old"]), statistics.median(notebooks["new"])
        print(f"{'notebook 01 headless (papermill), median':44}{old:18.3f} s{new:14.3f} s{old / new:9.1f}x")
    for metric in ("rss", "pss"):
        if peaks["old"][metric]:
            old, new = peaks["old"][metric], peaks["new"][metric]
            print(f"{f'peak {metric.upper()} sum, {args.kernels} kernels alive':44}{_mb(old):>20}{_mb(new):>16}"
                  f"{old / new:9.1f}x")
    if peaks["old"]["pss_per_kernel"]:
        old, new = peaks["old"]["pss_per_kernel"], peaks["new"]["pss_per_kernel"]
        print(f"{'PSS per kernel (tree minus this process) / N':44}{_mb(old):>20}{_mb(new):>16}{old / new:9.1f}x")
    print(f"template start (once per run, in the new way's memory): {statistics.median(templates):.2f} s median")


if __name__ == "__main__":
    main()
