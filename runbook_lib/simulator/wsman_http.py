"""The HTTP side of a simulated WinRM listener: a threaded server that tracks its connections (so an outage can
cut them), one handler per connection that keeps the connection's NTLM state and passes each request to the
:class:`~runbook_lib.simulator.wsman.WSManServer`, and the reply it writes back."""

from __future__ import annotations

import http.server
import logging
import socket
import ssl
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import spnego

from runbook_lib.simulator.wsman_shells import DropConnection

if TYPE_CHECKING:
    from runbook_lib.simulator.wsman import WSManServer

log = logging.getLogger("runbook_lib.simulator.wsman")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


@dataclass
class ConnectionAuth:
    """NTLM authenticates a TCP connection, not a request: the security context lives as long as the connection."""

    negotiation: spnego.ContextProxy | None = None
    established: spnego.ContextProxy | None = None
    user: str = ""  # who the connection (NTLM) or the request (Basic) authenticated as, for per-user quotas


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in one write anyway; this covers the 401 round trips
    server: Listener

    def setup(self) -> None:
        self.timeout = self.server.wsman.idle_timeout
        super().setup()
        self.auth = ConnectionAuth()

    def do_POST(self) -> None:
        try:
            reply = self.server.wsman._serve(self)
        except DropConnection:
            log.debug("%s: connection dropped without an answer", self.server.wsman.computer_name)
            self.close_connection = True
            return
        self._send(reply)

    def do_GET(self) -> None:
        self._send(Reply(405, headers=[("Allow", "POST")]))

    def _send(self, reply: Reply) -> None:
        lines = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}", "Server: Microsoft-HTTPAPI/2.0"]
        lines += [f"{name}: {value}" for name, value in reply.headers]
        lines.append(f"Content-Length: {len(reply.body)}")
        if reply.close:
            lines.append("Connection: close")
            self.close_connection = True
        # One write: a separate body write meets Nagle and delayed ACK and costs ~40 ms per request.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
        log.debug("%s: %s %s -> %d", self.server.wsman.computer_name, self.command, self.path, reply.status)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's signature
        log.debug("%s: " + format, self.server.wsman.computer_name, *args)


class Listener(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # come back on the same port after go_down, past TIME_WAIT

    def __init__(self, wsman: WSManServer, address: tuple[str, int], tls: ssl.SSLContext | None):
        self.wsman = wsman
        self.tls = tls
        super().__init__(address, RequestHandler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        # The TLS handshake runs here, in the connection's thread, so a slow client cannot hold up accept().
        request.settimeout(self.wsman.idle_timeout)
        connection = request
        if self.tls is not None:
            try:
                connection = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("%s: TLS handshake failed: %s", self.wsman.computer_name, type(exc).__name__)
                request.close()
                return
        self.wsman._track(connection, True)
        try:
            super().finish_request(connection, client_address)
        finally:
            self.wsman._track(connection, False)
            connection.close()

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # Clients that vanish mid-answer (and go_down cutting connections) are normal here; anything else is a bug.
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("%s: connection from %s ended abruptly", self.wsman.computer_name, client_address[0])
        else:
            log.exception("%s: request from %s failed", self.wsman.computer_name, client_address[0])
