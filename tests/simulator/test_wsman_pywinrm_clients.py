"""Unmodified pywinrm talks to the listener over every transport the runbook may use."""

from __future__ import annotations

import pytest
import requests
import winrm
from wsman_testkit import PASSWORD, USER, protocol, session

TRANSPORTS = ["basic", "ntlm"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_ps_returns_what_the_host_printed(start_server, host, transport):
    server = start_server(host, auth="basic")

    result = session(server, transport).run_ps("Get-Date -Format o")

    assert result.status_code == 0
    assert result.std_out == b"ran:Get-Date -Format o\r\n"
    assert result.std_err == b""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_cmd_joins_command_and_arguments_with_single_spaces(start_server, host, transport):
    server = start_server(host, auth="basic")

    result = session(server, transport).run_cmd("ipconfig", ["/all", "/v"])

    assert result.std_out == b"cmd:ipconfig /all /v\r\n"
    assert host.calls == [("ipconfig /all /v", b"")]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_protocol_calls_reuse_one_shell_for_several_commands(start_server, host, transport):
    server = start_server(host, auth="basic")
    client = protocol(server, transport)

    shell_id = client.open_shell()
    outputs = []
    for command in ("hostname", "whoami"):
        command_id = client.run_command(shell_id, command)
        outputs.append(client.get_command_output(shell_id, command_id))
        client.cleanup_command(shell_id, command_id)
    client.close_shell(shell_id)

    assert outputs == [(b"cmd:hostname\r\n", b"", 0), (b"cmd:whoami\r\n", b"", 0)]


def test_ntlm_over_http_is_encrypted_since_strict_mode_refuses_anything_else(start_server, host):
    server = start_server(host, strict=True)

    result = session(server, "ntlm").run_ps("'sealed'")

    assert result.std_out == b"ran:'sealed'\r\n"


@pytest.mark.parametrize("transport", ["ssl", "ntlm"])
def test_https_validates_against_the_generated_ca(start_server, host, transport):
    server = start_server(host, auth="basic", https=True)

    result = session(server, transport).run_ps("'over tls'")

    assert server.url.startswith("https://127.0.0.1:")
    assert result.std_out == b"ran:'over tls'\r\n"


def test_https_without_the_ca_fails_certificate_validation(start_server, host, monkeypatch):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    server = start_server(host, auth="basic", https=True)
    client = winrm.Session(server.url, auth=(USER, PASSWORD), transport="ssl")

    with pytest.raises(requests.exceptions.SSLError):
        client.run_ps("'never runs'")
    assert host.calls == []


def test_https_ntlm_without_channel_binding_is_refused(start_server, host):
    server = start_server(host, https=True)

    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        session(server, "ntlm", send_cbt=False).run_ps("'unbound'")
