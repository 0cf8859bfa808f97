"""The local executor: hosts in flight as states in one event loop, notebooks on a few worker processes.

A host's chain runs in jobs on the worker pool (:mod:`.workers`): its notebooks up to a restart that notebook 03
scheduled, then, once the host reports a new boot time, the rest. While it restarts the host is only an entry
here: a boot watch polled with one short WinRM call every few seconds from a small thread pool. So the number of
hosts in flight is bounded by the hosts and ``--in-flight``, and only the notebooks running at once
(``--parallel``) cost processes and memory.

One Windows host listed under two names is in flight under one name at a time, so the fleet never holds more of
its WinRM shells than one run does (WinRM 2.0 allows a user 5) and never restarts it under a running notebook.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING

from . import evidence, supervision
from .bundle import LiveBundle
from ..core.errors import RunbookError, one_line
from .host_chain import read_evidence, summarise_host
from .options import APPLY_NOTEBOOK, NOTEBOOKS, RunOptions
from ..runbook.reboot import EVIDENCE_FILE as REBOOT_FILE, BootWatch, RebootReport, ScheduledReboot
from .workers import Worker, host_record, worker_context

if TYPE_CHECKING:
    from .progress import Progress

BOOT_POLL_S = 5.0  # a real restart takes minutes; one short WinRM call per waiting host this often
BOOT_POLL_THREADS = 16


@dataclass
class _Flight:
    """One host between its first job and its summary row."""

    host: str
    notebooks: list[str]
    watch: BootWatch | None = None
    next_poll: float = 0.0
    poll: Future | None = None
    target: object | None = field(default=None, repr=False)


class LocalExecutor:
    def __init__(self, hosts: list[str], job: dict, options: RunOptions, progress: Progress, live: LiveBundle,
                 stop: supervision.StopRequest):
        self.job = {**job, "environ": dict(os.environ)}  # the kernel template's address included
        self.options, self.progress, self.live, self.stop = options, progress, live, stop
        self.root = Path(job["root"])
        self.scrubber = evidence.Scrubber(job["secrets"])
        self.pending = list(hosts)  # not started yet
        self.ready: list[_Flight] = []  # in flight, back from a restart, waiting for a worker
        self.waiting: dict[str, _Flight] = {}  # in flight, restarting
        self.flights: dict[str, _Flight] = {}
        self.workers: list[Worker] = []
        self.results: dict[str, dict] = {}
        self.context = worker_context()
        self.polls = ThreadPoolExecutor(BOOT_POLL_THREADS, thread_name_prefix="boot-watch")
        self.told = 0

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, dict]:
        try:
            while self.pending or self.flights:
                self._dispatch()
                self._poll_boots()
                self._on_stop()
                busy = [w for w in self.workers if w.host is not None]
                ready = wait([w.events for w in busy] + [w.process.sentinel for w in busy], timeout=self._sleep())
                for worker in busy:
                    if worker.events in ready or worker.process.sentinel in ready or \
                            time.monotonic() > worker.deadline:
                        self._collect(worker)
        finally:
            self.polls.shutdown(wait=True, cancel_futures=True)
            for worker in self.workers:
                worker.stop(ask=worker.host is not None)
        return self.results

    def _sleep(self) -> float:
        soon = [f.next_poll for f in self.waiting.values() if f.poll is None]
        wake = min(soon, default=time.monotonic() + 0.5)
        return max(0.05, min(0.5, wake - time.monotonic()))

    # --- hosts onto workers -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Idle workers (started up to ``--parallel``) take hosts back from a restart first, then new hosts in
        inventory order while ``--in-flight`` allows, one name per WinRM endpoint."""
        while not self.stop.level:
            flight = self.ready[0] if self.ready else self._next_new_host()
            if flight is None:
                return
            worker = next((w for w in self.workers if w.host is None), None)
            if worker is None and len(self.workers) < self.options.parallel:
                worker = Worker.start(self.context, self.job, len(self.workers) + 1)
                self.workers.append(worker)
            if worker is None:
                return
            if self.ready and self.ready[0] is flight:
                self.ready.pop(0)
            else:
                self.pending.remove(flight.host)
                self.flights[flight.host] = flight
            worker.give(flight.host, flight.notebooks, self.options.timeout_s)

    def _next_new_host(self) -> _Flight | None:
        if len(self.flights) >= (self.options.in_flight or len(self.pending) + len(self.flights)):
            return None
        host = first_free_host(self.pending, self.flights, self.job["winrm_endpoints"])
        return None if host is None else _Flight(host, list(self.options.notebooks))

    # --- a worker's job ends ----------------------------------------------------------------------------------
    def _collect(self, worker: Worker) -> None:
        host = worker.host
        assert host is not None
        worker.drain()
        for line in worker.progress:
            self.progress.update(*line)
        worker.progress.clear()
        if worker.result is None and worker.process.is_alive() and time.monotonic() <= worker.deadline:
            return
        sealed = worker.result is not None  # the worker sealed this record before it sent it
        if sealed:
            row = worker.result
            worker.host = None
        else:
            row = self._lost_worker(worker, host)
            self.workers.remove(worker)
        if row.get("awaiting_reboot"):
            self._await_restart(host)
        else:
            self._finish(host, row, sealed=sealed)

    def _lost_worker(self, worker: Worker, host: str) -> dict:
        """The worker died or ran past the host's time limit; it is replaced by a new one when needed."""
        timed_out = worker.process.is_alive()
        worker.stop(ask=timed_out)
        if timed_out:
            error, failed, interrupted = f"timed out after {self.options.timeout_s:g} s", "host", False
        elif worker.process.exitcode == 3:  # the worker recorded its host as stopped, then exited
            error, failed, interrupted = "stopped by the operator", "", True
        else:
            error, failed, interrupted = "worker died", "host", False
        row = summarise_host(host, self.root / "hosts" / host, failed, error, None, interrupted=interrupted)
        self.progress.update(host, "host", row["outcome"])
        return row

    def _finish(self, host: str, row: dict, sealed: bool = False) -> None:
        self.flights.pop(host, None)
        self.waiting.pop(host, None)
        self.results[host] = row
        if not sealed:
            self.live.seal_hosts({host: host_record(row)}, finished=True)

    # --- restarts -------------------------------------------------------------------------------------------
    def _await_restart(self, host: str) -> None:
        flight = self.flights[host]
        flight.notebooks = [number for number in flight.notebooks if number > APPLY_NOTEBOOK]  # 03 scheduled it
        try:
            scheduled = ScheduledReboot.from_json(read_evidence(self.root / "hosts" / host / REBOOT_FILE))
        except (KeyError, TypeError, ValueError) as exc:
            self._restart_failed(flight, f"reboot.json unreadable: {one_line(str(exc), 120)}")
            return
        flight.watch = BootWatch(scheduled)
        flight.next_poll = time.monotonic() + scheduled.delay_s + 1
        self.waiting[host] = flight

    def _poll_boots(self) -> None:
        now = time.monotonic()
        for flight in list(self.waiting.values()):
            if flight.poll is None and now >= flight.next_poll:
                flight.poll = self.polls.submit(self._check_boot, flight)
            elif flight.poll is not None and flight.poll.done():
                poll, flight.poll = flight.poll, None
                try:
                    report = poll.result()
                except RunbookError as exc:
                    self._restart_failed(flight, str(exc))
                    continue
                if report is None:
                    flight.next_poll = time.monotonic() + BOOT_POLL_S
                else:
                    self._restarted(flight, report)

    def _check_boot(self, flight: _Flight) -> RebootReport | None:
        """In a poll thread: a TCP connect while the host is down, one WinRM call once its port answers. The target
        (inventory entry, credential) is resolved once per restart."""
        from ..remote.target import connect

        if flight.target is None:
            flight.target = connect(flight.host, inventory=self.job["inventory"])
        assert flight.watch is not None
        return flight.watch.check(flight.target)

    def _restarted(self, flight: _Flight, report: RebootReport) -> None:
        """The proof into the bundle before notebook 04 may start, then the host back in line (ahead of new ones)."""
        assert flight.watch is not None
        self._write_reboot(flight.host, {**flight.watch.scheduled.to_json(), **report.to_json()})
        del self.waiting[flight.host]
        self.progress.update(flight.host, "restart", "restarted")
        if self.stop.level:
            self._finish(flight.host, summarise_host(flight.host, self.root / "hosts" / flight.host, "",
                                                     "stopped by the operator after its restart", None,
                                                     interrupted=True))
        else:
            self.ready.insert(0, flight)

    def _restart_failed(self, flight: _Flight, error: str) -> None:
        host = flight.host
        scheduled = flight.watch.scheduled.to_json() if flight.watch else \
            read_evidence(self.root / "hosts" / host / REBOOT_FILE)  # the file 03 wrote did not read as one
        self._write_reboot(host, {**scheduled, "state": "failed", "error": one_line(error, 300)})
        row = summarise_host(host, self.root / "hosts" / host, NOTEBOOKS[APPLY_NOTEBOOK],
                             f"restart: {one_line(error, 280)}", None)
        self.progress.update(host, "restart", "failed")
        self._finish(host, row)

    def _write_reboot(self, host: str, doc: dict) -> None:
        evidence.write_scrubbed(self.root / "hosts" / host / REBOOT_FILE, json.dumps(doc, indent=2) + "\n",
                                self.scrubber)

    # --- stopping ---------------------------------------------------------------------------------------------
    def _on_stop(self) -> None:
        """First stop: no new host and no next job starts; hosts restarting or between jobs are recorded as
        interrupted (``--resume`` runs them again). Second stop: running jobs are stopped now."""
        if not self.stop.level:
            return
        for host in list(self.pending):
            self.results[host] = summarise_host(host, self.root / "hosts" / host, "",
                                                "not started: the run was stopped", [], interrupted=True)
            self.progress.update(host, "not started", "interrupted")
        self.pending.clear()
        idle = [*self.ready, *(f for f in self.waiting.values() if f.poll is None)]
        for flight in idle:
            why = "stopped by the operator while waiting for its restart" if flight.watch else \
                "stopped by the operator between notebooks"
            with contextlib.suppress(ValueError):
                self.ready.remove(flight)
            self._finish(flight.host, summarise_host(flight.host, self.root / "hosts" / flight.host, "", why, None,
                                                     interrupted=True))
            self.progress.update(flight.host, "stopped", "interrupted")
        if self.stop.level > self.told:
            self.told = self.stop.level
            for worker in self.workers:
                if worker.host is not None:
                    worker.tell(supervision.STOP_AFTER_NOTEBOOK if self.told == 1 else supervision.STOP_NOW)


def first_free_host(pending: list[str], in_flight, endpoints: dict[str, tuple]) -> str | None:
    """The first pending host whose WinRM endpoint no host in flight shares."""
    busy = {endpoints.get(h, h) for h in in_flight}
    return next((host for host in pending if endpoints.get(host, host) not in busy), None)


def run_local(hosts: list[str], job: dict, options: RunOptions, progress: Progress, live: LiveBundle,
              stop: supervision.StopRequest) -> dict[str, dict]:
    return LocalExecutor(hosts, job, options, progress, live, stop).run()
