"""What a fleet run is asked to do: which notebooks, how many notebooks and hosts at once, retries, the executor, apply or not;
checked whole before any host is touched. Also where the runbook notebooks are found.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from . import canary
from ..core.errors import InputError
from ..core.facts import host_problem


NOTEBOOKS = {"01": "01_cause", "02": "02_os_check", "03": "03_registry_remediation",
             "04": "04_powershell_session_fix"}
APPLY_NOTEBOOK = "03"  # the first notebook that can change a host: no automatic retry from here on
RETRYABLE_ERRORS = ("HostUnreachable",)
MAX_PARALLEL = 64
MAX_IN_FLIGHT = 100_000


@dataclass(frozen=True)
class RunOptions:
    notebooks: tuple[str, ...] = tuple(NOTEBOOKS)
    profile: str = "recommended"
    apply: bool = False
    reboot: bool = False
    parallel: int | None = None  # notebooks running at once; None: chosen from the machine (see .capacity)
    in_flight: int | None = None  # hosts started and not finished, restarts included; None: no limit
    timeout_s: float = 1800.0
    retries: int = 2
    retry_backoff_s: float = 2.0
    endpoints: str = "login.microsoftonline.com:443"
    limit: str | None = None
    executor: str = "local"
    scheduler: str | None = None
    cell_timeout_s: int = 900
    record: str | None = None  # a folder: each host's WinRM exchanges are recorded in record/<host>
    canary: int | str | None = None  # N: the first N hosts first; "os": one per OS caption (see fleet.canary)

    def validate(self) -> "RunOptions":
        unknown = [n for n in self.notebooks if n not in NOTEBOOKS]
        if unknown or not self.notebooks:
            raise InputError(f"--notebooks takes a comma-separated subset of {','.join(NOTEBOOKS)}")
        if list(self.notebooks) != sorted(self.notebooks):
            raise InputError("--notebooks must be in runbook order (01,02,03,04)")
        if self.profile not in ("minimal", "recommended"):
            raise InputError("--profile must be minimal or recommended")
        if self.parallel is not None and not 1 <= self.parallel <= MAX_PARALLEL:
            raise InputError(f"--parallel must be between 1 and {MAX_PARALLEL}")
        if self.in_flight is not None and not 1 <= self.in_flight <= MAX_IN_FLIGHT:
            raise InputError(f"--in-flight must be between 1 and {MAX_IN_FLIGHT}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise InputError("--timeout must be a positive number of seconds")
        if self.executor not in ("local", "dask"):
            raise InputError("--executor must be local or dask")
        if self.scheduler and self.executor != "dask":
            raise InputError("--scheduler goes with --executor dask")
        if self.scheduler and not _is_scheduler_address(self.scheduler):
            raise InputError("--scheduler must look like tcp://HOST:PORT (or tls://HOST:PORT)")
        if not (self.canary in (None, canary.PER_CAPTION) or
                (type(self.canary) is int and 1 <= self.canary <= canary.MAX_CANARIES)):
            raise InputError(f"--canary takes a number of hosts from 1 to {canary.MAX_CANARIES}, or nothing (one "
                             "host per OS caption)")
        return self


def _is_scheduler_address(text: str) -> bool:
    match = re.fullmatch(r"(?:tcp|tls)://([A-Za-z0-9_.-]{1,253}):(\d{1,5})", text, re.ASCII)
    return match is not None and host_problem(match[1]) is None and 1 <= int(match[2]) <= 65535


def notebooks_folder(explicit: Path | str | None = None) -> Path:
    """The runbook notebooks: given, in the current folder, or beside the package in a clone."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "notebooks",
                                                    Path(__file__).resolve().parents[2] / "notebooks"]
    for folder in candidates:
        if (folder / f"{NOTEBOOKS['02']}.ipynb").is_file():
            return folder
    raise InputError("cannot find the runbook notebooks: run from the project folder or pass --notebooks-dir")
