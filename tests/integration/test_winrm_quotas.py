"""WinRM 2.0's quotas as the simulator enforces them, and a client that stays within them."""

import dataclasses
import threading
import time

import pytest
import requests
from winrm.protocol import Protocol

from runbook_lib.core.errors import QuotaExceeded
from runbook_lib.remote import WinRMTransport
from runbook_lib.simulator.fleet import start_node
from runbook_lib.simulator.profile import builtin_profile
from runbook_lib.simulator.wsman import WINRM_2_QUOTAS


@pytest.fixture
def winrm2(credential):
    """Server 2008 R2 as installed (WinRM 2.0), its quotas adjustable; stopped afterwards."""
    nodes = []

    def start(address, **quota):
        profile = builtin_profile("ws2008r2_untouched")
        profile = dataclasses.replace(profile, winrm=quota)
        node = start_node(profile, [(credential.username, credential.password)], address=address, strict=True)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


def hold_shells(node, credential, count):
    """Other sessions of the same account, still holding shells on the host (an admin's, or leaked ones)."""
    protocol = Protocol(node.url, transport="ntlm", username=credential.username, password=credential.password)
    return [protocol.open_shell() for _ in range(count)]


def transport(node, credential, **options):
    return WinRMTransport(node.server.address, credential, port=node.server.port, connect_retries=0,
                          retry_backoff_s=0.1, **options)


def test_a_host_as_installed_has_winrm_2_quotas_and_answers_a_sixth_shell_with_the_real_fault(winrm2, credential):
    node = winrm2("127.0.0.61")
    assert node.server.quotas == WINRM_2_QUOTAS
    hold_shells(node, credential, 5)
    protocol = Protocol(node.url, transport="ntlm", username=credential.username, password=credential.password)
    with pytest.raises(Exception) as caught:
        protocol.open_shell()
    assert caught.value.wsman_fault_code == 2150859173
    assert "allowed a maximum number of 5 concurrent shells" in caught.value.reason


def test_a_used_up_quota_is_waited_out_until_idle_shells_time_out_then_the_operation_runs(winrm2, credential):
    node = winrm2("127.0.0.62", shell_idle_timeout_s=1.0)
    hold_shells(node, credential, 5)  # left behind: the host deletes them after its idle timeout
    started = time.monotonic()
    assert transport(node, credential, quota_wait_s=20).run("last_boot", {}).data["last_boot"]
    assert time.monotonic() - started >= 0.9 and node.server.quota_faults >= 1


def test_a_quota_that_stays_used_up_is_one_clear_line_and_nothing_ran(winrm2, credential):
    node = winrm2("127.0.0.63")
    hold_shells(node, credential, 5)
    with pytest.raises(QuotaExceeded, match="maximum number of 5 concurrent shells.*MaxShellsPerUser.*nothing ran"):
        transport(node, credential, quota_wait_s=0.3).run("last_boot", {})


def test_threads_of_one_process_never_open_more_shells_than_the_host_allows(winrm2, credential):
    node = winrm2("127.0.0.64", max_shells_per_user=2)
    errors = []

    def one():
        try:
            transport(node, credential, max_shells=2, quota_wait_s=30).run("inspect", {
                "host": "h", "values": [{"path": "HKLM\\SOFTWARE\\X", "name": "V"}]})
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and node.server.quota_faults == 0


def test_a_request_past_max_envelope_size_gets_http_413_as_on_windows(winrm2):
    node = winrm2("127.0.0.65")
    answer = requests.post(node.url, data=b"x" * (150 * 1024 + 1), timeout=10)
    assert answer.status_code == 413


@pytest.mark.parametrize("quota", [{"max_memory_per_shell_mb": 60}, {"max_processes_per_shell": 2}])
def test_a_shell_too_small_for_inspects_child_powershell_costs_two_warnings_not_the_facts(winrm2, credential,
                                                                                          quota):
    node = winrm2("127.0.0.66", **quota)
    outcome = transport(node, credential).run("inspect", {"host": "h", "values": [
        {"path": "HKLM\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v3.5", "name": "Install"}]})
    assert outcome.data["observed"]["security_protocol"] == {} and outcome.data["registry"]
    assert outcome.warnings == ("SecurityProtocol could not be read from 64-bit Windows PowerShell",
                                "SecurityProtocol could not be read from 32-bit Windows PowerShell")
