"""Injected failures reach the client in the shapes real Windows hosts give them."""

from __future__ import annotations

import time

import pytest
import requests
import winrm
from wsman_testkit import RecordingHost, protocol, session

from runbook_lib.simulator.wsman import DropConnection, Faults

TRANSPORTS = ["basic", "ntlm"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_receive_timeouts_are_retried_by_pywinrm_without_the_caller_noticing(start_server, host, transport):
    server = start_server(host, auth="basic", faults=Faults(receive_timeouts=3))

    result = session(server, transport).run_ps("'patient'")

    assert result.std_out == b"ran:'patient'\r\n"
    assert len(host.calls) == 1


def test_each_receive_timeout_is_a_timed_out_fault_before_the_output(start_server, host):
    server = start_server(host, auth="basic", faults=Faults(receive_timeouts=1))
    client = protocol(server, "basic")
    shell_id = client.open_shell()
    command_id = client.run_command(shell_id, "hostname")

    with pytest.raises(winrm.exceptions.WinRMOperationTimeoutError):
        client.get_command_output_raw(shell_id, command_id)
    assert client.get_command_output_raw(shell_id, command_id) == (b"cmd:hostname\r\n", b"", 0, True)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_http_500_fault_maps_to_wsman_fault_error_even_when_encrypted(start_server, host, transport):
    faults = Faults()
    server = start_server(host, auth="basic", faults=faults)
    client = session(server, transport)
    faults.http_500_next = 1

    with pytest.raises(winrm.exceptions.WSManFaultError) as raised:
        client.run_ps("'unlucky'")

    assert raised.value.code == 500
    assert raised.value.fault_code == "s:Receiver"
    assert raised.value.fault_subcode == "w:InternalError"
    assert raised.value.wsman_fault_code == 0x80004005
    assert client.run_ps("'lucky'").std_out == b"ran:'lucky'\r\n"


def test_unknown_shell_id_is_an_invalid_selectors_fault(start_server, host):
    server = start_server(host, auth="basic")

    with pytest.raises(winrm.exceptions.WSManFaultError) as raised:
        protocol(server, "basic").run_command("00000000-0000-0000-0000-000000000000", "hostname")

    assert raised.value.fault_subcode == "w:InvalidSelectors"
    assert raised.value.wsman_fault_code == 2150858843


def test_unknown_command_id_is_an_invalid_selectors_fault(start_server, host):
    server = start_server(host, auth="basic")
    client = protocol(server, "basic")
    shell_id = client.open_shell()

    with pytest.raises(winrm.exceptions.WSManFaultError) as raised:
        client.get_command_output_raw(shell_id, "11111111-1111-1111-1111-111111111111")

    assert raised.value.fault_subcode == "w:InvalidSelectors"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_drop_after_requests_surfaces_as_a_connection_error(start_server, host, transport):
    faults = Faults()
    server = start_server(host, auth="basic", faults=faults)
    faults.drop_after_requests = 2  # Create is answered, Command is not

    with pytest.raises(requests.exceptions.ConnectionError):
        session(server, transport).run_ps("'lost'")

    assert host.calls == []
    assert session(server, transport).run_ps("'found'").std_out == b"ran:'found'\r\n"


def test_handler_can_drop_the_connection_mid_command(start_server):
    def unplugged(command_line, stdin):
        raise DropConnection()

    server = start_server(RecordingHost(unplugged), auth="basic")

    with pytest.raises(requests.exceptions.ConnectionError):
        session(server, "basic").run_ps("'cable pulled'")


def test_handler_crash_is_a_fault_not_a_hang(start_server):
    def broken(command_line, stdin):
        raise KeyError("host model bug")

    server = start_server(RecordingHost(broken), auth="basic")

    with pytest.raises(winrm.exceptions.WSManFaultError, match="KeyError"):
        session(server, "basic").run_ps("'boom'")


def test_latency_slows_every_request(start_server, host):
    server = start_server(host, auth="basic", faults=Faults(latency=0.05))

    started = time.monotonic()
    session(server, "basic").run_ps("'slow'")

    assert time.monotonic() - started >= 5 * 0.05  # run_ps makes five requests


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_go_down_refuses_connections_then_comes_back_on_the_same_port(start_server, host, transport):
    server = start_server(host, auth="basic")
    url = server.url
    client = protocol(server, transport)
    shell_id = client.open_shell()

    server.go_down(0.6)
    with pytest.raises(requests.exceptions.ConnectionError):
        session(server, transport).run_ps("'during reboot'")

    deadline = time.monotonic() + 5
    while True:
        try:
            result = session(server, transport).run_ps("'after reboot'")
            break
        except requests.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "the listener did not come back"
            time.sleep(0.1)
    assert result.std_out == b"ran:'after reboot'\r\n"
    assert server.url == url
    with pytest.raises(winrm.exceptions.WSManFaultError) as raised:
        protocol(server, transport).run_command(shell_id, "hostname")
    assert raised.value.fault_subcode == "w:InvalidSelectors"  # the shell died with the reboot
