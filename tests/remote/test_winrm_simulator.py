"""The real WinRM path: WinRMTransport over pywinrm against the project's WS-Management simulator."""

from __future__ import annotations

import threading

import pytest

from runbook_lib.core.errors import AuthenticationFailed, CertificateInvalid, EncryptionRequired, RemoteScriptFailed
from runbook_lib.remote import Credential, WinRMTransport, decode_invocation, read_declaration, render_output
from runbook_lib.simulator.wsman import CommandResult, WSManServer

USER, PASSWORD = "vagrant", "S3cret;$(pa55)"
FACTS = {
    "schema": "tls-runbook/host-facts/v1", "host": "web01", "simulated": True, "collected_at": "2026-01-01T00:00:00Z",
    "os": {"caption": "Windows Server 2016", "version": "10.0.14393", "service_pack": 0, "product_type": "server",
           "architecture": "x64"},
    "hotfixes": [], "powershell": {"windows_powershell": "5.1.14393.0", "pwsh": None}, "registry": [],
    "observed": {"security_protocol": {"x64": 240}, "probes": []},
}


class CannedHost:
    """Answers every runbook script from its declaration, as the simulator's host model will."""

    def __init__(self):
        self.seen: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, command_line: str, stdin: bytes) -> CommandResult:
        operation, args = read_declaration(decode_invocation(command_line, stdin))
        with self.lock:
            self.seen.append((operation, args))
        if operation == "journal":
            return CommandResult(render_output("journal", error=f"no journal for apply_id {args['apply_id']} on this host"))
        return CommandResult(render_output("inspect", dict(FACTS, host=args["host"]), warnings=("canned",)))


@pytest.fixture
def serve():
    servers = []

    def start(**options):
        options.setdefault("credentials", [(USER, PASSWORD)])
        host = CannedHost()
        server = WSManServer(host, **options).start()
        servers.append(server)
        return server, host

    yield start
    for server in servers:
        server.stop()


def transport_for(server, password=PASSWORD, **options):
    options.setdefault("connect_retries", 0)
    return WinRMTransport("127.0.0.1", Credential(USER, password), port=server.port, https=server.https, **options)


INSPECT = {"host": "web01", "values": [{"path": "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319", "name": "SchUseStrongCrypto"}]}


def test_inspect_over_ntlm_with_message_encryption(serve):
    server, host = serve(strict=True)
    outcome = transport_for(server).run("inspect", INSPECT)
    assert outcome.data == FACTS and outcome.warnings == ("canned",)
    assert host.seen == [("inspect", INSPECT)]


def test_inspect_over_https_with_the_listeners_ca(serve):
    server, _ = serve(https=True)
    assert transport_for(server, ca_trust_path=server.ca_path).run("inspect", INSPECT).data["host"] == "web01"


def test_https_listener_with_an_untrusted_certificate_is_certificate_invalid(serve):
    server, _ = serve(https=True)
    with pytest.raises(CertificateInvalid):
        transport_for(server).run("inspect", INSPECT)


def test_wrong_password_is_authentication_failed_without_the_password(serve):
    server, _ = serve()
    with pytest.raises(AuthenticationFailed) as caught:
        transport_for(server, password="wrong-" + PASSWORD).run("inspect", INSPECT)
    assert PASSWORD not in str(caught.value)


def test_basic_over_http_on_a_strict_host_is_refused(serve):
    server, _ = serve(auth="basic", strict=True)
    with pytest.raises((AuthenticationFailed, EncryptionRequired)):
        transport_for(server, auth="basic", allow_unencrypted=True).run("inspect", INSPECT)


def test_script_error_from_the_host_is_remote_script_failed(serve):
    server, _ = serve()
    with pytest.raises(RemoteScriptFailed, match="127.0.0.1: journal: no journal for apply_id a1 on this host"):
        transport_for(server).run("journal", {"apply_id": "a1"})


def test_localized_powershell_errors_arrive_in_the_shells_code_page_and_are_read_as_such(serve):
    from runbook_lib.simulator.wsman import clixml_error

    german = 'Die Benennung "x" wurde nicht erkannt. \u00dcberpr\u00fcfen Sie die Schreibweise.'

    def localized(command_line, stdin):
        return CommandResult(stdout="", stderr=clixml_error(german), exit_code=1)

    server = WSManServer(localized, credentials=[(USER, PASSWORD)]).start()
    try:
        with pytest.raises(RemoteScriptFailed) as caught:
            transport_for(server).run("inspect", INSPECT)
    finally:
        server.stop()
    assert str(caught.value) == f"127.0.0.1: inspect: {german}"


def test_transports_in_many_threads_build_their_sessions_one_at_a_time(serve, monkeypatch):
    """requests changes os.environ while pywinrm builds a session; two builds at once broke each other (KeyError)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from winrm import transport as winrm_transport

    server, _ = serve(strict=True)
    building, most = [0], [0]
    original = winrm_transport.Transport.build_session

    def watched(self):
        building[0] += 1
        most[0] = max(most[0], building[0])
        time.sleep(0.05)  # a wide window: without the lock every thread would be in here at once
        try:
            return original(self)
        finally:
            building[0] -= 1

    monkeypatch.setattr(winrm_transport.Transport, "build_session", watched)
    start = threading.Barrier(6)

    def one(_):
        transport = transport_for(server)
        start.wait()
        return transport.run("inspect", INSPECT).data

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(one, range(6))) == [FACTS] * 6
    assert most[0] == 1


def test_a_transport_changes_the_process_environment_only_while_it_builds_a_session(serve, monkeypatch):
    """requests also set and removed os.environ["no_proxy"] around every request of a session without a proxy, so
    threads removed each other's (a KeyError about once in a few thousand requests, 200 hosts in threads). Only the
    session's build touches it now, one thread at a time."""
    import os
    import threading

    from runbook_lib.remote import transport as transport_module

    server, _ = serve(strict=True)
    client, unlocked = threading.current_thread(), []

    class WatchedEnvironment(dict):  # the simulated host's threads change it too (its NTLM user file): not counted
        def __setitem__(self, key, value):
            self._note(key)
            super().__setitem__(key, value)

        def __delitem__(self, key):
            self._note(key)
            super().__delitem__(key)

        def _note(self, key):
            if threading.current_thread() is client and not transport_module._SESSION_BUILD_LOCK.locked():
                unlocked.append(key)

    monkeypatch.setattr(os, "environ", WatchedEnvironment(os.environ))
    assert transport_for(server).run("inspect", INSPECT).data == FACTS
    assert unlocked == []


def test_a_message_that_goes_out_on_a_new_connection_mid_session_reads_as_a_lost_connection(serve):
    """NTLM logs on the connection: once it drops, urllib3 opens a new one and the next encrypted message meets a 401
    there. That is a lost connection (the command's state unknown), not the "HTTP 400" that requests_ntlm's logon
    and resend of the undecryptable message would end in."""
    import time

    import requests

    server, _ = serve(strict=True)
    protocol = transport_for(server)._protocol()
    shell = protocol.open_shell()
    server.interrupt_network(0)  # the connection is cut; the shell lives on, as on Windows
    time.sleep(0.2)  # the close reaches the client, so its pool sees the connection dropped
    with pytest.raises(requests.exceptions.ConnectionError, match="went out on a new one"):
        protocol.run_command(shell, "ipconfig")
    protocol.transport.close_session()
