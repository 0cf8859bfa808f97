"""``tls-runbook check``: a read-only pass over every operation a run will use, before a run touches the host.

The first run against a real host should not be where an operator learns that its HTTPS listener speaks only TLS
1.0, that AppLocker keeps PowerShell in Constrained Language Mode, or that someone else owns the journal folder apply
writes to. The check runs what a run runs that changes nothing on the host (``preflight``, ``inspect``, ``probe`` and
``session_fix``, whose SecurityProtocol change ends with its own process), reads every result through the contract a
run reads it through (:func:`runbook_lib.remote.scripts.read_output`, ``runbook_lib/remote/schemas``), and says for each
operation whether it works and why, on one screen.

Whether the host is affected by AADSTS1002016 is not what it checks: an affected host the runbook can fix passes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

from ..core.acceptance import ACCEPTED, LEGACY, entra_answer
from ..core.engine import HostModel
from ..core.errors import (AuthenticationFailed, CertificateInvalid, EncryptionRequired, HostUnreachable, RedirectRefused,
                     RemoteError, TlsVersionMismatch, one_line)
from ..core.facts import HostFacts
from ..remote.scripts import LANGUAGE_MODE_ERROR, validate_args
from ..remote.transport import LARGEST_REQUEST_KB, WinRMTransport
from .operations import SIMULATED_TEXT, ProbeReport, inspect_host, probe_host, session_fix
from ..remote.target import DEFAULT_ENDPOINTS, Target
from ..core.verdict import SIMULATED_BANNER_HTML

WORKS, WILL_NOT_WORK, NOT_CHECKED = "works", "will not work", "not checked"
# Failures that mean no shell opened: nothing else can be learnt from this host until they are fixed.
_NO_CONNECTION = (HostUnreachable, AuthenticationFailed, EncryptionRequired, CertificateInvalid, TlsVersionMismatch,
                  RedirectRefused)
# What one host's run holds inside WinRM at most: one shell (its operations run one after another) holding cmd.exe,
# powershell.exe and, while inspect reads SecurityProtocol, one child Windows PowerShell; each Windows PowerShell
# process commits about 45 MB on CLR 2 (PowerShell 2.0) and 70 MB on CLR 4.
RUN_PROCESSES = 3
_PROBE_MODES = ("tcp", "default", "tls12", "app", "session")  # probe: the first four; session_fix: session
LINES = ("connect", "language mode", "inspect", *(f"probe {mode}" for mode in _PROBE_MODES), "journal folder",
         "WinRM quotas")  # the screen, top to bottom
_PROCESS_MB = {True: 45, False: 70}
_QUOTA_NAMES = {"max_shells_per_user": "MaxShellsPerUser", "max_processes_per_shell": "MaxProcessesPerShell",
                "max_memory_per_shell_mb": "MaxMemoryPerShellMB", "shell_idle_timeout_s": "IdleTimeout",
                "max_envelope_kb": "MaxEnvelopeSizekb"}
_STATUS_COLOURS = {WORKS: "#2e7d32", WILL_NOT_WORK: "#c62828", NOT_CHECKED: "#b26a00"}
_ANSI = {WORKS: "\033[32m", WILL_NOT_WORK: "\033[1;31m", NOT_CHECKED: "\033[33m"}
_ANSI_RESET = "\033[0m"


@dataclass(frozen=True)
class CheckItem:
    """One thing a run needs, whether it works on this host, and why."""

    name: str
    status: str
    why: str


@dataclass(frozen=True)
class CheckReport:
    """The field check of one host: renders itself as text (terminals) and HTML (notebooks), SIMULATED when so."""

    host: str
    endpoint: str
    simulated: bool
    items: tuple[CheckItem, ...]
    read: tuple[str, ...]  # the operations whose results came back and were read through their contracts
    affected: str | None = None  # what the probes say about AADSTS1002016; information, not a check

    @property
    def ok(self) -> bool:
        return all(item.status == WORKS for item in self.items)

    def headline(self) -> str:
        failing = sum(item.status != WORKS for item in self.items)
        summary = "every operation a run uses works" if self.ok else \
            f"{failing} of {len(self.items)} will not work or could not be checked"
        return f"Field check of {self.host} ({self.endpoint}): {summary}"

    def footer(self) -> list[str]:
        lines = [f"AADSTS1002016: {self.affected}"] if self.affected else []
        lines.append("Read-only: nothing on the host was changed. " + (
            f"Results read through their contracts (runbook_lib/remote/schemas): {', '.join(self.read)}." if self.read
            else "No script returned a result."))
        return lines

    def render_text(self, colour: bool = False) -> str:
        def paint(status: str) -> str:
            word = f"{status:13}"
            return f"{_ANSI[status]}{word}{_ANSI_RESET}" if colour else word

        lines = [SIMULATED_TEXT] if self.simulated else []
        lines.append(self.headline())
        lines += [f"  {paint(item.status)}  {item.name:16} {item.why}" for item in self.items]
        lines += self.footer()
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td style='text-align:left'>{e(item.name)}</td><td style='text-align:left;font-weight:bold;"
            f"color:{_STATUS_COLOURS[item.status]}'>{e(item.status)}</td><td style='text-align:left'>{e(item.why)}"
            "</td></tr>" for item in self.items)
        return (f"<div class='tls-runbook-check'>{SIMULATED_BANNER_HTML if self.simulated else ''}"
                f"<h3 style='margin:4px 0'>{e(self.headline())}</h3><table><thead><tr><th>Operation</th>"
                f"<th>Result</th><th>Why</th></tr></thead><tbody>{rows}</tbody></table>"
                + "".join(f"<p>{e(line)}</p>" for line in self.footer()) + "</div>")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": self.render_text(), "text/html": self._repr_html_()}


def _reason(exc: RemoteError) -> str:
    """The error without the host name in front: the screen names the host once."""
    text = str(exc)
    prefix = f"{exc.host}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def check_host(target: Target, endpoints: tuple[str, ...] | list[str] = DEFAULT_ENDPOINTS) -> CheckReport:
    """Run every read-only operation a run uses and judge each; only bad input raises (everything the host
    answers, or fails to, is a line on the screen)."""
    validate_args("probe", {"endpoints": list(endpoints)})  # bad input before anything reaches the host
    steps: tuple[tuple[str, Callable[[], object]], ...] = (
        ("preflight", lambda: target.run("preflight", {})),
        ("inspect", lambda: inspect_host(target, endpoints)),
        ("probe", lambda: probe_host(target, endpoints)),
        ("session_fix", lambda: session_fix(target, "bor", endpoints)))
    results: dict[str, object] = {}
    failures: dict[str, RemoteError] = {}
    warnings: dict[str, tuple[str, ...]] = {}
    no_connection: RemoteError | None = None
    for operation, run in steps:
        try:
            results[operation] = run()
            warnings[operation] = target.warnings
        except _NO_CONNECTION as exc:
            if not results and not failures:  # the first operation: no shell has opened on this host
                no_connection = exc
                break
            failures[operation] = exc
        except RemoteError as exc:
            failures[operation] = exc
    items = [_connect_item(target, no_connection)]
    if no_connection is None:
        facts = results.get("inspect")
        preflight = results.get("preflight")
        items.append(_language_item(results, failures))
        items.append(_inspect_item(facts, failures.get("inspect"), warnings.get("inspect", ())))
        items += _probe_items(results.get("probe"), results.get("session_fix"), failures)
        items.append(_journal_item(preflight, failures.get("preflight")))
        items.append(_quota_item(preflight, failures.get("preflight"), facts))
    else:
        items += [CheckItem(name, NOT_CHECKED, "no connection") for name in LINES[1:]]
    probe = results.get("probe")
    return CheckReport(target.name, target.endpoint, target.simulated, tuple(items),
                       tuple(operation for operation, _ in steps if operation in results),
                       _affected(probe) if isinstance(probe, ProbeReport) else None)


# --- one judgement per operation -----------------------------------------------------------------------------------
def _connect_item(target: Target, failed: RemoteError | None) -> CheckItem:
    transport = target.transport
    if failed is not None:
        kind = "an HTTPS listener that speaks only old TLS: " if isinstance(failed, TlsVersionMismatch) else ""
        return CheckItem("connect", WILL_NOT_WORK, kind + _reason(failed))
    if not isinstance(transport, WinRMTransport):
        return CheckItem("connect", WORKS, "Windows PowerShell on this machine started")
    if transport.https:
        version = transport.listener_tls_version()
        spoken = f"speaks {version.replace('TLSv', 'TLS ')}" if version else "answered"
        listener = f"HTTPS listener {spoken}, {transport.auth.upper()}"
    else:
        sealed = " with message encryption" if transport.auth in ("ntlm", "kerberos", "credssp") else ""
        listener = f"HTTP listener, {transport.auth.upper()}{sealed}"
    return CheckItem("connect", WORKS, f"{listener}: a shell opened and Windows PowerShell started")


def _language_item(results: dict, failures: dict[str, RemoteError]) -> CheckItem:
    if any(str(exc).endswith(LANGUAGE_MODE_ERROR) for exc in failures.values()):
        return CheckItem("language mode", WILL_NOT_WORK, f"{LANGUAGE_MODE_ERROR} (AppLocker or WDAC enforces it); "
                                                          "every script stops at the loader's check")
    if results:
        return CheckItem("language mode", WORKS, "FullLanguage: the loader's check passed and the scripts ran")
    return CheckItem("language mode", NOT_CHECKED, "no script returned a result")


def _inspect_item(facts: object, failed: RemoteError | None, warnings: tuple[str, ...]) -> CheckItem:
    if not isinstance(facts, HostFacts):
        return CheckItem("inspect", WILL_NOT_WORK, _reason(failed) if failed else "no result")
    gp = facts.group_policy
    policy = "Group Policy not reported" if gp is None else \
        f"RSoP {'read' if gp.rsop_available else 'not available: ' + str(gp.rsop_reason)}"
    said = f"; {len(warnings)} warning(s): {'; '.join(warnings)}" if warnings else ""
    return CheckItem("inspect", WORKS, f"{facts.os.caption} ({facts.os.version}), Windows PowerShell "
                                       f"{facts.powershell.windows_powershell or 'none'}, {len(facts.registry)} "
                                       f"registry value(s), {policy}{said}")


def _probe_items(probe: object, fixed: object, failures: dict[str, RemoteError]) -> list[CheckItem]:
    """One line per probe mode a run uses: tcp, default, tls12 and app (probe), session (session_fix, with the
    token request it makes after the fix). A mode works when it produced a record for every endpoint the host can
    reach; an endpoint the host cannot reach leaves the run with nothing to measure there."""
    items = []
    for mode in _PROBE_MODES:
        operation, report = ("session_fix", fixed) if mode == "session" else ("probe", probe)
        name = f"probe {mode}"
        if not isinstance(report, ProbeReport):
            failed = failures.get(operation)
            items.append(CheckItem(name, WILL_NOT_WORK, _reason(failed) if failed else "no result"))
            continue
        unreachable = {p.endpoint: p.error or "no connection" for p in report.probes
                       if p.mode in ("tcp", "session") and p.connected is False}
        seen = [f"{endpoint} {'token request after the fix: ' if probe_mode != mode else ''}{what}"
                + (f": {one_line(p.error, 120)}" if p.error else "") + (f", Entra {answer}" if answer != "-" else "")
                for (endpoint, probe_mode, what, answer, _), p in zip(report.rows(), report.probes)
                if probe_mode == mode or (mode == "session" and probe_mode == "app")]
        if mode == "session" and report.fix_error:
            seen.append(f"the runtime refused Tls12: {report.fix_error}")
        status = WILL_NOT_WORK if unreachable else WORKS
        prefix = "".join(f"{endpoint} not reachable from the host ({error}); " for endpoint, error
                         in unreachable.items())
        items.append(CheckItem(name, status, prefix + "; ".join(seen)))
    return items


def _journal_item(preflight: object, failed: RemoteError | None) -> CheckItem:
    if not isinstance(preflight, dict):
        return CheckItem("journal folder", WILL_NOT_WORK, _reason(failed) if failed else "no result")
    folder = preflight["journal_folder"]
    if folder["problem"]:
        return CheckItem("journal folder", WILL_NOT_WORK, f"apply would refuse it: {folder['problem']}")
    if not folder["exists"]:
        return CheckItem("journal folder", WORKS, f"{folder['path']} is not there yet; apply creates it owned by "
                                                  "Administrators, for SYSTEM and Administrators only")
    return CheckItem("journal folder", WORKS, f"{folder['path']} is owned by {folder['owner']}; only SYSTEM and "
                                              "Administrators may change it")


def _quota_item(preflight: object, failed: RemoteError | None, facts: object) -> CheckItem:
    """What the host reports, and whether a run fits: inspect's child Windows PowerShell (observed) and the largest
    request (MaxEnvelopeSizekb). A quota that cannot be read is said so; the transport then assumes WinRM 2.0's."""
    if not isinstance(preflight, dict):
        return CheckItem("WinRM quotas", WILL_NOT_WORK, _reason(failed) if failed else "no result")
    winrm = preflight["winrm"]
    problems, notes = [], []
    if winrm["available"]:
        shown = [f"{_QUOTA_NAMES[key]} {_quota_text(key, winrm[key])}" for key in _QUOTA_NAMES]
        policy = [_QUOTA_NAMES[key] for key in winrm["policy"]]
        notes.append(", ".join(shown) + (f" ({', '.join(policy)} set by Group Policy)" if policy else ""))
        envelope = winrm["max_envelope_kb"]
        if 0 < envelope < LARGEST_REQUEST_KB:
            problems.append(f"MaxEnvelopeSizekb {envelope} is below the {LARGEST_REQUEST_KB} KB of the runbook's "
                            "largest request (the host would answer HTTP 413)")
    else:
        notes.append(f"not readable ({winrm['reason']}); the runbook assumes WinRM 2.0's 5 shells per user and "
                     "waits out a used-up quota")
    if isinstance(facts, HostFacts):
        wanted = {"x64", "x86"} if HostModel(facts).has_wow64 else {"x86"}
        missing = sorted(wanted - set(facts.observed.security_protocol if facts.observed else {}))
        if missing:
            clr2 = (facts.powershell.windows_powershell_major or 3) < 3
            problems.append(f"inspect could not read SecurityProtocol in a child Windows PowerShell "
                            f"({', '.join(missing)}): a run needs {RUN_PROCESSES} processes and about "
                            f"{2 * _PROCESS_MB[clr2]} MB in one shell")
        else:
            notes.append("a run holds one shell; inspect's child Windows PowerShell ran inside it")
    else:
        notes.append("whether inspect's child Windows PowerShell fits was not seen (inspect did not run)")
    status = WILL_NOT_WORK if problems else WORKS
    return CheckItem("WinRM quotas", status, "; ".join(problems + notes))


def _quota_text(key: str, value: float) -> str:
    if key == "shell_idle_timeout_s":
        return f"{value:g} s"
    return "no limit" if value == 0 else str(value)


def _affected(report: ProbeReport) -> str:
    """What the token requests from a fresh Windows PowerShell got: the question the runbook answers, not this one."""
    answers = {entra_answer(p).outcome for p in report.probes if p.mode == "app"}
    if LEGACY in answers:
        return "this host is affected: Entra refuses what its Windows PowerShell sends (the runbook fixes that; it " \
               "does not fail the check)"
    if answers == {ACCEPTED}:
        return "not seen: Entra accepts what this host's Windows PowerShell sends"
    return "not decided by these probes (see the probe lines)"
