"""The progress display: a live table on a terminal, plain lines (as CI logs keep them) anywhere else."""

import io

from runbook_lib.fleet.progress import LiveTable, Progress, progress_display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


EVENTS = [("srv01", "01_cause", "running"), ("srv02", "01_cause", "running"), ("srv01", "done", "fixed"),
          ("srv02", "restart", "waiting for the new boot time"), ("srv03", "02_os_check", "running")]


def test_a_terminal_gets_a_table_of_hosts_by_state_with_their_step_and_an_eta(monkeypatch):
    monkeypatch.delenv("TERM", raising=False)
    stream = Terminal()
    with progress_display(["srv01", "srv02", "srv03", "srv04"], stream) as display:
        assert isinstance(display, LiveTable)
        for event in EVENTS:
            display.update(*event)
        assert display.counts() == {"done": 1, "running": 1, "restarting": 1, "failed": 0, "interrupted": 0,
                                    "queued": 1}
        assert display.eta_s() is not None
    shown = stream.getvalue()
    assert "1 done, 1 running, 1 restarting, 0 failed, 1 queued of 4" in shown and "ETA" in shown
    assert "srv02" in shown and "waiting for the new boot time" in shown


def test_a_log_gets_one_plain_line_per_event_and_no_escape_codes():
    stream = io.StringIO()
    with progress_display(["srv01", "srv02", "srv03"], stream) as display:
        assert type(display) is Progress
        for event in EVENTS:
            display.update(*event)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(EVENTS) and "\x1b" not in stream.getvalue()
    assert lines[3] == "[1 done, 1 running, 0 failed / 3] srv02: restart waiting for the new boot time"
