"""The notebooks' parameters: one set of names for every notebook, each checked before anything touches a host.

papermill copies parameters into the notebook, so there is never a credential among them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.engine import DEFAULT_PROFILE
from ..core.errors import InputError, one_line
from ..core.facts import host_problem
from ..core.verdict import PROFILES
from ..remote.target import parse_winrm_url


NOTEBOOKS = {"00": "00_start_here", "01": "01_cause", "02": "02_os_check", "03": "03_registry_remediation",
             "04": "04_powershell_session_fix"}
EVIDENCE_FILES = ("cause.json", "facts.json", "verdict.json", "fix.reg", "rollback.reg", "apply-report.json",
                  "reboot.json", "facts-after.json", "verdict-after.json", "session-fix.json", "outcome.json")
SESSION_FIX_MODES = ("bor", "pin")
DEFAULT_ENDPOINTS_TEXT = "login.microsoftonline.com:443"
DEFAULT_SIMULATOR_PROFILE = "win7_wmf51"
MAX_ERROR_TEXT = 20_000


@dataclass(frozen=True)
class Parameters:
    target: str = ""
    inventory: str = ""
    profile: str = DEFAULT_PROFILE
    apply: bool = False
    reboot: bool = False
    wait_for_reboot: bool = True
    endpoints: tuple[str, ...] = (DEFAULT_ENDPOINTS_TEXT,)
    evidence_dir: str = ""
    simulator_profile: str = DEFAULT_SIMULATOR_PROFILE
    error_text: str = ""
    session_fix_mode: str = "bor"
    record: str = ""

    @property
    def simulated(self) -> bool:
        return not self.target


PARAMETER_NAMES = tuple(Parameters.__dataclass_fields__)


def validate_parameters(**values: Any) -> Parameters:
    """Check every parameter before anything touches a host; the first problem becomes a one-line InputError."""
    unknown = sorted(set(values) - set(PARAMETER_NAMES))
    if unknown:
        raise InputError(f"unknown parameter {unknown[0][:40]!r}; the parameters are {', '.join(PARAMETER_NAMES)}")
    p = {**{name: f.default for name, f in Parameters.__dataclass_fields__.items()}, **values}
    for name in ("target", "inventory", "profile", "evidence_dir", "simulator_profile", "error_text",
                 "session_fix_mode", "record"):
        if not isinstance(p[name], str):
            raise InputError(f"{name} must be a string, got {type(p[name]).__name__}")
    for name in ("apply", "reboot", "wait_for_reboot"):
        if not isinstance(p[name], bool):
            raise InputError(f"{name} must be True or False, got {one_line(repr(p[name]), 40)}")
    target = p["target"].strip()
    if target:
        if "://" in target:
            parse_winrm_url(target)
        else:
            problem = host_problem(target)
            if problem:  # not echoed: it may be a URL without its scheme, user info included
                raise InputError(f"target is neither a WinRM URL nor an inventory host name: a name {problem}")
            if not p["inventory"]:
                raise InputError(f"target {target!r} is a host name: set inventory to the inventory file naming it")
    inventory = p["inventory"].strip()
    if inventory and not _is_file(inventory):
        raise InputError(f"inventory {one_line(inventory, 80)!r} is not a readable file")
    if target and "://" not in target:
        from ..remote.inventory import load_inventory

        load_inventory(inventory).get(target)  # a name the inventory lacks is bad input before any kernel starts
    if p["profile"] not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}, got {one_line(repr(p['profile']), 40)}")
    if not target:
        from ..simulator.profile import builtin_profile_names

        names = builtin_profile_names()
        if p["simulator_profile"] not in names:
            raise InputError(f"simulator_profile {one_line(repr(p['simulator_profile']), 60)} is not a built-in "
                             f"profile ({', '.join(names)})")
    if p["session_fix_mode"] not in SESSION_FIX_MODES:
        raise InputError("session_fix_mode must be 'bor' (add TLS 1.2) or 'pin' (TLS 1.2 only)")
    if len(p["error_text"]) > MAX_ERROR_TEXT:
        raise InputError(f"error_text is longer than {MAX_ERROR_TEXT} characters; paste only the error message")
    evidence = p["evidence_dir"].strip()
    if evidence:
        _check_output_dir(evidence)
    record = p["record"].strip()
    if record:
        _check_output_dir(record, "record")
    return Parameters(target=target, inventory=inventory, profile=p["profile"], apply=p["apply"],
                      reboot=p["reboot"], wait_for_reboot=p["wait_for_reboot"], endpoints=_endpoints(p["endpoints"]), evidence_dir=evidence,
                      simulator_profile=p["simulator_profile"], error_text=p["error_text"],
                      session_fix_mode=p["session_fix_mode"], record=record)


def _is_file(text: str) -> bool:
    try:
        return "\x00" not in text and Path(text).is_file()
    except OSError:
        return False


def _endpoints(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError("endpoints must be a comma-separated list of host:port")
    endpoints = []
    for item in items:
        text = item.strip() if isinstance(item, str) else ""
        host, sep, port = text.rpartition(":")
        if not sep or host_problem(host) or not re.fullmatch(r"\d{1,5}", port, re.ASCII) or not 1 <= int(port) <= 65535:
            raise InputError(f"endpoint {one_line(repr(item), 60)} must look like login.microsoftonline.com:443")
        endpoints.append(f"{host}:{int(port)}")
    if not endpoints:
        raise InputError("endpoints must name at least one host:port")
    return tuple(dict.fromkeys(endpoints))


def _check_output_dir(text: str, name: str = "evidence_dir") -> None:
    if "\x00" in text or any(not ch.isprintable() for ch in text):
        raise InputError(f"{name} contains control characters")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{name} {one_line(text, 80)!r} exists and is not a folder")
    existing = next((parent for parent in (path, *path.parents) if parent.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{name} {one_line(text, 80)!r} cannot be created here (no writable parent folder)")
