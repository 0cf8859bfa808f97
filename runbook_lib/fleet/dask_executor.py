"""Hosts on a dask cluster (``--executor dask``): each host's chain is one task, whose kernel waits through a
restart (the local executor, :mod:`.scheduler`, holds nothing while a host restarts). A host's record reaches the
bundle as soon as it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import supervision
from .bundle import LiveBundle
from ..core.errors import InputError, RunbookError, one_line
from .host_chain import run_host, summarise_host
from .options import RunOptions
from .scheduler import first_free_host
from .workers import host_record

if TYPE_CHECKING:
    from .progress import Progress


def run_dask(hosts: list[str], job: dict, options: RunOptions, progress: Progress, live: LiveBundle,
             stop: supervision.StopRequest) -> dict[str, dict]:
    """Hosts as Dask tasks (the workers must see the bundle folder). A stop cancels what has not finished: a local
    cluster's workers end with it, a remote scheduler's workers finish the notebook they are in."""
    try:
        from distributed import Client, LocalCluster, wait as wait_futures
        from distributed import TimeoutError as DaskTimeout
    except ImportError:
        raise InputError("--executor dask needs the dask extra: pip install 'tls-runbook[dask]'") from None
    cluster = None if options.scheduler else LocalCluster(n_workers=options.parallel, threads_per_worker=1,
                                                          processes=True, dashboard_address=None)
    root = Path(job["root"])
    results: dict[str, dict] = {}
    remaining: dict = {}
    try:
        try:
            client = Client(options.scheduler or cluster)
        except OSError as exc:  # distributed says "Timed out trying to connect to ..." and names the address
            raise RunbookError(f"cannot reach the Dask scheduler: {one_line(str(exc), 200)}") from None
        with client:
            pending = list(hosts)

            def submit_next() -> None:
                host = first_free_host(pending, remaining.values(), job["winrm_endpoints"])
                if host is not None:
                    pending.remove(host)
                    remaining[client.submit(run_host, host, job["inventory"], job["folder"], job["root"],
                                            job["options"], pure=False)] = host
                    live.seal_hosts({host: {"state": "running"}})

            for _ in hosts:
                submit_next()
            while (remaining or pending) and not stop.level:
                try:
                    done, _ = wait_futures(list(remaining), timeout=0.5, return_when="FIRST_COMPLETED")
                except DaskTimeout:
                    continue
                for future in done:
                    host = remaining.pop(future)
                    try:
                        results[host] = future.result()
                    except Exception as exc:  # noqa: BLE001 - one host's failure never stops the fleet
                        results[host] = summarise_host(host, root / "hosts" / host, "host",
                                                       f"{type(exc).__name__}: {exc}"[:300], None)
                    live.seal_hosts({host: host_record(results[host])}, finished=True)
                    progress.update(host, "done" if results[host]["outcome"] != "failed" else "host",
                                    results[host]["outcome"])
                    submit_next()
            if remaining:
                client.cancel(list(remaining))
    finally:
        if cluster is not None:
            cluster.close()
    for host in [*remaining.values(), *pending]:
        results[host] = summarise_host(host, root / "hosts" / host, "", "stopped by the operator", None,
                                       interrupted=True)
        live.seal_hosts({host: host_record(results[host])}, finished=True)
    return results
