"""Kernels forked from a template process instead of started from nothing, wherever the OS can fork.

A fleet run starts four kernels per host, and a fresh kernel spends most of its start importing ipykernel and
runbook_lib. :mod:`runbook_lib.runbook.kernel_template` imports them once and forks a kernel per request; this module is the
jupyter_client side of it:

- :class:`ForkingProvisioner`, a kernel provisioner (entry point ``tls-runbook-forked`` in the group
  ``jupyter_client.kernel_provisioners``) that asks the template for the kernel and otherwise behaves like
  jupyter_client's ``LocalProvisioner`` (connection file, ports, signals, shutdown);
- :class:`ForkingKernelManager`, the kernel manager papermill is given (:func:`papermill_options`) so that any
  ipykernel kernelspec uses that provisioner;
- :class:`KernelTemplate` and :func:`shared_template`, which start the template: one per process on first use, or one
  for a whole fleet run that worker processes find through ``TLS_RUNBOOK_KERNEL_TEMPLATE``.

Every kernel is still its own process with a fresh namespace. Without ``fork`` (Windows), when
``TLS_RUNBOOK_FORKED_KERNELS=0``, for a kernelspec that is not this interpreter's ipykernel, or if the template cannot
start, kernels start the normal way.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

from jupyter_client.provisioning import LocalProvisioner

from .kernel_manager import PromptKernelManager

PROVISIONER_NAME = "tls-runbook-forked"
TEMPLATE_ENV = "TLS_RUNBOOK_KERNEL_TEMPLATE"  # the socket of a running template, for this process's children
SWITCH_ENV = "TLS_RUNBOOK_FORKED_KERNELS"  # "0" starts every kernel the normal way
TEMPLATE_START_TIMEOUT_S = 60.0
BIND_TIMEOUT_S = 30.0  # past this the kernel manager's own start timeout takes over
log = logging.getLogger(__name__)


class TemplateUnavailable(RuntimeError):
    """The template could not start or refused a kernel; the kernel starts the normal way instead."""


def fork_available() -> bool:
    return sys.platform != "win32" and hasattr(os, "fork") and hasattr(socket, "send_fds")


def forking_enabled() -> bool:
    return fork_available() and os.environ.get(SWITCH_ENV, "1") != "0" and _provisioner_registered()


def papermill_options() -> dict[str, Any]:
    """Keyword arguments for ``papermill.execute_notebook``: forked kernels where they are available, and no fixed
    waits around any kernel (:mod:`.kernel_manager`)."""
    return {"kernel_manager_class": ForkingKernelManager if forking_enabled() else PromptKernelManager}


# --- the template process -------------------------------------------------------------------------------------
class KernelTemplate:
    """A running template: its socket and its process. Stopping it (or this process ending) ends its kernels."""

    def __init__(self, process: subprocess.Popen, folder: str):
        self.process = process
        self.folder = folder
        self.address = os.path.join(folder, "template.sock")
        self.owner = os.getpid()

    @classmethod
    def start(cls, timeout_s: float = TEMPLATE_START_TIMEOUT_S) -> "KernelTemplate":
        folder = tempfile.mkdtemp(prefix="tls-runbook-kernels-")  # 0700: only this user reaches the socket
        log_path = os.path.join(folder, "template.log")  # import-time chatter stays out of the operator's terminal
        with open(log_path, "wb") as log_file:
            # stdin is the template's lifeline: when this process ends, the pipe closes and the template ends too.
            process = subprocess.Popen([sys.executable, "-m", "runbook_lib.runbook.kernel_template",
                                        os.path.join(folder, "template.sock")],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, cwd=folder,
                                       start_new_session=True)  # Ctrl-C at the terminal is for the runner, not it
        template = cls(process, folder)
        deadline, line = time.monotonic() + timeout_s, b"-"
        while line and b"ready " not in line:  # an import may have printed something first
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = process.stdout.readline() if ready else b""
        process.stdout.close()
        if b"ready " not in line:
            with open(log_path, "rb") as log_file:
                last = (log_file.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            template.stop()
            raise TemplateUnavailable(f"the kernel template did not start within {timeout_s:g} s: {last[:200]}")
        return template

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "KernelTemplate":
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


@contextlib.contextmanager
def shared_template() -> Iterator[KernelTemplate | None]:
    """One template for this process and every process it starts while the block runs (they inherit its address
    through the environment), so a fleet's worker processes share one set of imported pages. Yields the template,
    or None when kernels start the normal way (no fork, switched off, or a template is already shared)."""
    template = None
    if forking_enabled() and not os.environ.get(TEMPLATE_ENV):
        try:
            template = KernelTemplate.start()
        except (TemplateUnavailable, OSError) as exc:
            log.warning("kernels start the normal way: %s", exc)
    if template is None:
        yield None
        return
    os.environ[TEMPLATE_ENV] = template.address
    try:
        yield template
    finally:
        os.environ.pop(TEMPLATE_ENV, None)
        template.stop()


_own: dict[str, Any] = {"template": None, "failed": False}
_own_lock = threading.Lock()


def _template_address() -> str | None:
    """The shared template if this process was given one, else this process's own, started on first use."""
    if os.environ.get(TEMPLATE_ENV):
        return os.environ[TEMPLATE_ENV]
    with _own_lock:
        template = _own["template"]
        if template is not None and template.owner == os.getpid() and template.alive:
            return template.address
        if _own["failed"]:
            return None
        try:
            template = KernelTemplate.start()
        except (TemplateUnavailable, OSError) as exc:
            log.warning("kernels start the normal way: %s", exc)
            _own["failed"] = True
            return None
        _own["template"] = template
        atexit.register(template.stop)
        return template.address


# --- one forked kernel, as jupyter_client sees a process ----------------------------------------------------------
class ForkedKernel:
    """What ``LocalProvisioner`` expects of its ``Popen``: pid, poll, wait, send_signal, terminate, kill. The kernel
    is the template's child, so its exit status and every signal go through the template, which never signals a
    process it has already reaped."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, conn: socket.socket, pending: bytes = b""):
        self.pid = pid
        self.returncode: int | None = None
        self._conn: socket.socket | None = conn
        self._buffer = pending  # what arrived after the pid, if the kernel was that quick to exit
        conn.setblocking(False)

    def poll(self) -> int | None:
        if self.returncode is None and self._conn is not None:
            self._read()
        if self.returncode is None and self._conn is None and not _exists(self.pid):
            self.returncode = -signal.SIGKILL  # reaped by someone else after its template died: status unknown
        return self.returncode

    def _read(self) -> None:
        try:
            data: bytes | None = self._conn.recv(4096)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        *lines, self._buffer = (self._buffer + (data or b"")).split(b"\n")
        for line in lines:
            try:
                self._finish(int(json.loads(line)["exit"]))
            except (ValueError, KeyError, TypeError):
                continue
        if data == b"" and self._conn is not None:  # the template is gone; the kernel follows it (parent poller)
            self._conn.close()
            self._conn = None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"forked kernel {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is not None:
            return
        if self._conn is not None:
            try:
                self._conn.sendall(json.dumps({"signal": int(number)}).encode() + b"\n")
                return
            except OSError:
                pass
        os.kill(self.pid, number)  # no template to relay it

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _finish(self, returncode: int) -> None:
        self.returncode = returncode
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fork_kernel(address: str, argv: list[str], cwd: str, env: dict[str, str], fds: list[int]) -> ForkedKernel:
    """Ask the template at ``address`` for a kernel running ``argv`` in ``cwd`` with ``env``; ``fds`` are its
    stdin, stdout, stderr and the write end of a pipe it signals once its sockets are bound."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    try:
        conn.connect(address)
        request = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode() + b"\n"
        socket.send_fds(conn, [request], fds)
        reply = b""
        while b"\n" not in reply:
            more = conn.recv(4096)
            if not more:
                raise TemplateUnavailable("the kernel template closed the connection")
            reply += more
        first, _, pending = reply.partition(b"\n")
        answer = json.loads(first)
    except (OSError, ValueError) as exc:
        conn.close()
        raise TemplateUnavailable(f"the kernel template did not answer: {exc}") from None
    if "pid" not in answer:
        conn.close()
        raise TemplateUnavailable(f"the kernel template refused: {answer.get('error')}")
    return ForkedKernel(int(answer["pid"]), conn, pending)


# --- jupyter_client ---------------------------------------------------------------------------------------------
class ForkingProvisioner(LocalProvisioner):
    """``LocalProvisioner`` with the launch replaced by a fork of the template; everything else is inherited."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Where the template runs, the kernel listens on Unix sockets in its private folder (0700) instead of TCP
        ports. jupyter_client picks TCP ports before the kernel binds them, and with a dozen kernels and hundreds of
        WinRM connections opening at once a port was sometimes taken in between: that kernel could not start
        (and hung until the 120 s start timeout). Any local user can also reach a TCP port; only this user reaches
        the folder."""
        manager = self.parent
        address = _template_address() if forking_enabled() else None
        if manager is not None and address is not None:
            manager.transport = "ipc"
            manager.ip = os.path.join(os.path.dirname(address), f"k-{manager.kernel_id[:8]}")
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        address = _template_address() if forking_enabled() else None
        stdio = _stdio(kwargs) if address else None
        if address is None or stdio is None:
            return await super().launch_kernel(cmd, **kwargs)
        env = kwargs.get("env") or dict(os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        bound_r, bound_w = os.pipe()
        try:
            self.process = fork_kernel(address, list(cmd), cwd, dict(env), [*stdio, bound_w])
        except TemplateUnavailable as exc:
            log.info("kernel starts the normal way: %s", exc)
            os.close(bound_r)
            return await super().launch_kernel(cmd, **kwargs)
        finally:
            _close([*stdio, bound_w])
        try:
            await _until_readable(bound_r, BIND_TIMEOUT_S)  # a byte: listening; end of file: it died (poll says)
        finally:
            os.close(bound_r)
        self.pid = self.process.pid
        self.pgid = None  # signals go through the template (ForkedKernel.send_signal), never to a stale group
        self.cwd = cwd
        return self.connection_info


def _stdio(kwargs: dict[str, Any]) -> list[int] | None:
    """Duplicates of the streams ``Popen`` would have given the kernel: stdin at end of file (jupyter_client
    closes it), stdout and stderr as asked or inherited. None for what only Popen can do (a pipe to read)."""
    fds = [os.open(os.devnull, os.O_RDONLY)]
    for name, inherited in (("stdout", 1), ("stderr", 2)):
        wanted = kwargs.get(name)
        if wanted == subprocess.PIPE or wanted == subprocess.STDOUT:
            _close(fds)
            return None
        if wanted is None:
            fd = inherited
        elif wanted == subprocess.DEVNULL:
            fd = -1
        else:
            fd = wanted if isinstance(wanted, int) else wanted.fileno()
        try:
            fds.append(os.dup(fd) if fd >= 0 else os.open(os.devnull, os.O_WRONLY))
        except OSError:  # an inherited stream this process does not have
            fds.append(os.open(os.devnull, os.O_WRONLY))
    return fds


async def _until_readable(fd: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not select.select([fd], [], [], 0)[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


class ForkingKernelManager(PromptKernelManager):
    """The kernel manager papermill uses with :func:`papermill_options`: any kernelspec that names no provisioner
    of its own gets :class:`ForkingProvisioner`."""

    @property
    def kernel_spec(self):  # type: ignore[override]
        spec = super().kernel_spec
        if spec is not None and "kernel_provisioner" not in spec.metadata:
            spec.metadata["kernel_provisioner"] = {"provisioner_name": PROVISIONER_NAME, "config": {}}
        return spec


@functools.lru_cache(maxsize=None)
def _provisioner_registered() -> bool:
    """jupyter_client finds provisioners through entry points; an install older than this module has none."""
    from importlib.metadata import entry_points

    return any(ep.name == PROVISIONER_NAME for ep in entry_points(group="jupyter_client.kernel_provisioners"))


__all__ = ["ForkingKernelManager", "PromptKernelManager", "ForkingProvisioner", "KernelTemplate",
           "TemplateUnavailable", "fork_available", "forking_enabled", "papermill_options", "shared_template",
           "fork_kernel", "ForkedKernel", "PROVISIONER_NAME", "TEMPLATE_ENV", "SWITCH_ENV"]
