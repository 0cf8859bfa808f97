"""Restarting a host and proving it restarted, in two halves that may run in different places.

The proof is the boot time: a host that reports a later LastBootUpTime restarted. Seeing WinRM go down and come
back proves nothing (a network blip does that) and misses a host that is down for less than one poll.

Interactively, notebook 03 schedules and waits in one cell (:func:`reboot_and_wait`). A fleet run splits it: 03
schedules the restart (:func:`schedule_reboot`), writes ``reboot.json`` and ends; the fleet runner watches the boot
time with no kernel held (:class:`BootWatch`, one short WinRM call per poll) and records the proof in the same
file; notebook 04 then reads the restarted host.
"""

from __future__ import annotations

import html
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ..core.errors import AuthenticationFailed, CertificateInvalid, EncryptionRequired, HostUnreachable, RebootFailed, \
    RemoteError, TimedOut
from ..core.verdict import SIMULATED_BANNER_HTML
from ..remote.target import Target
from .operations import SIMULATED_TEXT
EVIDENCE_FILE = "reboot.json"
DELAY_S = 5  # shutdown.exe /t: the notebook's own WinRM answer gets out before the host goes down
DOWN_TIMEOUT_S = 600.0  # still the old boot time this long after the restart was due: it did not happen
UP_TIMEOUT_S = 1800.0  # no answer with a new boot time this long after scheduling: timed out
PORT_TIMEOUT_S = 3.0  # a host that is down may drop connection attempts instead of refusing them


@dataclass(frozen=True)
class ScheduledReboot:
    """A restart the host accepted (shutdown.exe), and the boot time it reported just before."""

    host: str
    simulated: bool
    last_boot_before: str
    scheduled_at: str  # UTC, when the runbook asked
    delay_s: int
    answer_lost: bool = False  # the host's answer never arrived: last_boot_before is the one its facts reported

    def to_json(self) -> dict:
        return {"state": "scheduled", **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict) -> "ScheduledReboot":
        return cls(str(doc["host"]), bool(doc["simulated"]), str(doc["last_boot_before"]), str(doc["scheduled_at"]),
                   int(doc["delay_s"]), doc.get("answer_lost") is True)

    def render_text(self) -> str:
        prefix = SIMULATED_TEXT + "\n" if self.simulated else ""
        if self.answer_lost:
            return (f"{prefix}Restart asked of {self.host} at {self.scheduled_at} (in {self.delay_s} s), but its "
                    "answer was lost on the way back, so whether it was scheduled is unknown. The boot time decides: "
                    f"a later one than {self.last_boot_before} (read from the host just before) proves the restart; "
                    "the same one long after the restart was due means it did not happen. The fleet runner waits for "
                    "it, holding no kernel, and records it in reboot.json; notebook 04 then reads the restarted host.")
        return (f"{prefix}Restart scheduled on {self.host} at {self.scheduled_at} (in {self.delay_s} s; last boot "
                f"{self.last_boot_before}). The fleet runner waits for a new boot time, holding no kernel, and "
                "records it in reboot.json; notebook 04 then reads the restarted host.")

    def _repr_html_(self) -> str:
        return f"{SIMULATED_BANNER_HTML if self.simulated else ''}<p>{html.escape(self.render_text().splitlines()[-1])}</p>"


@dataclass(frozen=True)
class RebootReport:
    """A restart proven by the boot time: the host reports a later LastBootUpTime than before."""

    host: str
    simulated: bool
    last_boot_before: str
    last_boot_after: str
    back_after_s: float  # from scheduling the restart to the first answer with the new boot time
    unreachable_after_s: float | None  # when it first stopped answering (None: never seen down between two polls)

    def to_json(self) -> dict:
        return {"state": "restarted", **asdict(self)}

    def render_text(self) -> str:
        prefix = SIMULATED_TEXT + "\n" if self.simulated else ""
        down = ("" if self.unreachable_after_s is None
                else f"; WinRM stopped answering after {self.unreachable_after_s:.1f} s")
        return (f"{prefix}{self.host} restarted: last boot {self.last_boot_before} -> {self.last_boot_after}{down}; "
                f"answering again {self.back_after_s:.1f} s after the restart was scheduled")

    def _repr_html_(self) -> str:
        return f"{SIMULATED_BANNER_HTML if self.simulated else ''}<p>{html.escape(self.render_text().splitlines()[-1])}</p>"


def schedule_reboot(target: Target, delay_s: int = DELAY_S, *, boot_seen: str | None = None) -> ScheduledReboot:
    """Ask the host to restart in ``delay_s`` seconds.

    ``boot_seen`` is the boot time the host reported moments before (its facts). A host about to go down, or a link
    that drops, can lose the answer to the request while the restart goes ahead; failing the host then would be a
    guess. With ``boot_seen`` the boot time decides instead, as it does for every restart."""
    asked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        scheduled = target.run("reboot", {"delay_s": delay_s})
    except TimedOut:
        if boot_seen is None:
            raise
        return ScheduledReboot(target.name, target.simulated, boot_seen, asked_at, delay_s, answer_lost=True)
    if scheduled["already_scheduled"]:
        raise RebootFailed(target.name, "a shutdown was already scheduled on the host (shutdown.exe exit 1190), so "
                                        "the runbook scheduled none; it may be a power-off: let it happen or cancel "
                                        "it (shutdown /a), then run again")
    return ScheduledReboot(target.name, target.simulated, scheduled["last_boot"], asked_at, delay_s)


class BootWatch:
    """Polls for the new boot time of one scheduled restart; each :meth:`check` is one short WinRM call.

    A host that still reports the old boot time ``down_timeout_s`` after the restart was due did not restart
    (:class:`RebootFailed`); one that gives no answer with a new boot time within ``up_timeout_s`` is timed out.
    """

    def __init__(self, scheduled: ScheduledReboot, down_timeout_s: float = DOWN_TIMEOUT_S,
                 up_timeout_s: float = UP_TIMEOUT_S):
        self.scheduled = scheduled
        self.down_timeout_s, self.up_timeout_s = down_timeout_s, up_timeout_s
        self.started = time.monotonic()
        self.unreachable_after_s: float | None = None

    def check(self, target: Target) -> RebootReport | None:
        """The proof once the host reports a new boot time; None while it has not yet.

        While the WinRM port does not take a connection the host is down or booting, and that is all a poll needs to
        know: no logon, no shell, no PowerShell started on a host that is busy booting, nothing for the runner to
        encrypt; the boot time is asked for only once the port answers."""
        before = self.scheduled.last_boot_before
        try:
            if not _port_answers(target.endpoint):
                raise HostUnreachable(target.name, "the WinRM port takes no connection")
            now = target.run("last_boot", {})["last_boot"]
        except (AuthenticationFailed, CertificateInvalid, EncryptionRequired):
            raise  # waiting does not cure these
        except RemoteError:  # going down, booting, or a shell ended by the shutdown: not answering yet
            now = None
            if self.unreachable_after_s is None:
                self.unreachable_after_s = time.monotonic() - self.started
        elapsed = time.monotonic() - self.started
        if now is not None and now != before:
            return RebootReport(self.scheduled.host, self.scheduled.simulated, before, now, elapsed,
                                self.unreachable_after_s)
        if now == before and elapsed > self.scheduled.delay_s + self.down_timeout_s:
            why = ("its answer to the request was lost, and the request may never have run" if self.scheduled.answer_lost
                   else "cancelled with shutdown /a, or blocked")
            raise RebootFailed(self.scheduled.host, f"the host still reports the boot time {before} {elapsed:.0f} s "
                                                    "after the restart was asked for: the restart did not happen "
                                                    f"({why}); restart it, then run again")
        if elapsed > self.scheduled.delay_s + self.up_timeout_s:
            raise TimedOut(self.scheduled.host, f"no answer with a new boot time within {elapsed:.0f} s of "
                                                "scheduling the restart", started=True)
        return None


def _port_answers(endpoint: str, timeout_s: float = PORT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the WinRM endpoint's port opens (True for endpoints that are not URLs)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return True
    try:
        socket.create_connection((parts.hostname, parts.port or (5986 if parts.scheme == "https" else 5985)),
                                 timeout=timeout_s).close()
    except OSError:
        return False
    return True


def reboot_and_wait(target: Target, *, delay_s: int = DELAY_S, down_timeout_s: float = DOWN_TIMEOUT_S,
                    up_timeout_s: float = UP_TIMEOUT_S, poll_s: float = 2, boot_seen: str | None = None) -> RebootReport:
    """Schedule a restart and wait, in this process, until the host reports a new boot time."""
    watch = BootWatch(schedule_reboot(target, delay_s, boot_seen=boot_seen), down_timeout_s, up_timeout_s)
    while (report := watch.check(target)) is None:
        time.sleep(poll_s)
    return report
