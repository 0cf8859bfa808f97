"""A restart is proven by the host's boot time, not by WinRM going away and coming back."""

import pytest

from runbook_lib.core.errors import RebootFailed, TimedOut
from runbook_lib.runbook.operations import inspect_host
from runbook_lib.runbook.reboot import reboot_and_wait
from runbook_lib.remote.target import connect


def test_restart_is_proven_by_a_later_boot_time_that_inspect_reports_too(simulated):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    before = inspect_host(target).os.last_boot
    report = reboot_and_wait(target, poll_s=0.2)
    assert node.host.reboots == 1 and report.last_boot_before == before < report.last_boot_after
    assert inspect_host(target).os.last_boot == report.last_boot_after
    assert f"last boot {before} -> {report.last_boot_after}" in report.render_text()


def test_a_host_down_for_less_than_one_poll_is_not_missed(simulated):
    from runbook_lib.runbook.reboot import BootWatch, schedule_reboot

    node = simulated("ws2016_untouched")
    target = connect(node.url)
    node.host.reboot_aborted = True  # shutdown.exe takes it; the restart below happens between two polls instead
    watch = BootWatch(schedule_reboot(target))
    assert watch.check(target) is None
    node.host.on_reboot = None  # a restart quicker than any poll: WinRM is never seen gone
    node.host.reboot()
    report = watch.check(target)
    assert node.host.reboots == 1 and report is not None and report.last_boot_after != report.last_boot_before
    assert report.unreachable_after_s is None, "it was never seen down, and the restart still counts"


def test_a_network_blip_is_not_a_restart_and_a_cancelled_restart_is_reported_as_such(simulated):
    node = simulated("ws2016_untouched")
    node.host.reboot_aborted = True  # shutdown.exe accepted it, then someone ran shutdown /a
    node.server.interrupt_network(0.5)  # WinRM goes away and comes back, as it would for a restart
    with pytest.raises(RebootFailed, match="still reports the boot time .* the restart did not happen"):
        reboot_and_wait(connect(node.url), delay_s=5, down_timeout_s=1, poll_s=0.2)
    assert node.host.reboots == 0


def test_a_lost_answer_to_the_restart_request_is_settled_by_the_boot_time_the_host_reported_before(simulated):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    before = inspect_host(target).os.last_boot
    node.host.drop_reboot_answer = True  # shutdown.exe takes it; the network drops before the answer gets out
    report = reboot_and_wait(target, poll_s=0.2, boot_seen=before)
    assert node.host.reboots == 1 and report.last_boot_before == before < report.last_boot_after


def test_a_lost_answer_with_no_restart_after_it_fails_as_not_restarted_and_without_a_boot_time_stays_unknown(
        simulated):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    before = inspect_host(target).os.last_boot
    node.host.reboot_aborted = node.host.drop_reboot_answer = True
    with pytest.raises(RebootFailed, match=f"still reports the boot time {before} .* answer to the request was lost"):
        reboot_and_wait(target, delay_s=5, down_timeout_s=1, poll_s=0.2, boot_seen=before)
    node.host.drop_reboot_answer = True
    with pytest.raises(TimedOut, match="connection lost after the command was sent"):
        reboot_and_wait(target, poll_s=0.2)  # nothing to decide by: the host's state is unknown, and said so
    assert node.host.reboots == 0


def test_a_shutdown_already_scheduled_is_reported_and_nothing_else_is_scheduled(simulated):
    node = simulated("ws2016_untouched")
    node.host.shutdown_scheduled = True
    with pytest.raises(RebootFailed, match="already scheduled .*exit 1190.* may be a power-off"):
        reboot_and_wait(connect(node.url), poll_s=0.2)
    assert node.host.reboots == 0


def test_the_new_boot_time_appears_only_once_the_host_has_been_down_and_is_back(simulated):
    """Windows sets LastBootUpTime at boot: a host about to go down never reports the new one (a runner that saw it
    early would run notebook 04 against a host going down)."""
    import socket
    import time

    node = simulated("ws2016_untouched", boot_seconds=1.5)
    target = connect(node.url)
    before = node.host.last_boot
    node.host.reboot()
    assert node.host.last_boot == before and node.host.reboots == 0  # going down: nothing of the boot yet
    with pytest.raises(ConnectionRefusedError):  # WinRM is gone at once
        socket.create_connection((node.server.address, node.server.port), timeout=1).close()
    deadline = time.monotonic() + 30
    while node.host.reboots == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert node.host.last_boot > before and inspect_host(target).os.last_boot == _utc(node.host.last_boot)


def _utc(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_poll_of_a_host_that_is_down_opens_no_winrm_session(simulated):
    """While the port refuses, the watch knows enough: no logon, no shell, no PowerShell on a booting host."""
    import time

    from runbook_lib.runbook.reboot import BootWatch, schedule_reboot

    node = simulated("ws2016_untouched", boot_seconds=1.5)
    target = connect(node.url)
    watch = BootWatch(schedule_reboot(target))
    asked = []
    real_run = target.run
    target.run = lambda operation, args: asked.append(operation) or real_run(operation, args)
    while node.server._listener is not None:  # the restart is due after its delay
        time.sleep(0.05)
    assert watch.check(target) is None and asked == [] and watch.unreachable_after_s is not None
    deadline = time.monotonic() + 30
    while (report := watch.check(target)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert asked and set(asked) == {"last_boot"} and report.last_boot_after > report.last_boot_before
