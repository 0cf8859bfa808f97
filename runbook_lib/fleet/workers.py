"""The local worker processes: a few long-lived processes, each running one host's notebooks at a time.

A worker is started once per run and takes jobs (a host and the notebooks to run for it now) from the runner over
its control pipe, so starting a host costs a message, not a process. A host that waits (for a restart) is given
back to the runner between jobs and holds no worker, no kernel and no CPU meanwhile.

Each worker stays on the leash of :mod:`.supervision`: when the runner dies or says stop now, the worker kills its
kernels, records the host it was running (if any) as stopped in the manifest, and exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from . import canary, evidence, supervision
from .bundle import LiveBundle
from .host_chain import run_host, summarise_host, write_lock, writes_frozen
from .options import APPLY_NOTEBOOK
from .signing import SigningKey

MAX_LOG_BYTES = 4 * 1024 * 1024
EXIT = "exit"
# What a worker imports before its first job: with a fork server it is imported once and every worker is a fork
# of it (a start in milliseconds, the pages shared) instead of a new interpreter importing it all again. IPython.paths
# is where jupyter_client finds kernel specs (it imports IPython whole). The last one does a worker's first-notebook
# work and freezes what the others imported (see there).
PRELOAD = ["runbook_lib.fleet.workers", "runbook_lib.fleet.evidence_engine", "runbook_lib.runbook.notebook_html",
           "runbook_lib.runbook.kernels", "papermill", "nbconvert", "jupyter_client", "ipykernel.kernelspec",
           "IPython.paths", "runbook_lib.fleet.fork_server_ready"]


def worker_context():
    """A fork server where the OS has one (Linux, macOS), else spawn (Windows)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def host_record(row: dict) -> dict:
    """A host's entry in the manifest: its state, the outcome fields an auditor reads first, and its summary row.
    A host a stop or a canary kept from finishing is not done, so ``--resume`` runs it."""
    state = row["outcome"] if row["outcome"] in ("interrupted", canary.NOT_RUN) else "done"
    return {"state": state, "outcome": row["outcome"], "failed_notebook": row["failed_notebook"],
            "error": row["error"], "summary": row}


def waiting_record(row: dict) -> dict:
    """A host whose restart is under way: not done, so a resume after a runner death runs it again."""
    return {"state": "restarting", "outcome": None, "failed_notebook": "", "error": "", "summary": row}


def _worker(job: dict, control: Connection, events: Connection) -> None:
    """A worker process, in its own process group (Ctrl-C in the terminal reaches the runner only)."""
    if hasattr(os, "setsid"):
        os.setsid()
    # A SIGTERM before the guard is in place (the runner died while this worker started) waits for the guard, which
    # records the host it has; delivered at once it would end the worker with a host still "running".
    held = {signal.SIGTERM} if hasattr(signal, "pthread_sigmask") else set()
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    supervision.die_with_parent(job["runner_pid"])
    os.environ.clear()  # the runner's environment now (a fork server keeps the one it started with)
    os.environ.update(job["environ"])
    root = Path(job["root"])
    live = LiveBundle(root, SigningKey.from_raw(job["key"], job["key_origin"]))
    scrubber = evidence.Scrubber(job["secrets"])
    log = Path(tempfile.mkdtemp(prefix="tls-runbook-")) / "kernels.log"
    with log.open("ab") as handle:  # kernels inherit this stderr; each host's part enters its folder scrubbed
        os.dup2(handle.fileno(), 2)
    current = {"host": "", "notebook": ""}
    jobs: queue.Queue = queue.Queue()

    def keep_log(host: str) -> None:
        """The kernels' log of this job into the host's folder (appended, its last 4 MiB, scrubbed), then emptied."""
        with contextlib.suppress(OSError):
            target = root / "hosts" / host / "kernels.log"
            earlier = target.read_bytes() if target.is_file() else b""
            evidence.write_scrubbed(target, (earlier + log.read_bytes())[-MAX_LOG_BYTES:], scrubber)
            os.truncate(log, 0)

    def abandon(why: str) -> None:
        writes_frozen.set()
        supervision.kill_children()
        host = current["host"]
        if host:
            write_lock.acquire(timeout=2)  # held longer only by a thread parked in this guard: its write never ends
            keep_log(host)
            row = summarise_host(host, root / "hosts" / host, "", f"{why} during {current['notebook'] or 'start'}",
                                 None, interrupted=True)
            live.seal_hosts({host: host_record(row)}, finished=True)
        shutil.rmtree(log.parent, ignore_errors=True)
        supervision.kill_children()  # a kernel the main thread was starting meanwhile

    guard = supervision.WorkerGuard(control, abandon, jobs).start()
    if held:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def send(message: tuple) -> None:
        try:
            events.send(message)
        except OSError:  # nobody reads: the runner is gone
            guard.abandon("the runner stopped")

    def report_progress(host: str, step: str, status: str) -> None:
        current["notebook"] = step
        send(("progress", host, step, status))

    while True:
        task = jobs.get()
        if task == EXIT:
            break
        host = task["host"]
        current.update(host=host, notebook="")  # from here on a stop records this host
        live.seal_hosts({host: {"state": "running"}})
        row = run_host(host, job["inventory"], job["folder"], job["root"],
                       {**job["options"], "notebooks": task["notebooks"]}, report_progress, secrets=job["secrets"],
                       should_stop=lambda: guard.stop_requested, wait_for_reboot=task["wait_for_reboot"])
        guard.settle()
        keep_log(host)
        record = waiting_record(row) if row.get("awaiting_reboot") else host_record(row)
        live.seal_hosts({host: record}, finished=not row.get("awaiting_reboot"))  # even if the runner dies now
        current.update(host="", notebook="")
        send(("result", host, row, None))
        guard.release()
    shutil.rmtree(log.parent, ignore_errors=True)


@dataclass
class Worker:
    """The runner's handle on one worker process, and the job it is running (None: idle)."""

    process: multiprocessing.Process
    control: Connection
    events: Connection
    host: str | None = None
    deadline: float = 0.0
    result: dict | None = None
    stop_sent: int = 0
    progress: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def start(cls, context, job: dict, number: int) -> "Worker":
        control_reader, control_writer = context.Pipe(duplex=False)
        events_reader, events_writer = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(job, control_reader, events_writer),
                                  name=f"tls-runbook worker {number}", daemon=False)
        process.start()
        control_reader.close()  # the runner keeps only the sending end: its death is the worker's EOF
        events_writer.close()
        return cls(process, control_writer, events_reader)

    def give(self, host: str, notebooks: list[str], timeout_s: float) -> None:
        """Run ``notebooks`` for ``host``; a restart 03 needs is only scheduled when a later notebook follows (the
        runner waits for it), else 03 waits for it in its kernel."""
        self.host, self.result, self.deadline = host, None, time.monotonic() + timeout_s
        self.control.send({"host": host, "notebooks": notebooks,
                           "wait_for_reboot": not any(number > APPLY_NOTEBOOK for number in notebooks)})

    def tell(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self.control.send(message)

    def drain(self) -> None:
        """Progress lines and the result the worker has sent so far."""
        with contextlib.suppress(EOFError, OSError):
            while self.events.poll():
                kind, host, first, second = self.events.recv()
                if kind == "progress":
                    self.progress.append((host, first, second))
                else:
                    self.result = first

    def stop(self, ask: bool) -> None:
        """Make sure the worker has ended: ``ask`` it to stop now first (it kills its kernels and records its host),
        or tell an idle worker to exit."""
        if self.process.is_alive():
            self.tell(supervision.STOP_NOW if ask else EXIT)
            self.process.join(15)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        for connection in (self.control, self.events):
            connection.close()
