"""What the operator sees while a fleet runs: a live table on a terminal, one plain line per event elsewhere.

Both take the same events, ``update(host, step, status)``. The plain lines are what CI logs and ``tee`` keep; the
table (rich) is for a person watching: hosts by state, the step each host in flight is at and for how long, and an
estimate of the time left from the pace of the hosts finished so far.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator

FINAL = ("done", "failed", "interrupted")


class Progress:
    """One line per event, each with a running tally of hosts done, running and failed."""

    def __init__(self, hosts: list[str], stream=sys.stderr):
        self.state = {host: "queued" for host in hosts}
        self.step = {host: "" for host in hosts}
        self.since = {host: 0.0 for host in hosts}
        self.started = time.monotonic()
        self.stream = stream

    def update(self, host: str, step: str, status: str) -> None:
        if status in ("failed", "interrupted"):
            self.state[host] = status
        elif step == "done":
            self.state[host] = "done"
        else:
            self.state[host] = "restarting" if step == "restart" and status != "restarted" else "running"
        self.step[host], self.since[host] = f"{step} {status}".strip(), time.monotonic()
        self.show(host, step, status)

    def counts(self) -> dict[str, int]:
        tally = {state: 0 for state in ("done", "running", "restarting", "failed", "interrupted", "queued")}
        for state in self.state.values():
            tally[state] += 1
        return tally

    def eta_s(self) -> float | None:
        """Time left at the pace so far: hosts finish at a fairly steady rate once a wide fleet is under way."""
        finished = sum(1 for state in self.state.values() if state in FINAL)
        if not finished or finished == len(self.state):
            return None
        return (time.monotonic() - self.started) / finished * (len(self.state) - finished)

    def show(self, host: str, step: str, status: str) -> None:
        c = self.counts()
        print(f"[{c['done']} done, {c['running'] + c['restarting']} running, {c['failed']} failed / "
              f"{len(self.state)}] {host}: {step} {status}", file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to tear down for plain lines."""


class LiveTable(Progress):
    """The same events as a table redrawn in place (rich), for a person at a terminal."""

    def __init__(self, hosts: list[str], stream):
        super().__init__(hosts, stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def show(self, host: str, step: str, status: str) -> None:
        self.live.update(self._table())

    def _table(self):
        from rich.table import Table

        c = self.counts()
        eta = self.eta_s()
        title = (f"{c['done']} done, {c['running']} running, {c['restarting']} restarting, {c['failed']} failed, "
                 f"{c['queued']} queued of {len(self.state)}"
                 + (f"  ETA {_duration(eta)}" if eta is not None else ""))
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("host", "state", "step", "for"):
            table.add_column(column)
        now = time.monotonic()
        shown = [h for h, s in self.state.items() if s in ("running", "restarting", "failed")]
        room = max(5, self.console.size.height - 8)
        for host in shown[:room]:
            table.add_row(host, self.state[host], self.step[host], _duration(now - self.since[host]))
        if len(shown) > room:
            table.add_row(f"... {len(shown) - room} more", "", "", "")
        return table

    def close(self) -> None:
        self.live.update(self._table())
        self.live.stop()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


@contextlib.contextmanager
def progress_display(hosts: list[str], stream) -> Iterator[Progress]:
    display = LiveTable(hosts, stream) if is_terminal(stream) else Progress(hosts, stream)
    try:
        yield display
    finally:
        display.close()
