"""WinRMTransport's own logic against a stand-in for pywinrm's Protocol: delivery, retries, error mapping."""

from __future__ import annotations

import pytest
import requests
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WinRMTransportError, WSManFaultError

from runbook_lib.core.errors import (AuthenticationFailed, CertificateInvalid, EncryptionRequired, HostUnreachable,
                                     InputError, RemoteError, TimedOut)
from runbook_lib.remote import Credential, WinRMTransport, decode_invocation, read_declaration, render_output
from runbook_lib.remote import transport as transport_module

SECRET = "Pa55:word;$(x)"
APPLY = {"apply_id": "a1", "changes": [{"path": "HKLM\\SOFTWARE\\X", "name": "Y", "type": "REG_DWORD", "data": 1}]}
APPLY_RESULT = {"apply_id": "a1", "revision": 2, "pid": 4100, "process_started": "2026-11-30T10:00:00.0000000Z",
                "completed": True, "journal_error": None, "backup": [], "results": []}


class FakeProtocol:
    """Records what the transport asks of pywinrm; each hook may raise instead of answering."""

    instances: list["FakeProtocol"] = []
    script: dict = {}

    def __init__(self, endpoint, **options):
        self.endpoint, self.options = endpoint, options
        self.calls: list[str] = []
        self.stdin = b""
        self.command_line = None
        self.transport = self
        FakeProtocol.instances.append(self)

    def _hook(self, name):
        self.calls.append(name)
        action = FakeProtocol.script.get(name)
        if isinstance(action, list):
            action = action.pop(0) if action else None
        if isinstance(action, BaseException):
            raise action

    def open_shell(self, codepage=437):
        self._hook("open_shell")
        self.codepage = codepage
        return "shell-1"

    def run_command(self, shell_id, command, console_mode_stdin=True):
        self._hook("run_command")
        self.command_line, self.console_mode_stdin = command, console_mode_stdin
        return "cmd-1"

    def send_command_input(self, shell_id, command_id, data, end=False):
        self._hook("send")
        self.stdin += data
        self.ended = end

    def get_command_output_raw(self, shell_id, command_id):
        self._hook("receive")
        operation, args = read_declaration(decode_invocation(self.command_line, self.stdin))
        answer = FakeProtocol.script.get("answer", {operation: APPLY_RESULT}).get(operation)
        return render_output(operation, answer).encode("ascii"), b"", 0, True

    def cleanup_command(self, shell_id, command_id):
        self._hook("cleanup")

    def close_shell(self, shell_id):
        self._hook("close_shell")

    def close_session(self):
        self.calls.append("close_session")


@pytest.fixture
def fake(monkeypatch):
    FakeProtocol.instances = []
    FakeProtocol.script = {}
    monkeypatch.setattr(transport_module, "Protocol", FakeProtocol)
    return FakeProtocol


def make(**options) -> WinRMTransport:
    transport = WinRMTransport("web01.contoso.com", Credential("CONTOSO\\svc", SECRET), **options)
    transport.sleeps = []
    transport._sleep = transport.sleeps.append
    transport.listener_tls_version = lambda: None  # no diagnostic handshake to a made-up host
    return transport


def test_apply_is_delivered_as_text_on_stdin_and_cleaned_up(fake):
    outcome = make().run("apply", APPLY)
    protocol = fake.instances[0]
    assert outcome.data == APPLY_RESULT
    assert protocol.console_mode_stdin is False and protocol.ended is True
    assert protocol.calls[:2] == ["open_shell", "run_command"]
    assert protocol.calls[-3:] == ["cleanup", "close_shell", "close_session"]


def test_defaults_are_ntlm_with_encryption_and_validated_certificates(fake):
    make().run("apply", APPLY)
    protocol = fake.instances[0]
    assert protocol.endpoint == "http://web01.contoso.com:5985/wsman"
    assert protocol.options["transport"] == "ntlm"
    assert protocol.options["message_encryption"] == "auto"
    assert protocol.options["server_cert_validation"] == "validate"
    assert protocol.options["read_timeout_sec"] > protocol.options["operation_timeout_sec"]


def test_https_uses_port_5986_and_the_given_ca(fake):
    make(https=True, ca_trust_path="/etc/ca.pem").run("apply", APPLY)
    assert fake.instances[0].endpoint == "https://web01.contoso.com:5986/wsman"
    assert fake.instances[0].options["ca_trust_path"] == "/etc/ca.pem"


def test_large_stdin_is_sent_in_chunks_with_end_on_the_last(fake, monkeypatch):
    monkeypatch.setattr(transport_module, "_STDIN_CHUNK", 1000)
    make().run("apply", APPLY)
    sends = fake.instances[0].calls.count("send")
    assert sends > 5 and fake.instances[0].ended is True


def test_connection_errors_while_opening_the_shell_are_retried_with_backoff(fake):
    fake.script["open_shell"] = [requests.exceptions.ConnectionError("refused"), requests.exceptions.ConnectTimeout("t")]
    transport = make(retry_backoff_s=1.5)
    assert transport.run("apply", APPLY).data == APPLY_RESULT
    assert transport.sleeps == [1.5, 3.0]
    assert fake.instances[0].calls.count("run_command") == 1


def test_host_that_never_answers_is_unreachable_after_bounded_retries(fake):
    fake.script["open_shell"] = [requests.exceptions.ConnectionError("refused")] * 10
    transport = make(connect_retries=2)
    with pytest.raises(HostUnreachable, match="cannot connect to http://web01.contoso.com:5985/wsman"):
        transport.run("apply", APPLY)
    assert fake.instances[0].calls.count("open_shell") == 3


def test_apply_is_never_sent_twice_when_the_connection_breaks_after_the_command(fake):
    fake.script["run_command"] = [requests.exceptions.ConnectionError("reset")]
    with pytest.raises(TimedOut, match="remote state unknown") as caught:
        make().run("apply", APPLY)
    assert fake.instances[0].calls.count("run_command") == 1
    assert caught.value.started is None, "the command request got no answer: it may or may not have started"


def test_connection_lost_while_reading_output_is_state_unknown_of_a_started_command(fake):
    fake.script["receive"] = [requests.exceptions.ConnectionError("reset")]
    with pytest.raises(TimedOut, match="remote state unknown") as caught:
        make().run("apply", APPLY)
    assert caught.value.started is True


def test_a_shell_whose_connection_broke_is_deleted_over_a_fresh_session(fake):
    fake.script["receive"] = [requests.exceptions.ConnectionError("reset")]
    fake.script["close_shell"] = [requests.exceptions.ConnectionError("still the broken session")]
    with pytest.raises(TimedOut):
        make().run("apply", APPLY)
    assert len(fake.instances) == 2 and fake.instances[1].calls == ["close_shell", "close_session"]


def test_no_answer_while_opening_the_shell_is_unreachable_not_unknown(fake):
    fake.script["open_shell"] = [requests.exceptions.ReadTimeout("slow")]
    with pytest.raises(HostUnreachable, match="nothing ran"):
        make(connect_retries=0).run("apply", APPLY)
    assert "run_command" not in fake.instances[0].calls


def test_operation_timeouts_while_waiting_for_output_are_polled_through(fake):
    fake.script["receive"] = [WinRMOperationTimeoutError(), WinRMOperationTimeoutError()]
    assert make().run("apply", APPLY).data == APPLY_RESULT
    assert fake.instances[0].calls.count("receive") == 3


def test_command_running_past_its_wall_clock_limit_times_out(fake):
    fake.script["receive"] = [WinRMOperationTimeoutError()] * 5
    transport = make(command_timeout_s=10)
    ticks = iter([0, 0, 5, 11, 20, 30])
    transport._clock = lambda: next(ticks)
    with pytest.raises(TimedOut, match="did not finish within 10 s"):
        transport.run("apply", APPLY)


def fault(reason: str, code: int | None = None) -> WSManFaultError:
    return WSManFaultError(500, "Bad HTTP response", "<fault/>", reason, "s:Sender", "w:AccessDenied", code)


@pytest.mark.parametrize(
    "error, expected, text",
    [
        (InvalidCredentialsError("the specified credentials were rejected by the server"), AuthenticationFailed, "ntlm"),
        (requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), CertificateInvalid, "ca_trust_path"),
        (requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number"), HostUnreachable, "TLS handshake"),
        (requests.exceptions.ReadTimeout(f"read timed out password={SECRET}"), HostUnreachable, "nothing ran"),
        (fault("The WinRM service cannot process the request: unencrypted traffic is currently disabled"), EncryptionRequired, "unencrypted"),
        (WinRMTransportError("http", 500, "<f>AllowUnencrypted is false</f>"), EncryptionRequired, "unencrypted"),
        (fault("Access is denied.", 5), AuthenticationFailed, "access denied"),
        (fault("The WS-Management service cannot process the request.", 2150858843), RemoteError, "2150858843"),
        (WinRMTransportError("http", 503, f"Service Unavailable {SECRET}"), RemoteError, "HTTP 503"),
        (ValueError(f"strange {SECRET}"), RemoteError, "unexpected ValueError"),
    ],
)
def test_library_errors_map_to_project_errors_without_the_password(fake, error, expected, text):
    fake.script["open_shell"] = [error]
    with pytest.raises(expected) as caught:
        make(connect_retries=0).run("apply", APPLY)
    message = str(caught.value)
    assert text in message and SECRET not in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_script_result_travels_through_parse_output(fake):
    fake.script["answer"] = {"apply": None}
    with pytest.raises(RemoteError, match="result is not an object"):
        make().run("apply", APPLY)


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"auth": "digest"}, "auth must be one of"),
        ({"auth": "basic"}, "unencrypted"),
        ({"auth": "certificate"}, "cert_pem"),
        ({"operation_timeout_s": 30, "read_timeout_s": 30}, "read_timeout_s must exceed"),
        ({"connect_retries": -1}, "must not be negative"),
    ],
)
def test_unsafe_or_impossible_settings_are_refused_up_front(kwargs, problem):
    with pytest.raises(InputError, match=problem):
        WinRMTransport("web01", Credential("u", SECRET), **kwargs)


def test_password_auth_without_a_credential_is_refused():
    with pytest.raises(InputError, match="needs a credential"):
        WinRMTransport("web01")


def test_kerberos_without_its_package_is_refused(monkeypatch):
    monkeypatch.setattr(transport_module.winrm_transport, "HAVE_KERBEROS", False)
    with pytest.raises(InputError, match="pykerberos"):
        WinRMTransport("web01.contoso.com", auth="kerberos")


def test_ipv6_address_is_bracketed_in_the_endpoint():
    assert WinRMTransport("::1", Credential("u", "p")).endpoint == "http://[::1]:5985/wsman"


def test_repr_shows_endpoint_not_password():
    assert SECRET not in repr(make()) and "web01.contoso.com" in repr(make())
