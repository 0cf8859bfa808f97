"""The process kernels are forked from: Python, ipykernel and runbook_lib imported once, then one ``fork`` per kernel.

A kernel started the usual way spends most of its first second importing the same modules as every other kernel.
Here they are imported once; a kernel is a fork of this process, so it starts in milliseconds and shares the imported
pages copy-on-write. After the fork the child is an ordinary ``python -m ipykernel_launcher -f FILE``: its own
session and process group, its working folder, environment, standard streams and connection file as the client
asked, its own ZMQ context, event loop, threads and user namespace, all created after the fork.

Started by :class:`runbook_lib.runbook.kernels.KernelTemplate` as ``python -m runbook_lib.runbook.kernel_template SOCKET``. One Unix
socket connection per kernel, newline-delimited JSON:

- client to template: ``{"argv": [...], "cwd": ..., "env": {...}}`` with four file descriptors passed along: the
  kernel's stdin, stdout and stderr, and a pipe the kernel writes one byte to once its sockets are bound (so the
  client never connects before the kernel listens); later ``{"signal": N}``, delivered to the kernel's process
  group while it lives;
- template to client: ``{"pid": N}`` or ``{"error": ...}``; later ``{"exit": RETURNCODE}`` as ``Popen`` reports it.

Lifetimes: a connection that closes while its kernel runs means the client is gone, so the kernel is killed. End
of file on the template's stdin means the process that started it is gone: every kernel is killed, the socket's
folder removed, and the template exits. A kernel whose template dies exits on its own (ipykernel's parent poller, ``JPY_PARENT_PID``).

Fork safety: nothing here starts a thread, a ZMQ context or an event loop; the template refuses to serve if an
import did.
"""

from __future__ import annotations

import codecs
import gc
import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass

# What every runbook kernel imports: ipykernel's application and kernel with what they import while starting (the
# debugger, debugpy and pydevd are most of it), and the notebook layer with everything it pulls in (winrm, requests,
# cryptography, the engine, the simulator for hosts started in the kernel). matplotlib is left out on purpose: its
# backend is chosen from the kernel's environment when it is first imported, which must happen in the kernel.
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.comm", "ipykernel.debugger", "IPython.core.debugger",
           "IPython.core.completerlib", "IPython.extensions.storemagic", "sqlite3", "psutil", "tornado.queues",
           "IPython.core.oinspect", "IPython.core.logger", "tornado.platform.asyncio", "faulthandler",
           "ipykernel_launcher", "ipywidgets", "runbook_lib.notebook", "runbook_lib.remote.inventory",
           "runbook_lib.simulator.fleet")
# The codecs the runbook's own code looks up while it runs (the console code page WinRM output is decoded with,
# UTF-16 for the scrubber and .reg files, UTF-8 with a byte-order mark): found once here, not in every kernel.
CODECS = ("cp437", "utf-16-le", "utf-16-be", "utf-8-sig")
KERNEL_MODULE = ("-m", "ipykernel_launcher")
ENVIRONMENT_SET_BY_IMPORTS: dict[str, str] = {}
MESSAGE_LIMIT = 1 << 20  # a request is argv, a folder and an environment: far below this
SHUTDOWN_GRACE_S = 3.0


@dataclass
class KernelRequest:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    fds: list[int]  # stdin, stdout, stderr, the bound pipe


class Template:
    """Accepts kernel requests, forks, reaps, relays signals; owns every descriptor it opens, so a child can close
    them all before it becomes a kernel."""

    def __init__(self, address: str):
        self.folder = os.path.dirname(address)  # the starter's private folder, given to the template to keep
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(address)
        self.listener.listen(64)
        self.wake_r, self.wake_w = socket.socketpair()
        for end in (self.wake_r, self.wake_w):
            end.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
        self.kernels: dict[int, socket.socket | None] = {}  # pid -> its client's connection, None once it closed
        self.buffers: dict[int, bytes] = {}

    def serve(self) -> KernelRequest:
        """Runs until the starter goes away (then exits); returns only in a forked child, as its request."""
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the wakeup socket
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    request = self._accept()
                    if request is not None:
                        return request
                elif key.fileobj is self.wake_r:
                    self._drain_wakeups()
                    self._reap()
                elif key.fileobj == sys.stdin.fileno():
                    if not os.read(key.fileobj, 4096):
                        self._shutdown()
                else:
                    self._from_client(key.fileobj, key.data)

    def _accept(self) -> KernelRequest | None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        conn.settimeout(10)
        request = None
        try:
            request = _receive_request(conn)
            refusal = _refusal(request)
            pid = -1 if refusal else os.fork()
        except (OSError, ValueError) as exc:
            refusal, pid = f"{type(exc).__name__}: {exc}", -1
        if pid == 0:
            self._close_in_child(conn)
            return request
        if request is not None:
            _close_all(request.fds)
        if pid < 0:
            _reply_and_close(conn, {"error": refusal})
            return None
        self.kernels[pid] = conn
        self.buffers[pid] = b""
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, pid)
        try:
            _send(conn, {"pid": pid})
        except OSError:
            self._client_gone(conn, pid)
        return None

    def _close_in_child(self, own: socket.socket) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for sock in (self.listener, self.wake_r, self.wake_w, own, *filter(None, self.kernels.values())):
            sock.close()
        self.kernels.clear()

    def _drain_wakeups(self) -> None:
        try:
            while self.wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while self.kernels:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.kernels.pop(pid, None)
            self.buffers.pop(pid, None)
            if conn is not None:
                try:
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
                self._forget(conn)

    def _from_client(self, conn: socket.socket, pid: int) -> None:
        if self.kernels.get(pid) is not conn:  # reaped and forgotten earlier in this round
            return
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._client_gone(conn, pid)
            return
        lines = (self.buffers.get(pid, b"") + data).split(b"\n")
        self.buffers[pid] = lines.pop()
        for line in lines:
            try:
                number = int(json.loads(line)["signal"])
            except (ValueError, KeyError, TypeError):
                continue
            if pid in self.kernels:  # never signal a reaped pid: the number may already be someone else's
                _signal_group(pid, number)

    def _client_gone(self, conn: socket.socket, pid: int) -> None:
        """Nobody can talk to this kernel any more, so it must not live on."""
        self._forget(conn)
        self.kernels[pid] = None
        _signal_group(pid, signal.SIGKILL)

    def _forget(self, conn: socket.socket) -> None:
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _shutdown(self) -> None:
        for pid in list(self.kernels):
            _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while self.kernels and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        shutil.rmtree(self.folder, ignore_errors=True)  # a starter that was killed cannot clean up after us
        sys.exit(0)


def _receive_request(conn: socket.socket) -> KernelRequest:
    data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
    while not data.endswith(b"\n"):
        if len(data) > MESSAGE_LIMIT:
            raise ValueError("request too large")
        more = conn.recv(65536)
        if not more:
            raise ValueError("request cut short")
        data += more
    try:
        doc = json.loads(data)
        request = KernelRequest([str(a) for a in doc["argv"]], str(doc["cwd"]),
                                {str(k): str(v) for k, v in doc["env"].items()}, list(fds))
    except (ValueError, KeyError, TypeError, AttributeError):
        _close_all(fds)
        raise ValueError("request is not a kernel request") from None
    if len(fds) != 4:
        _close_all(fds)
        raise ValueError("a kernel request carries stdin, stdout, stderr and the bound pipe")
    return request


def _refusal(request: KernelRequest) -> str:
    """Only this interpreter's ipykernel can be forked from here; anything else starts the normal way."""
    if request.argv[:1] != [sys.executable] or tuple(request.argv[1:3]) != KERNEL_MODULE:
        return f"not {sys.executable} -m ipykernel_launcher"
    if not os.path.isdir(request.cwd):
        return "the working folder does not exist"
    return ""


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _reply_and_close(conn: socket.socket, message: dict) -> None:
    try:
        _send(conn, message)
    except OSError:
        pass
    conn.close()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _signal_group(pid: int, number: int) -> None:
    """The kernel leads its own process group (like a kernel started by jupyter_client); before it has made one,
    only the kernel itself can be reached."""
    try:
        os.killpg(pid, number)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def become_kernel(request: KernelRequest) -> None:
    """Turn this forked child into what ``python -m ipykernel_launcher ARGS`` would be, then run the kernel."""
    os.setsid()
    *streams, bound = request.fds
    for target, fd in enumerate(streams):
        os.dup2(fd, target)
    _close_all([fd for fd in streams if fd > 2])
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update({**ENVIRONMENT_SET_BY_IMPORTS, **request.env})
    time.tzset()
    import ipykernel_launcher

    sys.argv = [ipykernel_launcher.__file__, *request.argv[3:]]
    from ipykernel import kernelapp

    # What kernelapp.launch_new_instance does, with two additions. ipykernel reads JPY_PARENT_PID when it is
    # imported, here in the template, so the kernel's parent (the template) is given directly: the kernel exits when
    # its template does. And the client hears when the sockets are bound.
    app = kernelapp.IPKernelApp.instance(parent_handle=os.getppid())
    try:
        app.initialize()
    except BaseException:  # noqa: BLE001 - whatever stopped the start, the kernel ends now
        # ipykernel's exit handlers would wait for ZMQ to close sockets that never opened, and the client for its
        # start timeout: a kernel that cannot start says why on its stderr and exits, and the client sees it die.
        traceback.print_exc()
        os._exit(1)
    os.write(bound, b"1")
    os.close(bound)
    app.start()


def preload() -> None:
    """Import what kernels use; refuse to become a template if that left a thread running."""
    gc.disable()  # no collection while importing: fewer freed holes in pages the kernels will share
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does; the kernel puts '' back for its own folder
    before = dict(os.environ)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a kernel that needs it fails the same way on its own
    _warm_up()
    # An import that sets a variable (debugpy sets PYDEVD_USE_FRAME_EVAL unless given) would have set it in the
    # kernel; the kernel's own environment replaces this one after the fork, so the kernels get these back.
    ENVIRONMENT_SET_BY_IMPORTS.update({k: v for k, v in os.environ.items() if before.get(k) != v})
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if extra:
        raise SystemExit(f"kernel template: an import started threads ({', '.join(extra)}); not safe to fork")
    gc.freeze()  # objects imported so far stay out of the collector's way, so children keep sharing their pages
    gc.enable()


def _warm_up() -> None:
    """Do now what every kernel would otherwise do again at its first use: look up the codecs, build the
    contracts' schema validators, load the cipher NTLM encrypts messages with. Measured in a fleet run: about a
    tenth of a kernel's CPU."""
    for name in CODECS:
        codecs.lookup(name)
    try:
        from runbook_lib.core import json_schema
        from runbook_lib.remote.contract import PACKAGES
    except ImportError:
        return  # not the runbook's environment: its kernels have nothing of it to share
    json_schema.load_validators(json_schema.CORE)
    json_schema.load_validators(PACKAGES)
    _load_ntlm_cipher()


def _load_ntlm_cipher() -> None:
    """An RC4 cipher made as pyspnego makes one for NTLM message encryption: through cryptography's
    ``default_backend``, whose import loads the OpenSSL bindings."""
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.primitives.ciphers import Cipher

    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
    except ImportError:  # cryptography before 43
        from cryptography.hazmat.primitives.ciphers.algorithms import ARC4
    Cipher(ARC4(bytes(16)), mode=None, backend=default_backend()).encryptor().update(b"\0")


def main(argv: list[str]) -> None:
    preload()
    template = Template(argv[0])
    sys.stdout.write(f"ready {os.getpid()}\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the starter stops reading; nothing else is ever written there
    os.close(devnull)
    request = template.serve()
    become_kernel(request)


if __name__ == "__main__":
    main(sys.argv[1:])
