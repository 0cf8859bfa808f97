"""A WinRM (WS-Management) listener on loopback that unmodified pywinrm and pypsrp clients talk to.

It stands in for the WinRM service of a Windows host: the WinRS shell operations (Create, Command, Send, Receive,
Signal, Delete), Basic and Negotiate/NTLM logons with MS-WSMV message encryption, HTTPS with a generated CA, and
the failures a runbook meets on real hosts (faults, time-outs, dropped connections, reboots, cmd.exe's
command-line limit). What a command prints is decided by a ``CommandHandler``: the Windows host model.

Timing the host model can rely on: the handler runs once per command, at the first Receive after the Command
(so stdin sent before that Receive is complete), in the thread of the client's connection; several connections
call it concurrently.

Strict mode is WinRM's default service configuration (``Basic=false``, ``AllowUnencrypted=false``): Basic is
answered with 401 offering Negotiate only, so pywinrm raises ``InvalidCredentialsError``; a plain-text SOAP body
over HTTP, even on a Negotiate-authenticated connection, is answered with HTTP 500 and a ``w:AccessDenied`` fault
that says unencrypted traffic is disabled, so pywinrm raises ``WSManFaultError`` whose ``reason`` names the cause.
Real hosts answer the latter with a bare 401 or 500, which leaves a client guessing; the fault keeps the shape of
a 500 while telling the operator what to change.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import spnego

from runbook_lib.simulator import wsman_auth
from runbook_lib.simulator.certs import ListenerCertificate, create_listener_certificate
from runbook_lib.simulator.wsman_auth import (
    NTLM_USER_FILE,
    Account,
    BadAuthorization,
    EncryptedBodyInvalid,
    basic_credentials,
    decrypt_body,
    encrypt_body,
    is_encrypted,
    ntlm_user_lines,
    split_authorization,
)
from runbook_lib.simulator.wsman_shells import (CommandHandler, CommandResult, DropConnection, Shell, clixml_error,
                                                clixml_progress_noise, decode_encoded_command)
from runbook_lib.simulator.wsman_http import Listener, Reply, RequestHandler
from runbook_lib.simulator.wsman_operations import ShellOperations

__all__ = [
    "CommandHandler",
    "CommandResult",
    "DropConnection",
    "Faults",
    "ServerNotStarted",
    "WSManServer",
    "clixml_error",
    "clixml_progress_noise",
    "decode_encoded_command",
]

log = logging.getLogger(__name__)


def _user_key(user: str) -> str:
    """One spelling per account for per-user quotas: DOMAIN\\user, user@domain and user are the same user."""
    return user.rsplit("\\", 1)[-1].split("@", 1)[0].casefold()

# Bodies above this are not WS-Management (MaxEnvelopeSize is 150 KiB; encryption adds little).
MAX_BODY = 1024 * 1024
_TLS_VERSIONS = {"TLS 1.0": ssl.TLSVersion.TLSv1, "TLS 1.1": ssl.TLSVersion.TLSv1_1, "TLS 1.2": ssl.TLSVersion.TLSv1_2,
                 "TLS 1.3": ssl.TLSVersion.TLSv1_3}


@dataclass
class Faults:
    """Failures to inject, read at each request so a test can change them while the server runs.

    Counters count SOAP requests (authenticated, non-empty body), not the authentication round trips, so a test
    means the same request whatever the auth method; each injected failure consumes one.
    """

    refuse_auth: bool = False  # every logon fails with 401, as for wrong credentials
    latency: float = 0.0  # seconds added before answering any request
    http_500_next: int = 0  # the next N SOAP requests get a w:InternalError fault
    receive_timeouts: int = 0  # each command created from now on answers N Receives with w:TimedOut first
    drop_after_requests: int = 0  # the Nth SOAP request from now gets no answer: its connection is closed
    redirect_to: str = ""  # answer every SOAP request, once logged on, with 307 to this URL (a hijacked listener)


@dataclass(frozen=True)
class Quotas:
    """The WinRM service's shell quotas (``winrm get winrm/config/winrs`` and ``MaxEnvelopeSizekb``); the defaults
    are WinRM 3.0 and later's. The host model applies the per-shell process and memory limits itself."""

    max_shells_per_user: int = 30
    max_processes_per_shell: int = 25
    max_memory_per_shell_mb: int = 1024
    shell_idle_timeout_s: float = 7200.0
    max_envelope_kb: int = 500


QUOTA_FIELDS = tuple(f.name for f in dataclasses.fields(Quotas))

# Windows 7 / Server 2008 R2 as installed (WinRM 2.0).
WINRM_2_QUOTAS = Quotas(max_shells_per_user=5, max_processes_per_shell=15, max_memory_per_shell_mb=150,
                        shell_idle_timeout_s=180.0, max_envelope_kb=150)


class ServerNotStarted(RuntimeError):
    """The listener's URL or CA is asked for before start() bound it."""


class WSManServer(ShellOperations):
    """One simulated host's WinRM listener; see the module docstring for what it answers and how."""

    def __init__(
        self,
        handler: CommandHandler,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        auth: Literal["ntlm", "basic"] = "ntlm",
        https: bool = False,
        strict: bool = False,
        credentials: Iterable[tuple[str, str]] = (),
        faults: Faults | None = None,
        computer_name: str = "WIN-SIM01",
        idle_timeout: float = 30.0,
        tls_protocols: Callable[[], Iterable[str]] = lambda: ("TLS 1.2", "TLS 1.3"),
        quotas: Quotas = Quotas(),
    ):
        """``auth="basic"`` enables Basic next to Negotiate (the Basic=true service setting); ``strict`` overrides it.
        ``tls_protocols`` names what the HTTPS listener offers ("TLS 1.0" .. "TLS 1.3"), asked at every start."""
        self.quotas = quotas
        self.quota_faults = 0  # how often a Create was refused for MaxShellsPerUser (what tests watch)
        if auth not in ("ntlm", "basic"):
            raise ValueError(f"auth must be 'ntlm' or 'basic', not {auth!r}")
        accounts = [Account.parse(user, password) for user, password in credentials]
        if not accounts:
            raise ValueError("a simulated host needs at least one (user, password) credential")
        self.handler = handler
        self.address = address
        self.https = https
        self.strict = strict
        self.basic_enabled = auth == "basic" and not strict
        self.faults = faults if faults is not None else Faults()
        self.computer_name = computer_name
        self.idle_timeout = idle_timeout
        self.tls_protocols = tls_protocols
        self._accounts = accounts
        self._ntlm_lines = ntlm_user_lines(accounts, computer_name)
        self._port = port
        self._certificate: ListenerCertificate | None = None
        self._listener: Listener | None = None
        self._restart_timer: threading.Timer | None = None
        self._lifecycle = threading.RLock()
        self._state = threading.Lock()  # shells, connections and fault counters
        self._shells: dict[str, Shell] = {}
        self._connections: set[socket.socket] = set()
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> WSManServer:
        with self._lifecycle:
            if self._started:
                return self
            if self.https:
                self._certificate = create_listener_certificate(self.address, self.computer_name)
            self._listen()
            self._started = True
            return self

    def stop(self) -> None:
        with self._lifecycle:
            if self._restart_timer is not None:
                self._restart_timer.cancel()
                self._restart_timer = None
            self._close_listener()
            self._end_all_shells()
            if self._certificate is not None:
                self._certificate.remove()
                self._certificate = None
            self._started = False

    def __enter__(self) -> WSManServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def go_down(self, seconds: float, booted: Callable[[], None] | None = None) -> None:
        """Simulate a reboot: refuse connections for ``seconds``, lose every shell, then run ``booted`` (the host's
        boot: its new boot time, what Schannel loads) and listen on the same port."""
        with self._lifecycle:
            if not self._started:
                raise ServerNotStarted("go_down() needs a started server")
            if self._restart_timer is not None:
                self._restart_timer.cancel()
            self._close_listener()
            self._end_all_shells()
            self._restart_timer = threading.Timer(seconds, self._come_back, args=(booted,))
            self._restart_timer.daemon = True
            self._restart_timer.start()
        log.info("%s: down for %.1f s", self.computer_name, seconds)

    def interrupt_network(self, seconds: float) -> None:
        """The network between clients and this host fails: every open connection is cut and, for ``seconds``,
        new ones are refused. Unlike a reboot, shells and the processes in them live on."""
        with self._lifecycle:
            if not self._started:
                raise ServerNotStarted("interrupt_network() needs a started server")
            if seconds <= 0:
                self._cut_connections()
                return
            if self._restart_timer is not None:
                self._restart_timer.cancel()
            self._close_listener()
            self._restart_timer = threading.Timer(seconds, self._come_back)
            self._restart_timer.daemon = True
            self._restart_timer.start()
        log.info("%s: network down for %.1f s", self.computer_name, seconds)

    @property
    def port(self) -> int:
        if not self._started:
            raise ServerNotStarted("the port is known once start() has bound it")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.https else "http"
        return f"{scheme}://{self.address}:{self.port}/wsman"

    @property
    def ca_path(self) -> str:
        if self._certificate is None:
            raise ServerNotStarted("the CA exists once an HTTPS server has started")
        return str(self._certificate.ca_path)

    def _tls_context(self) -> ssl.SSLContext | None:
        """The listener's TLS, built at every start: a reboot may have changed what Schannel offers."""
        if self._certificate is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        versions = sorted(_TLS_VERSIONS[name] for name in self.tls_protocols())
        if not versions:
            raise ValueError("an HTTPS listener needs at least one TLS version")
        with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated in Python's ssl; old Windows offers them
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version, context.maximum_version = versions[0], versions[-1]
        if versions[0] < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL refuses TLS 1.0/1.1 at any higher level
        context.load_cert_chain(self._certificate.cert_path, self._certificate.key_path)
        return context

    def _listen(self) -> None:
        listener = Listener(self, (self.address, self._port), self._tls_context())
        self._port = listener.server_address[1]
        self._listener = listener
        threading.Thread(
            target=listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"wsman-{self.address}:{self._port}",
            daemon=True,
        ).start()

    def _close_listener(self) -> None:
        if self._listener is None:
            return
        self._listener.shutdown()
        self._listener.server_close()
        self._listener = None
        self._cut_connections()

    def _cut_connections(self) -> None:
        with self._state:
            connections = list(self._connections)
        for connection in connections:
            try:
                # socket.socket.shutdown, not SSLSocket's: tear the TCP connection down under the TLS layer.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
            except OSError:
                pass

    def _come_back(self, booted: Callable[[], None] | None = None) -> None:
        if booted is not None:
            booted()
        with self._lifecycle:
            self._restart_timer = None
            if not self._started or self._listener is not None:
                return
            try:
                self._listen()
            except OSError:
                log.exception("%s: could not listen again on %s:%d", self.computer_name, self.address, self._port)
                return
        log.info("%s: back up", self.computer_name)

    def _end_all_shells(self) -> None:
        with self._state:
            shells = list(self._shells.values())
            self._shells.clear()
        for shell in shells:
            shell.end_processes()

    def _track(self, connection: socket.socket, alive: bool) -> None:
        with self._state:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _drop_due(self) -> bool:
        with self._state:
            if self.faults.drop_after_requests <= 0:
                return False
            self.faults.drop_after_requests -= 1
            return self.faults.drop_after_requests == 0

    def _http_500_due(self) -> bool:
        with self._state:
            if self.faults.http_500_next <= 0:
                return False
            self.faults.http_500_next -= 1
            return True

    # --- HTTP and authentication ----------------------------------------------------------------------------

    def _challenge(self) -> Reply:
        headers = [("WWW-Authenticate", "Negotiate")]
        if self.basic_enabled:
            headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        return Reply(401, headers=headers)

    def _serve(self, request: RequestHandler) -> Reply:
        if self.faults.latency > 0:
            time.sleep(self.faults.latency)
        if request.path.split("?", 1)[0].rstrip("/").lower() != "/wsman":
            return Reply(404)
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            return Reply(400, close=True)
        if not 0 <= length <= min(MAX_BODY, self.quotas.max_envelope_kb * 1024):
            return Reply(413, close=True)  # what a request past MaxEnvelopeSizekb gets: no SOAP, just HTTP 413
        body = request.rfile.read(length) if length else b""

        context, final_token, refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        token_headers = (
            [("WWW-Authenticate", "Negotiate " + base64.b64encode(final_token).decode())] if final_token else []
        )
        if not body:
            # pywinrm and pypsrp open the security context with an empty POST before the first encrypted message.
            return Reply(200, headers=token_headers)
        if self.faults.redirect_to:
            return Reply(307, headers=token_headers + [("Location", self.faults.redirect_to)])

        encrypted = is_encrypted(request.headers.get("Content-Type", ""))
        if encrypted:
            if context is None:
                return self._challenge()
            try:
                body = decrypt_body(context, body)
            except EncryptedBodyInvalid as exc:
                log.debug("%s: %s", self.computer_name, exc)
                return Reply(400, close=True)  # the NTLM sequence numbers are out of step now
        status, xml = self._soap(body, encrypted_or_tls=encrypted or self.https, user=request.auth.user)
        if encrypted:
            assert context is not None
            return Reply(status, encrypt_body(context, xml), token_headers + [("Content-Type", wsman_auth.ENCRYPTED_CONTENT_TYPE)])
        return Reply(status, xml, token_headers + [("Content-Type", "application/soap+xml;charset=UTF-8")])

    def _authenticate(
        self, request: RequestHandler
    ) -> tuple[spnego.ContextProxy | None, bytes | None, Reply | None]:
        """(security context of the connection, final Negotiate token to return, or the 401 that ends the request)."""
        header = request.headers.get("Authorization")
        if header is None:
            if request.auth.established is None:
                return None, None, self._challenge()
            return request.auth.established, None, None
        try:
            scheme, payload = split_authorization(header)
            if scheme == "basic":
                return None, None, self._authenticate_basic(request, payload)
            if scheme in ("negotiate", "ntlm"):
                return self._step_negotiate(request, payload)
        except BadAuthorization as exc:
            log.debug("%s: logon refused: %s", self.computer_name, exc)
        return None, None, self._challenge()

    def _authenticate_basic(self, request: RequestHandler, payload: bytes) -> Reply | None:
        if not self.basic_enabled:
            return self._challenge()
        user, password = basic_credentials(payload)
        accepted = not self.faults.refuse_auth and any(
            account.accepts(user, password, self.computer_name) for account in self._accounts
        )
        if not accepted:
            log.info("%s: Basic logon refused for user %r", self.computer_name, user)
            return self._challenge()
        request.auth.user = _user_key(user)
        return None

    def _step_negotiate(
        self, request: RequestHandler, token: bytes
    ) -> tuple[spnego.ContextProxy | None, bytes | None, Reply | None]:
        auth = request.auth
        if auth.negotiation is None:
            auth.established = None  # a new logon on this connection replaces the old one
            cbt = self._certificate.channel_binding_hash if self._certificate is not None else None
            auth.negotiation = NTLM_USER_FILE.new_acceptor(cbt)
        context = auth.negotiation
        try:
            out_token = NTLM_USER_FILE.step(self._ntlm_lines, context, token)
        except Exception as exc:  # noqa: BLE001 - a malformed token (struct, ASN.1, value errors) is a failed logon
            auth.negotiation = None
            log.info("%s: Negotiate logon refused: %s", self.computer_name, type(exc).__name__)
            return None, None, self._challenge()
        if not context.complete:
            return None, None, Reply(401, headers=[("WWW-Authenticate", "Negotiate " + base64.b64encode(out_token or b"").decode())])
        auth.negotiation = None
        if self.faults.refuse_auth:
            log.info("%s: Negotiate logon refused by fault injection", self.computer_name)
            return None, None, self._challenge()
        auth.established = context
        auth.user = _user_key(context.client_principal or "")
        return context, out_token, None
