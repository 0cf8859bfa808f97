"""Where the host chains run: local worker processes (one per host, at most one per WinRM endpoint at a time, each
stoppable in two steps) or a dask cluster. Either way a host's record reaches the bundle as soon as it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
import contextlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from multiprocessing.connection import Connection, wait

from . import canary, evidence, supervision
from .bundle import LiveBundle
from ..core.errors import InputError, RunbookError, one_line
from .host_chain import run_host, summarise_host, write_lock, writes_frozen
from .options import RunOptions
from .signing import SigningKey

if TYPE_CHECKING:
    from .runner import Progress


def host_record(row: dict) -> dict:
    """A host's entry in the manifest: its state, the outcome fields an auditor reads first, and its summary row.
    A host a stop or a canary kept from finishing is not done, so ``--resume`` runs it."""
    state = row["outcome"] if row["outcome"] in ("interrupted", canary.NOT_RUN) else "done"
    return {"state": state, "outcome": row["outcome"], "failed_notebook": row["failed_notebook"],
            "error": row["error"], "summary": row}


def _worker(job: dict, control, events) -> None:
    """One host in its own process (and process group), on a leash to the runner (see :mod:`.supervision`)."""
    if hasattr(os, "setsid"):
        os.setsid()  # Ctrl-C in the terminal reaches the runner only; the runner decides what the workers do
    # A SIGTERM before the guard is in place (the runner died while this worker started) waits for the guard, which
    # records the host; delivered at once it would end the worker with the host still "running" in the manifest.
    held = {signal.SIGTERM} if hasattr(signal, "pthread_sigmask") else set()
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    supervision.die_with_parent(job["runner_pid"])
    host = job["host"]
    host_dir = Path(job["root"]) / "hosts" / host
    live = LiveBundle(Path(job["root"]), SigningKey.from_raw(job["key"], job["key_origin"]))
    scrubber = evidence.Scrubber(job["secrets"])
    log = Path(tempfile.mkdtemp(prefix="tls-runbook-")) / "kernels.log"
    with log.open("ab") as handle:  # kernels inherit this stderr; the log enters the bundle scrubbed
        os.dup2(handle.fileno(), 2)
    current = {"notebook": ""}

    def keep_log() -> None:
        """The kernels' log into the bundle (its last 4 MiB, scrubbed); the raw copy is deleted."""
        with contextlib.suppress(OSError):
            evidence.write_scrubbed(host_dir / "kernels.log", log.read_bytes()[-MAX_LOG_BYTES:], scrubber)
        shutil.rmtree(log.parent, ignore_errors=True)

    def abandon(why: str) -> None:
        writes_frozen.set()
        supervision.kill_children()
        write_lock.acquire(timeout=2)  # held longer only by a thread parked in this guard: its write never ends
        keep_log()
        row = summarise_host(host, host_dir, "", f"{why} during {current['notebook'] or 'start'}", None,
                             interrupted=True)
        live.update(hosts={host: host_record(row)}, finished=True)
        supervision.kill_children()  # a kernel the main thread was starting meanwhile

    guard = supervision.WorkerGuard(control, abandon).start()
    if held:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def send(message: tuple) -> None:
        try:
            events.send(message)
        except OSError:  # nobody reads: the runner is gone
            guard.abandon("the runner stopped")

    def report_progress(h: str, step: str, status: str) -> None:
        current["notebook"] = step
        send(("progress", h, step, status))

    row = run_host(host, job["inventory"], job["folder"], job["root"], job["options"], report_progress,
                   secrets=job["secrets"], should_stop=lambda: guard.stop_requested)
    guard.settle()
    keep_log()
    live.update(hosts={host: host_record(row)}, finished=True)  # recorded even if the runner dies right now
    send(("result", host, row, None))


MAX_LOG_BYTES = 4 * 1024 * 1024


@dataclass
class _Running:
    process: multiprocessing.Process
    control: Connection
    events: Connection
    deadline: float
    result: dict | None = None


def _next_host(pending: list[str], busy: set, endpoints: dict[str, tuple]) -> str | None:
    """The first pending host whose endpoint no running host shares: one Windows host listed under two names is
    worked on by one process at a time, so the fleet never holds more of its WinRM shells than one run does
    (WinRM 2.0 allows a user 5)."""
    for host in pending:
        if endpoints.get(host, host) not in busy:
            pending.remove(host)
            return host
    return None


def run_local(hosts: list[str], job: dict, options: RunOptions, progress: Progress, live: LiveBundle,
              stop: supervision.StopRequest) -> dict[str, dict]:
    context = multiprocessing.get_context("spawn")
    pending, running, results, told = list(hosts), {}, {}, 0
    root = Path(job["root"])
    while pending or running:
        while pending and len(running) < options.parallel and not stop.level:
            endpoints = job["winrm_endpoints"]
            host = _next_host(pending, {endpoints.get(h, h) for h in running}, endpoints)
            if host is None:
                break
            control_reader, control_writer = context.Pipe(duplex=False)
            events_reader, events_writer = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=({**job, "host": host}, control_reader, events_writer),
                                      name=f"tls-runbook {host}", daemon=False)
            live.update(hosts={host: {"state": "running"}})
            process.start()
            control_reader.close()  # the runner keeps only the sending end: its death is the worker's EOF
            events_writer.close()
            running[host] = _Running(process, control_writer, events_reader, time.monotonic() + options.timeout_s)
        if stop.level and pending:
            for host in pending:
                results[host] = summarise_host(host, root / "hosts" / host, "", "not started: the run was stopped",
                                               [], interrupted=True)
                progress.update(host, "not started", "interrupted")
            pending.clear()
        if stop.level > told:
            told = stop.level
            for worker in running.values():
                with contextlib.suppress(OSError):
                    worker.control.send(supervision.STOP_AFTER_NOTEBOOK if told == 1 else supervision.STOP_NOW)
        ready = wait([worker.events for worker in running.values()], timeout=0.5)
        for host, worker in list(running.items()):
            if worker.events in ready or not worker.process.is_alive():
                _drain(worker, host, progress)
            timed_out = time.monotonic() > worker.deadline
            if worker.result is None and worker.process.is_alive() and not timed_out:
                continue
            if worker.result is None and timed_out:
                _stop_worker(worker, ask=True)
                row = summarise_host(host, root / "hosts" / host, "host",
                                     f"timed out after {options.timeout_s:g} s", None)
            elif worker.result is None:
                worker.process.join(5)
                stopped = worker.process.exitcode == 3  # the worker recorded its host as stopped, then exited
                row = summarise_host(host, root / "hosts" / host, "" if stopped else "host",
                                     "stopped by the operator" if stopped else "worker died", None,
                                     interrupted=stopped)
            else:
                row = worker.result
            _stop_worker(worker, ask=False)
            running.pop(host)
            results[host] = row
            live.update(hosts={host: host_record(row)}, finished=True)
            if worker.result is None:
                progress.update(host, "host", row["outcome"])
    return results


def _drain(worker: _Running, host: str, progress: Progress) -> None:
    with contextlib.suppress(EOFError, OSError):
        while worker.events.poll():
            kind, _, first, second = worker.events.recv()
            if kind == "progress":
                progress.update(host, first, second)
            else:
                worker.result = first


def _stop_worker(worker: _Running, ask: bool) -> None:
    """Make sure the worker has ended: ``ask`` it to stop first (it kills its kernels and records its host), or
    just give it time to exit after its result."""
    if worker.process.is_alive():
        if ask:
            with contextlib.suppress(OSError):
                worker.control.send(supervision.STOP_NOW)
        worker.process.join(15)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(5)
    for connection in (worker.control, worker.events):
        connection.close()


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
                endpoints = job["winrm_endpoints"]
                host = _next_host(pending, {endpoints.get(h, h) for h in remaining.values()}, endpoints)
                if host is not None:
                    remaining[client.submit(run_host, host, job["inventory"], job["folder"], job["root"],
                                            job["options"], pure=False)] = host
                    live.update(hosts={host: {"state": "running"}})

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
                    live.update(hosts={host: host_record(results[host])}, finished=True)
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
        live.update(hosts={host: host_record(results[host])}, finished=True)
    return results
