"""Canary hosts: a fleet run starts with a few hosts and stops before the rest if one of them ends unexpectedly.

A change that goes wrong on one host of a kind goes wrong on all of them. So ``run --canary`` runs its canaries
first: one host per OS caption (``--canary``: every caption is read first, read-only, with the ``preflight``
operation), or the first N hosts (``--canary N``). The rest start only when every canary ended somewhere this run
can end as designed (:func:`expected_outcomes`); otherwise they are not started and are recorded as ``not_run``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from . import report
from ..core.errors import RunbookError, one_line

PER_CAPTION = "os"  # --canary without a number: one canary per OS caption
MAX_CANARIES = 1000
NOT_RUN = "not_run"  # the outcome of a host the canaries stopped
UNREAD_CAPTION = "(caption not read)"  # hosts whose caption the preflight could not read share one canary


def expected_outcomes(apply: bool, reboot: bool) -> frozenset[str]:
    """Where a host may end when the runbook worked as designed on it.

    A dry run ends compliant, fixable (the plan that was not applied), blocked (a blocker needs a person), or
    reboot_pending (an earlier apply waits for its restart). An applying run ends compliant, fixed, fixed after a
    reboot, or blocked; reboot_pending too, but only without ``--reboot``. ``failed`` is never expected: a
    notebook failed (the host unreachable, its scripts refused, a time limit), or Windows PowerShell still fails
    after a fix that was applied.
    """
    if not apply:
        return frozenset({"compliant", "fixable", "blocked", "reboot_pending"})
    return frozenset({"compliant", "fixed", "fixed_after_reboot", "blocked"} | (set() if reboot else {"reboot_pending"}))


def choose(hosts: list[str], canary: int | str, captions: dict[str, str] | None = None) -> list[str]:
    """The canaries, in inventory order: the first ``canary`` hosts, or the first host of each caption."""
    if canary != PER_CAPTION:
        return hosts[:int(canary)]
    assert captions is not None
    seen: set[str] = set()
    chosen = []
    for host in hosts:
        caption = captions.get(host, UNREAD_CAPTION)
        if caption not in seen:
            seen.add(caption)
            chosen.append(host)
    return chosen


def read_captions(hosts: list[str], inventory: Path | str, parallel: int) -> dict[str, str]:
    """Each host's OS caption, read with the read-only ``preflight`` operation, ``parallel`` hosts at a time. A host
    that could not be read, or whose credential would have to be typed at a prompt, gets :data:`UNREAD_CAPTION`."""
    from ..remote.inventory import load_inventory
    from ..remote.target import connect

    loaded = load_inventory(inventory)

    def caption(host: str) -> str:
        if loaded.get(host).credential.startswith("prompt"):
            return UNREAD_CAPTION
        try:
            os_facts = connect(host, inventory=loaded).run("preflight", {}).get("os")
        except RunbookError:
            return UNREAD_CAPTION
        return one_line(os_facts["caption"], 200) if os_facts else UNREAD_CAPTION

    with ThreadPoolExecutor(max(1, min(parallel, len(hosts)))) as pool:
        return dict(zip(hosts, pool.map(caption, hosts)))


def unexpected(rows: dict[str, dict], canaries: list[str], apply: bool, reboot: bool) -> list[str]:
    """The canaries whose row ended outside :func:`expected_outcomes`."""
    expected = expected_outcomes(apply, reboot)
    return [host for host in canaries if rows[host]["outcome"] not in expected]


def stop_line(rows: dict[str, dict], stopped_by: list[str], not_started: int) -> str:
    """The one line that says why the fleet stopped."""
    ends = "; ".join(f"{host} ended {rows[host]['outcome']}" + (f" ({one_line(rows[host]['error'], 160)})"
                                                                if rows[host].get("error") else "")
                     for host in stopped_by)
    return (f"CANARY STOPPED THE FLEET: {ends}; {not_started} other host(s) not started (recorded as {NOT_RUN}). "
            "Fix the cause, then run again without those already done (--limit)")


def not_started(host: str, why: str, *, interrupted: bool = False) -> dict:
    """The summary row of a host that was never started: nothing ran there, so there is no evidence to read."""
    return asdict(report.HostSummary(host, "interrupted" if interrupted else NOT_RUN, error=why))
