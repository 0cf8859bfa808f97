"""Running operations on this machine, for an operator whose JupyterLab runs on the Windows host itself: the same
scripts and the same reading of their output as over WinRM, through a local PowerShell process."""

from __future__ import annotations

import codecs
import subprocess
import time
from typing import Sequence

from runbook_lib.core.errors import HostUnreachable, InputError, TimedOut
from runbook_lib.remote.scripts import compose, invocation, read_output
from runbook_lib.remote.transport import OperationResult, Transport


def _console_codec() -> str:
    """The OEM code page a console program's redirected output is in on Windows ("oem"), UTF-8 elsewhere."""
    try:
        return codecs.lookup("oem").name
    except LookupError:
        return "utf-8"


class LocalTransport(Transport):
    """Runs operations on this machine through a Windows PowerShell process."""

    def __init__(self, executable: str | Sequence[str] = "powershell.exe", *, timeout_s: float = 600.0, host: str = "localhost"):
        self.command = [executable] if isinstance(executable, str) else list(executable)
        if not self.command or not all(isinstance(part, str) and part for part in self.command):
            raise InputError("local: executable must be a path or a non-empty list of arguments")
        self.timeout_s = timeout_s
        self.host = host

    def run(self, operation: str, args: dict) -> OperationResult:
        """The script goes in as plain text on stdin, as over WinRM; ``executable`` may be pwsh.exe."""
        started_at = time.monotonic()
        run = invocation(compose(operation, args))
        argv = self.command + run.argv[1:]
        try:
            proc = subprocess.run(
                argv,
                input=run.stdin,
                capture_output=True,
                timeout=self.timeout_s,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except subprocess.TimeoutExpired:
            raise TimedOut(self.host, f"{operation} did not finish within {self.timeout_s:g} s; state unknown",
                           started=True) from None
        except OSError as exc:
            raise HostUnreachable(self.host, f"cannot start {self.command[0]}: {type(exc).__name__}") from None
        output = read_output(operation, proc.stdout, proc.stderr, proc.returncode, host=self.host,
                             encoding=_console_codec())
        return OperationResult(output.data, time.monotonic() - started_at, output.warnings)
