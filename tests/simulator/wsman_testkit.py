"""Helpers of the WS-Management listener tests: a trivial host model and client factories."""

from __future__ import annotations

import threading
from collections.abc import Callable

import winrm

from runbook_lib.simulator.wsman import CommandResult, WSManServer, decode_encoded_command

USER = "vagrant"
# A ':' in the password would break a Heimdal-format NTLM user file; the listener must not care.
PASSWORD = "S3cret:pa55-phrase!"


class RecordingHost:
    """Answers PowerShell scripts with 'ran:<script>' and anything else with 'cmd:<command line>', and remembers every call."""

    def __init__(self, respond: Callable[[str, bytes], CommandResult] | None = None):
        self.calls: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._respond = respond

    def __call__(self, command_line: str, stdin: bytes) -> CommandResult:
        with self._lock:
            self.calls.append((command_line, stdin))
        if self._respond is not None:
            return self._respond(command_line, stdin)
        script = decode_encoded_command(command_line)
        if script is not None:
            return CommandResult(stdout=f"ran:{script}\n")
        return CommandResult(stdout=f"cmd:{command_line}\n")


def session(server: WSManServer, transport: str, password: str = PASSWORD, user: str = USER, **kwargs) -> winrm.Session:
    if server.https:
        kwargs.setdefault("ca_trust_path", server.ca_path)
    return winrm.Session(server.url, auth=(user, password), transport=transport, **kwargs)


def protocol(server: WSManServer, transport: str, **kwargs) -> winrm.Protocol:
    if server.https:
        kwargs.setdefault("ca_trust_path", server.ca_path)
    return winrm.Protocol(server.url, transport=transport, username=USER, password=PASSWORD, **kwargs)
