"""Who may log on, how, and that credentials never leak into logs or errors."""

from __future__ import annotations

import base64
import logging

import pytest
import winrm
from pypsrp.client import Client
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan
from wsman_testkit import PASSWORD, USER, session

from runbook_lib.simulator.wsman import Faults, WSManServer


def test_strict_mode_refuses_basic_over_http(start_server, host):
    server = start_server(host, auth="basic", strict=True)

    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        session(server, "basic").run_ps("'refused'")
    assert host.calls == []


def test_strict_mode_refuses_unencrypted_soap_with_a_fault_naming_the_setting(start_server, host):
    server = start_server(host, strict=True)

    with pytest.raises(winrm.exceptions.WSManFaultError) as raised:
        session(server, "ntlm", message_encryption="never").run_ps("'plain'")

    assert raised.value.code == 500
    assert raised.value.fault_subcode == "w:AccessDenied"
    assert "AllowUnencrypted=false" in raised.value.reason
    assert host.calls == []


def test_basic_is_refused_when_the_listener_offers_negotiate_only(start_server, host):
    server = start_server(host, auth="ntlm")

    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        session(server, "basic").run_ps("'refused'")


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_wrong_password_is_refused_and_never_echoed(start_server, host, transport, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Guess-7781"
    server = start_server(host, auth="basic")

    with pytest.raises(winrm.exceptions.InvalidCredentialsError) as raised:
        session(server, transport, password=wrong).run_ps("'nope'")
    session(server, transport).run_ps("'yes'")

    captured = capsys.readouterr()
    basic_header = base64.b64encode(f"{USER}:{wrong}".encode()).decode()
    everything = [caplog.text, captured.out, captured.err, str(raised.value), repr(raised.value)]
    for text in everything:
        for secret in (wrong, PASSWORD, basic_header):
            assert secret not in text
    # pyspnego's own DEBUG records carry NTLM tokens (not passwords); the listener's records carry neither.
    server_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("runbook_lib"))
    assert "WIN-SIM01" in server_log  # the listener did log, so the checks below are not vacuous
    for token_trace in ("Authorization", "TlRMTVNT", "oYI", "YII"):
        assert token_trace not in server_log
    assert len(host.calls) == 1  # only the logon with the right password reached the host


def test_refuse_auth_fault_fails_every_logon_until_cleared(start_server, host):
    faults = Faults(refuse_auth=True)
    server = start_server(host, auth="basic", faults=faults)

    for transport in ("basic", "ntlm"):
        with pytest.raises(winrm.exceptions.InvalidCredentialsError):
            session(server, transport).run_ps("'x'")
    faults.refuse_auth = False

    assert session(server, "ntlm").run_ps("'x'").status_code == 0


@pytest.mark.parametrize("user", [USER, USER.upper(), f".\\{USER}", f"WIN-SIM07\\{USER}", f"{USER}@WIN-SIM07"])
@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_local_account_is_accepted_in_every_spelling_clients_send(start_server, host, user, transport):
    server = start_server(host, auth="basic", computer_name="WIN-SIM07")

    assert session(server, transport, user=user).run_ps("'me'").status_code == 0


def test_hosts_of_a_fleet_keep_their_own_credentials(start_server, host):
    alpha = start_server(host, address="127.0.0.2", computer_name="WIN-ALPHA", credentials=[("admin", "alpha-pw")])
    bravo = start_server(host, address="127.0.0.3", computer_name="WIN-BRAVO", credentials=[("admin", "bravo-pw")])

    for _ in range(2):  # interleaved, so each logon follows one to the other host
        assert session(alpha, "ntlm", user="admin", password="alpha-pw").run_ps("'a'").std_out == b"ran:'a'\r\n"
        assert session(bravo, "ntlm", user="admin", password="bravo-pw").run_ps("'b'").std_out == b"ran:'b'\r\n"
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        session(alpha, "ntlm", user="admin", password="bravo-pw").run_ps("'x'")
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        session(bravo, "ntlm", user="admin", password="alpha-pw").run_ps("'x'")
    assert alpha.url.startswith("http://127.0.0.2:") and bravo.url.startswith("http://127.0.0.3:")


def test_pypsrp_execute_cmd_with_negotiate_and_with_basic(start_server, host):
    server = start_server(host, auth="basic")

    negotiate = Client("127.0.0.1", port=server.port, username=USER, password=PASSWORD, ssl=False, auth="negotiate")
    basic = Client(
        "127.0.0.1", port=server.port, username=USER, password=PASSWORD, ssl=False, auth="basic", encryption="never"
    )

    assert negotiate.execute_cmd("whoami /all") == ("cmd:whoami /all\r\n", "", 0)
    assert basic.execute_cmd("hostname") == ("cmd:hostname\r\n", "", 0)


def test_pypsrp_separate_arguments_and_capitalised_terminate_signal(start_server, host):
    server = start_server(host)
    wsman = WSMan("127.0.0.1", port=server.port, username=USER, password=PASSWORD, ssl=False, auth="ntlm")

    with WinRS(wsman) as shell:
        process = Process(shell, "cmd.exe", ["/c", "echo", "hi"])
        process.invoke()
        process.signal(SignalCode.TERMINATE)

    assert process.stdout == b"cmd:cmd.exe /c echo hi\r\n"
    assert process.rc == 0


def test_pypsrp_over_https_with_the_generated_ca(start_server, host):
    server = start_server(host, https=True)
    client = Client(
        "127.0.0.1", port=server.port, username=USER, password=PASSWORD, ssl=True, cert_validation=server.ca_path
    )

    assert client.execute_cmd("ver") == ("cmd:ver\r\n", "", 0)


def test_a_server_without_credentials_is_a_configuration_error(host):
    with pytest.raises(ValueError, match="credential"):
        WSManServer(host, credentials=[])


MALFORMED_TOKENS = {
    "empty": b"",
    "one byte": b"\x00",
    "signature only": b"NTLMSSP\x00",
    "negotiate cut short": b"NTLMSSP\x00\x01\x00\x00\x00",
    "authenticate with garbage fields": b"NTLMSSP\x00\x03\x00\x00\x00" + b"\xff" * 60,
    "spnego tag of the wrong type": b"\xa1\x03\x02\x01\x00",
    "asn.1 length past the end": b"\x60\x82\xff\xff\x06",
    "negotiate with garbage fields": b"NTLMSSP\x00\x01\x00\x00\x00" + b"\xff" * 40,
}


@pytest.mark.parametrize("scheme", ["Negotiate", "NTLM"])
def test_malformed_tokens_get_401_on_a_live_connection_and_no_traceback(start_server, host, scheme, caplog):
    import http.client

    caplog.set_level(logging.DEBUG)
    server = start_server(host)
    connection = http.client.HTTPConnection(server.address, server.port, timeout=10)
    try:
        for name, token in MALFORMED_TOKENS.items():
            connection.request("POST", "/wsman", body=b"",
                               headers={"Authorization": f"{scheme} {base64.b64encode(token).decode()}"})
            response = connection.getresponse()
            response.read()
            assert response.status == 401, name
            assert response.headers["WWW-Authenticate"].startswith("Negotiate"), name
    finally:
        connection.close()
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
    session(server, "ntlm").run_ps("'a good logon still works'")
