"""A WinRM listener that answers with a redirect: refused with both URLs named, and nothing goes where it points.

Following a redirect would send the NTLM logon to another host and save that host's facts (or apply changes to it)
under the first host's name.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

import pytest

from runbook_lib.core.errors import RedirectRefused
from runbook_lib.remote import WinRMTransport
from runbook_lib.simulator.fleet import start_node
from runbook_lib.simulator.profile import builtin_profile
from runbook_lib.simulator.wsman import Faults


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(address: str, status: int, location: str = ""):
    """An HTTP server on loopback answering every request with ``status``; it records what reached it."""
    seen: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((self.command, self.path, self.headers.get("Authorization", "")))
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _answer

        def log_message(self, *args):
            pass

    server = _Server((address, 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, seen


@pytest.fixture
def elsewhere():
    """The host a redirect points at: it would ask for a logon if anything reached it."""
    server, seen = _serve("127.0.0.22", 401)
    yield f"http://127.0.0.22:{server.server_address[1]}/wsman", seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_inspect_refuses_a_redirect_in_one_line_and_nothing_reaches_its_target(status, elsewhere, password):
    target_url, seen_there = elsewhere
    redirector, seen_here = _serve("127.0.0.21", status, target_url)
    url = f"http://127.0.0.21:{redirector.server_address[1]}/wsman"
    try:
        result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "inspect", url], capture_output=True,
                                text=True, timeout=60,
                                env={**os.environ, "TLS_RUNBOOK_USER": "runbook-admin", "TLS_RUNBOOK_PASSWORD": password})
    finally:
        redirector.shutdown()
        redirector.server_close()
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert url in lines[0] and target_url in lines[0] and f"HTTP {status}" in lines[0]
    assert seen_here and seen_there == []
    assert password not in result.stderr


def test_a_redirect_after_the_logon_is_refused_before_the_next_request(elsewhere, credential):
    target_url, seen_there = elsewhere
    node = start_node(builtin_profile("ws2016_untouched"), [(credential.username, credential.password)],
                      address="127.0.0.23", strict=True, faults=Faults(redirect_to=target_url))
    url = node.url
    try:
        transport = WinRMTransport("127.0.0.23", credential, port=node.server.port, connect_retries=0)
        with pytest.raises(RedirectRefused) as raised:
            transport.run("probe", {"endpoints": ["login.microsoftonline.com:443"]})
    finally:
        node.stop()
    assert url in str(raised.value) and target_url in str(raised.value) and "HTTP 307" in str(raised.value)
    assert seen_there == []


def test_the_redirect_target_is_shown_absolute_and_without_user_info(elsewhere, credential):
    redirector, _ = _serve("127.0.0.21", 302, "//someone:hunter2@127.0.0.22:8/wsman")
    try:
        transport = WinRMTransport("127.0.0.21", credential, port=redirector.server_address[1], connect_retries=0)
        with pytest.raises(RedirectRefused) as raised:
            transport.run("probe", {"endpoints": ["login.microsoftonline.com:443"]})
    finally:
        redirector.shutdown()
        redirector.server_close()
    assert "http://127.0.0.22:8/wsman" in str(raised.value) and "hunter2" not in str(raised.value)
