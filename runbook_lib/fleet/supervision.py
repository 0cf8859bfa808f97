"""Keeping a fleet run's processes on a leash: no worker or kernel outlives the runner, and a stop is orderly.

The runner starts a few long-lived worker processes (:mod:`.workers`); each runs one host's notebooks at a time and
starts a Jupyter kernel per notebook (in the kernel's own session, as jupyter_client does). Two independent signals tell a worker its runner is gone: on Linux the kernel
sends it SIGTERM when the runner dies (``prctl(PR_SET_PDEATHSIG)``), and on every OS the control pipe from the
runner reaches end-of-file, because only the runner held its sending end. Either way the worker kills its kernels,
records what the host it was running had done so far in the manifest, and exits. The kernels also watch their worker
(ipykernel's parent poller), so even a worker killed outright leaves no kernel for long.

A stop the operator asks for (Ctrl-C or SIGTERM to the runner) comes in two strengths: the first lets every
running host finish the notebook it is in and starts nothing new; the second stops the running hosts now.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable

import psutil  # imported here, not when needed: a signal handler must not import (the main thread may hold the lock)

STOP_AFTER_NOTEBOOK = "stop"
STOP_NOW = "abort"


# --- in the worker ------------------------------------------------------------------------------------------------
def die_with_parent(runner_pid: int) -> None:
    """Linux: SIGTERM when the parent dies, even by SIGKILL. The parent is the runner, or the fork server the runner
    started (which ends with the runner). A runner already gone by now counts as dead."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if hasattr(os, "getppid") and (os.getppid() == 1 or not psutil.pid_exists(runner_pid)):
        os.kill(os.getpid(), signal.SIGTERM)


def kill_children() -> None:
    """Kill every process this one started and theirs (kernels lead their own sessions, so their groups too), and
    reap them. All are stopped before any is killed: the kernel template forks kernels, and one forked after the
    list was read would, once the template died, belong to nobody and go on writing into the host's folder."""
    stopped: dict[int, psutil.Process] = {}
    while fresh := [c for c in psutil.Process().children(recursive=True) if c.pid not in stopped]:
        for child in fresh:
            with contextlib.suppress(psutil.Error):
                child.suspend()
            stopped[child.pid] = child
    for child in stopped.values():
        with contextlib.suppress(psutil.Error, OSError):
            if hasattr(os, "killpg") and os.getpgid(child.pid) == child.pid:
                os.killpg(child.pid, signal.SIGKILL)
            child.kill()
    psutil.wait_procs(list(stopped.values()), timeout=5)


class WorkerGuard:
    """A worker's side of the leash: reads the control pipe (jobs go to ``jobs``), and abandons the worker when told
    or orphaned.

    ``abandon`` runs once, from whichever thread notices first, and ends the process. While the worker records a
    finished job (between :meth:`settle` and :meth:`release`) an abandon waits for the record to be written.
    """

    def __init__(self, control, abandon: Callable[[str], None], jobs):
        self.control = control
        self.jobs = jobs
        self._abandon = abandon
        self._lock = threading.RLock()  # never released by an abandon: the process ends inside it
        self.stop_requested = False
        self.abandoning = False
        self._recording = False
        self._deferred: str | None = None

    def start(self) -> "WorkerGuard":
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.abandon("the runner stopped (SIGTERM)"))
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to interpret
        threading.Thread(target=self._watch, name="runner-watch", daemon=True).start()
        return self

    def _watch(self) -> None:
        while True:
            try:
                message = self.control.recv()
            except (EOFError, OSError):
                self.abandon("the runner stopped")
                return
            if message == STOP_AFTER_NOTEBOOK:
                self.stop_requested = True
            elif message == STOP_NOW:
                self.abandon("stopped by the operator")
                return
            else:
                self.jobs.put(message)

    def abandon(self, why: str) -> None:
        self._lock.acquire()
        if self.abandoning:  # a second signal inside the first one's abandon
            return
        if self._recording:  # a signal in the very thread recording a finished job: stop once it is recorded
            self._deferred = why
            return
        self.abandoning = self.stop_requested = True
        try:
            self._abandon(why)
        except BaseException as exc:  # noqa: BLE001 - the process ends either way; say why the record is missing
            with contextlib.suppress(Exception):
                print(f"tls-runbook worker: could not record the stopped host: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
        finally:
            os._exit(3)

    def settle(self) -> None:
        """The worker is about to record its finished job: a stop or the runner's death waits until it has."""
        self._lock.acquire()
        self._recording = True

    def release(self) -> None:
        self._recording = False
        deferred, self._deferred = self._deferred, None
        self._lock.release()
        if deferred is not None:
            self.abandon(deferred)


# --- in the runner ------------------------------------------------------------------------------------------------
class StopRequest:
    """What the operator asked for so far: 0 nothing, 1 finish the current notebooks, 2 stop now."""

    def __init__(self, stream=sys.stderr):
        self.level = 0
        self.stream = stream

    def __call__(self, signum, frame) -> None:
        self.level = min(2, self.level + 1)
        if self.level == 1:
            print("tls-runbook: stopping: running hosts finish the notebook they are in, no new host starts "
                  "(press Ctrl-C again to stop them now)", file=self.stream, flush=True)
        else:
            print("tls-runbook: stopping now: running hosts are stopped where they are; their evidence stays",
                  file=self.stream, flush=True)


@contextlib.contextmanager
def stop_on_signals(request: StopRequest):
    """SIGINT and SIGTERM become stop requests while the block runs (only the main thread can take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
