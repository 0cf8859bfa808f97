"""The notebook-facing layer: every code cell in ``notebooks/`` is one call into this module.

Notebooks stay thin so that a papermill run, nbval, a widget button and a click in JupyterLab all do exactly the
same thing, and so the logic is tested here rather than in cells. Results render as static HTML (plus plain text),
never as widget state, so an executed notebook exported to HTML is complete evidence.

Parameters (the same names in every notebook; ``error_text`` only in 01, ``session_fix_mode`` only in 04):
``target`` (empty: a built-in simulated host), ``inventory``, ``profile``, ``apply``, ``reboot``, ``endpoints``
(comma-separated ``host:port``), ``evidence_dir`` (empty: ``evidence/<host>`` under the kernel's working folder),
``simulator_profile``, ``record`` (a folder: every WinRM exchange is recorded there, see
:mod:`runbook_lib.recording`). There is never a credential parameter: papermill copies parameters into the notebook.

Evidence files, fixed names in the evidence folder, read by the fleet runner (:mod:`runbook_lib.runner`):

``cause.json`` (01)
    ``{"host", "simulated", "error": {"kind", "code", "tenant_id", ...} | null, "security_protocol": {"x64", "x86"},
    "probes": [probe...], "diagnosis": "app_does_not_ask" | "os_cannot" | "works" | "unreachable" | "certificate" |
    "powershell_v2", "next_notebook"}``
``facts.json`` / ``verdict.json`` (02, refreshed by 03)
    host facts ``tls-runbook/host-facts/v1`` and the verdict ``tls-runbook/verdict/v1`` before any change.
``fix.reg``, ``rollback.reg``, ``apply-report.json`` (03)
    the plan as .reg files (UTF-16, regedit-ready) and ``{"host", "simulated", "dry_run", "changed", "restart",
    "apply_id", "completed", "error", "results": [{"path", "name", "status", "before", "after", "error"}],
    "backup": [...]}``; status is planned, written, unchanged, failed or not_attempted. Before a new apply
    overwrites the files of an earlier apply that wrote values, they move to ``history/<stamp>/`` so a rollback
    file is never lost.
``facts-after.json`` / ``verdict-after.json`` (03)
    the host read back after the apply (and after the reboot when one ran).
``session-fix.json`` (04)
    ``{"host", "simulated", "mode": "bor" | "pin", "before", "after", "before_name", "after_name", "ok",
    "probes": [probe...]}``.
``outcome.json`` (04)
    ``{"host", "simulated", "outcome": "fixed" | "fixed_after_reboot" | "compliant" | "blocked" |
    "reboot_pending" | "fixable" | "failed", "blockers": [...], "restart": "none" | "new_process" | "reboot",
    "detail"}``; ``fixable`` means the plan was not applied (a dry run), ``failed`` that Windows PowerShell still
    fails by default although it was.

A probe is ``{"endpoint", "mode": "tcp" | "default" | "tls12" | "session" | "app", "ok", "protocol", "cipher",
"error", ...}`` as ``runbook_lib/schemas/probe-record.schema.json`` defines it; ``ok`` means the handshake completed,
and whether Entra accepts it is read from :mod:`runbook_lib.acceptance` only.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from . import knowledge as k
from .acceptance import ACCEPTED, CERTIFICATE, LEGACY, UNREACHABLE, EntraAnswer, client_answer, entra_answer
from .check import check_host
from .engine import DEFAULT_PROFILE, HostModel, assess, restart_for_paths
from .errors import (
    ApplyIncomplete,
    AuthenticationFailed,
    CertificateInvalid,
    CredentialError,
    EncryptionRequired,
    HostUnreachable,
    InputError,
    QuotaExceeded,
    RebootFailed,
    RemoteScriptFailed,
    RunbookError,
    TimedOut,
    TlsVersionMismatch,
    one_line,
)
from .facts import HostFacts, Probe, host_problem
from .files import FileTooLarge, output_file, read_limited
from .plan import RemediationPlan
from .remote.credentials import Credential
from .bundle import apply_reports
from .evidence import write_scrubbed
from .files import private_folder
from .regfile import to_bytes
from .steps import (SIMULATED_TEXT, ApplyReport, ProbeReport, apply_plan, html_table, inspect_host, original_backup,
                    reboot_and_wait, recover_apply, rollback_from_backup, session_fix, written_values)
from .target import Target, connect, parse_winrm_url
from .verdict import PROFILES, SIMULATED_BANNER_HTML, Verdict

NOTEBOOKS = {"00": "00_start_here", "01": "01_cause", "02": "02_os_check", "03": "03_registry_remediation",
             "04": "04_powershell_session_fix"}
EVIDENCE_FILES = ("cause.json", "facts.json", "verdict.json", "fix.reg", "rollback.reg", "apply-report.json",
                  "facts-after.json", "verdict-after.json", "session-fix.json", "outcome.json")
OUTCOMES = ("fixed", "fixed_after_reboot", "compliant", "blocked", "reboot_pending", "failed")
SESSION_FIX_MODES = ("bor", "pin")
DEFAULT_ENDPOINTS_TEXT = "login.microsoftonline.com:443"
DEFAULT_SIMULATOR_PROFILE = "win7_wmf51"
SIMULATOR_USER = "runbook-notebook"
MAX_ERROR_TEXT = 20_000
# The text Microsoft's Japanese support blog quotes ([J1]); the tenant id is its own placeholder.
SEED_ERROR_TEXT = ("AADSTS1002016: You are using TLS version 1.0, 1.1 and/or 3DES cipher which are deprecated to "
                   "improve the security posture of Azure AD. Your TenantID is: XXXXXXXXX. Please refer to "
                   "https://go.microsoft.com/fwlink/?linkid=2161187 and conduct needed actions to remediate the "
                   "issue. For further questions, please contact your administrator.")
_HANDSHAKE_SYMPTOMS = ("could not create ssl/tls secure channel", "do not possess a common algorithm",
                       "authentication failed because the remote party has closed the transport stream",
                       "the underlying connection was closed")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_PARAMETER_TYPES = (str, bool, int, float, type(None), list, tuple, dict)
_RESULTS: list[dict] | None = None  # set while a widget collects results instead of displaying them


# --- parameters ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parameters:
    target: str = ""
    inventory: str = ""
    profile: str = DEFAULT_PROFILE
    apply: bool = False
    reboot: bool = False
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
    for name in ("apply", "reboot"):
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
        from .inventory import load_inventory

        load_inventory(inventory).get(target)  # a name the inventory lacks is bad input before any kernel starts
    if p["profile"] not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}, got {one_line(repr(p['profile']), 40)}")
    if not target:
        from .simulator.host import builtin_profile_names

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
                      reboot=p["reboot"], endpoints=_endpoints(p["endpoints"]), evidence_dir=evidence,
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


def parameters_from(namespace: dict) -> Parameters:
    """The validation cell: every parameter the notebook's globals hold, checked; typos become errors.

    papermill only warns about a parameter the notebook does not declare (``-p aply True`` would silently dry-run),
    so every plain value defined before this cell must be a known parameter. It also makes runbook errors show as
    one line plus a hint box instead of a traceback.
    """
    _install_error_display()
    values = {name: value for name, value in namespace.items()
              if not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, _PARAMETER_TYPES)}
    params = validate_parameters(**values)
    target = params.target or f"(built-in simulated host: {params.simulator_profile})"
    text = (f"Parameters checked: target {target}, profile {params.profile}, apply {params.apply}, "
            f"reboot {params.reboot}, endpoints {', '.join(params.endpoints)}")
    _emit(Card(f"<p>{html.escape(text)}</p>", text), params.simulated)
    return params


# --- display ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    """A piece of static output: the same content as HTML (notebooks, exported evidence) and as text (logs)."""

    html: str
    text: str

    def _repr_html_(self) -> str:
        return self.html

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """Returned as a cell's value (not emitted), the plain-text form is the text, not the dataclass repr."""
        return {"text/html": self.html, "text/plain": self.text}

    def render_text(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def _bundle(obj: Any, simulated: bool) -> dict:
    text = obj.render_text() if hasattr(obj, "render_text") else str(obj)
    body = obj._repr_html_() if hasattr(obj, "_repr_html_") else f"<pre>{html.escape(text)}</pre>"
    if simulated and SIMULATED_BANNER_HTML not in body:
        body = SIMULATED_BANNER_HTML + body
    if simulated and not text.startswith(SIMULATED_TEXT):
        text = f"{SIMULATED_TEXT}\n{text}"
    return {"text/html": body, "text/plain": text}


def _emit(obj: Any, simulated: bool = False) -> None:
    bundle = _bundle(obj, simulated)
    if _RESULTS is not None:
        _RESULTS.append(bundle)
        return
    if _kernel() is None:
        print(bundle["text/plain"], flush=True)
        return
    from IPython.display import display

    display(bundle, raw=True)


@contextlib.contextmanager
def collect_results() -> Iterator[list[dict]]:
    """Gather output bundles instead of displaying them (widget callbacks have no cell to display into)."""
    global _RESULTS
    previous, _RESULTS = _RESULTS, []
    try:
        yield _RESULTS
    finally:
        _RESULTS = previous


def _kernel():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None)


def is_interactive() -> bool:
    """True when a person is at the notebook: the front end accepts input (JupyterLab does; papermill, nbclient
    and nbval never do). ``TLS_RUNBOOK_INTERACTIVE=0`` or ``1`` overrides the guess."""
    forced = os.environ.get("TLS_RUNBOOK_INTERACTIVE")
    if forced in ("0", "1"):
        return forced == "1"
    kernel = _kernel()
    return bool(kernel is not None and getattr(kernel, "_allow_stdin", False))


def _text_table(rows: list[list[Any]]) -> str:
    return "\n".join("  " + "  ".join(str(cell) for cell in row) for row in rows)


# --- failures: a hint box naming the next notebook, then re-raise ---------------------------------------------
_START = "00_start_here.ipynb"
# (error class, advice, notebook to open next; None: the failed step's own suggestion); the first match wins, so a
# subclass comes before its base.
_HINTS: tuple[tuple[type[BaseException], str, str | None], ...] = (
    (CredentialError, "The credential reference could not be resolved. Set TLS_RUNBOOK_USER and "
                      "TLS_RUNBOOK_PASSWORD in the environment that starts Jupyter, or fix the inventory's "
                      "credential entry.", _START),
    (InputError, "A parameter or input file is wrong. Fix it in the parameters cell; 00_start_here.ipynb lists "
                 "every parameter.", _START),
    (AuthenticationFailed, "The host refused the credentials or the authentication method. Check the account "
                           "(an administrator on the host) and the inventory's auth.", _START),
    (EncryptionRequired, "The host refuses unencrypted WinRM: use auth ntlm or kerberos, or an https:// target. "
                         "Do not set AllowUnencrypted on the host.", _START),
    (CertificateInvalid, "The HTTPS listener's certificate did not validate: give the inventory a ca_trust_path.",
     _START),
    (QuotaExceeded, "The host's WinRM shells for this account stayed in use (MaxShellsPerUser, 5 on WinRM 2.0). "
                    "Nothing ran: close other sessions of the account or wait for idle ones to time out, then run "
                    "this notebook again.", None),
    (TlsVersionMismatch, "The host's HTTPS listener offers only TLS 1.0/1.1. Use its http:// endpoint (5985, NTLM "
                         "with message encryption) until the fix and its reboot are in.", _START),
    (RebootFailed, "The restart did not happen as asked (see the message). Nothing else was changed; restart the "
                   "host, then run this notebook again to verify.", None),
    (HostUnreachable, "The host did not answer over WinRM (DNS, firewall, listener down). Nothing ran on it: "
                      "check Test-WSMan from a jump host, then run this notebook again.", _START),
    (TimedOut, "An operation ran out of time; the host's state is unknown. If this was the apply step, run "
               "03_registry_remediation.ipynb again: the host's journal tells what was written.", None),
    (RemoteScriptFailed, "The runbook's script failed on the host; its message is above.", None),
)


def _hint_for(exc: BaseException, step: str, next_notebook: str) -> Card:
    advice, suggested = next(((text, where) for kind, text, where in _HINTS if isinstance(exc, kind)),
                             ("An unexpected error: the traceback below says where. The evidence written so far "
                              "is kept.", None))
    next_notebook = suggested or next_notebook
    message = one_line(str(exc)) if isinstance(exc, RunbookError) else one_line(f"{type(exc).__name__}: {exc}")
    e = html.escape
    body = (f"<div class='tls-runbook-hint' style='border-left:6px solid #c62828;background:#fdecea;"
            f"padding:6px 10px'><b>Step failed: {e(step)}</b><br><code>{e(message)}</code><br>{e(advice)}<br>"
            f"<b>Open next:</b> <code>{e(next_notebook)}</code></div>")
    text = f"STEP FAILED: {step}: {message}\n  {advice}\n  Open next: {next_notebook}"
    return Card(body, text)


@contextlib.contextmanager
def _step(title: str, next_notebook: str, simulated: bool = False, total: int = 0) -> Iterator["_Progress"]:
    progress = _Progress(title, total)
    try:
        yield progress
    except BaseException as exc:
        progress.finish(failed=True)
        if not isinstance(exc, KeyboardInterrupt):
            _emit(_hint_for(exc, title, next_notebook), simulated)
        raise
    progress.finish()


def _install_error_display() -> None:
    """A RunbookError's text is already one line for an operator; a Python traceback under it only hides it."""
    kernel = _kernel()
    if kernel is None:
        return

    def show(shell, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)  # a custom handler must publish the error output itself
        return stb

    kernel.shell.set_custom_exc((RunbookError,), show)


class _Progress:
    """Interactive: a progress bar and a label that end as one static line. Headless: plain START/DONE lines."""

    def __init__(self, title: str, total: int):
        self.title, self.total, self.done, self.started = title, max(total, 1), 0, time.monotonic()
        self.widgets = None
        self.quiet = total == 0 or _RESULTS is not None
        if self.quiet:
            return
        if is_interactive():
            import ipywidgets as w
            from IPython.display import display

            self.widgets = (w.IntProgress(value=0, max=self.total, description=title[:20]), w.Label("starting"))
            self.handle = display(w.HBox(self.widgets), display_id=True)
        else:
            print(f"START {title}", flush=True)

    def advance(self, what: str) -> None:
        self.done += 1
        if self.widgets:
            self.widgets[0].value, self.widgets[1].value = min(self.done, self.total), what
        elif not self.quiet:
            print(f"  ... {what}", flush=True)

    def finish(self, failed: bool = False) -> None:
        line = f"{'FAILED' if failed else 'DONE'} {self.title} in {time.monotonic() - self.started:.1f} s"
        if self.widgets:
            for widget in self.widgets:
                widget.close()
            self.handle.update({"text/plain": line, "text/html": f"<p><i>{html.escape(line)}</i></p>"}, raw=True)
        elif not self.quiet:
            print(line, flush=True)


# --- sessions ----------------------------------------------------------------------------------------------------
@dataclass
class Session:
    """One host for one notebook: the target, the checked parameters, the evidence folder and what was learnt.

    Holds no credential: the transport inside ``target`` does, and ``repr`` of a Target hides it.
    """

    params: Parameters
    target: Target
    evidence: Path
    node: Any = field(default=None, repr=False)
    facts: HostFacts | None = field(default=None, repr=False)
    verdict: Verdict | None = field(default=None, repr=False)
    plan: RemediationPlan | None = field(default=None, repr=False)
    applied: ApplyReport | None = field(default=None, repr=False)
    facts_after: HostFacts | None = field(default=None, repr=False)
    verdict_after: Verdict | None = field(default=None, repr=False)
    rebooted: bool = False
    outcome: dict | None = field(default=None, repr=False)
    facts_unused: bool = field(default=False, repr=False)  # read at connect time and not shown yet

    @property
    def host(self) -> str:
        return self.target.name

    @property
    def simulated(self) -> bool:
        return self.node is not None or self.target.simulated

    def show(self, obj: Any) -> None:
        _emit(obj, self.simulated)

    def save_json(self, name: str, doc: dict) -> Path:
        return self.write(name, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")

    def write(self, name: str, data: str | bytes) -> Path:
        """Into the evidence folder, privately and atomically, scrubbed of the host's credential on the way in."""
        write_scrubbed(self.evidence / name, data, self.target.scrubber())
        return self.evidence / name

    def close(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None

    def _repr_html_(self) -> str:
        return _session_card(self).html

    def render_text(self) -> str:
        return _session_card(self).text


def open_session(params: Parameters, credential: Credential | None = None) -> Session:
    """Connect to the target, or start the built-in simulated host inside this kernel, and read the host once.

    Reading it here makes a wrong address or credential fail in the connect cell, and tells whether the host is
    simulated before the first output about it is shown. The simulated host gets a fresh random password that
    exists only in this process's memory (the Credential object goes straight to ``connect``), and stops when the
    kernel exits.
    """
    with _step("connect", _START, params.simulated, total=1) as progress:
        target, node = _connect(params, credential)
        evidence = Path(params.evidence_dir).expanduser() if params.evidence_dir else \
            Path.cwd() / "evidence" / target.name
        private_folder(evidence)
        session = Session(params, target, evidence.resolve(), node)
        session.facts = inspect_host(target, params.endpoints)
        session.facts_unused = True
        progress.advance("host read")
    session.show(_session_card(session))
    return session


def _connect(params: Parameters, credential: Credential | None) -> tuple[Target, Any]:
    """The target, and the simulated node when the built-in host was started for it (None for a real target)."""
    if params.simulated:
        from .simulator.fleet import start_node
        from .simulator.host import builtin_profile

        generated = Credential(SIMULATOR_USER, secrets.token_urlsafe(18))
        node = start_node(builtin_profile(params.simulator_profile), [(generated.username, generated.password)],
                          strict=True)
        atexit.register(_stop_at_exit, node)
        target = connect(node.url, credential=generated)
        target.name, target.simulated = node.name, True
    else:
        node = None
        target = connect(params.target, inventory=params.inventory or None, credential=credential)
    if params.record:
        from .recording import record

        note = f"SIMULATED host: tls-runbook simulator profile {params.simulator_profile}" if node else None
        record(target.transport, Path(params.record).expanduser(), note)
    return target, node


def _stop_at_exit(node: Any) -> None:
    """At interpreter exit the simulator's NTLM scratch folder may already be gone; the listener still stops."""
    with contextlib.suppress(OSError):
        node.stop()


def _session_card(session: Session) -> Card:
    where = "built-in simulated host " + session.params.simulator_profile if session.node is not None \
        else session.target.endpoint
    text = f"Host {session.host} ({where}); evidence folder {session.evidence}"
    return Card(f"<p>Host <b>{html.escape(session.host)}</b> ({html.escape(where)}); evidence folder "
                f"<code>{html.escape(str(session.evidence))}</code></p>", text)


# --- 01: the cause -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedError:
    kind: str  # aadsts1002016, other_aadsts, handshake_failure
    code: str | None
    tenant_id: str | None
    trace_id: str | None = None
    correlation_id: str | None = None
    timestamp: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.to_dict().items() if value)


def parse_error_text(text: str) -> ParsedError | None:
    """The AADSTS code, tenant and trace ids from pasted error text, or None when it is not a sign-in error.

    A host whose legacy protocols are already off never reaches Entra's 400: it fails the handshake instead, so
    those messages count as the same root cause ([E3], windows-tls.md section 0).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[:MAX_ERROR_TEXT]
    code = re.search(r"\bAADSTS(\d{5,8})\b", text)
    tenant = re.search(rf"Tenant\s*ID\s*(?:is)?\s*[:=]?\s*[\"']?({_GUID})", text, re.IGNORECASE) or \
        re.search(rf"tenants?/({_GUID})", text, re.IGNORECASE)

    def guid_after(label: str) -> str | None:
        found = re.search(rf"{label}\s*:?\s*({_GUID})", text, re.IGNORECASE)
        return found.group(1).lower() if found else None

    stamp = re.search(r"Timestamp\s*:?\s*(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}Z?)", text, re.IGNORECASE)
    if code:
        kind = "aadsts1002016" if code.group(1) == "1002016" else "other_aadsts"
        found_code = "AADSTS" + code.group(1)
    elif any(symptom in text.lower() for symptom in _HANDSHAKE_SYMPTOMS):
        kind, found_code = "handshake_failure", None
    else:
        return None
    return ParsedError(kind, found_code, tenant.group(1).lower() if tenant else None, guid_after("Trace ID"),
                       guid_after("Correlation ID"), stamp.group(1) if stamp else None)


_MEANINGS = {
    "aadsts1002016": "Entra completed a TLS 1.0/1.1 (or 3DES) handshake with this client and then refused the "
                     "sign-in. The client asked for a legacy protocol: the fix is on the client host, not in the "
                     "tenant.",
    "handshake_failure": "The client could not agree on any protocol or cipher suite with Entra. Same root cause "
                         "as AADSTS1002016 on a host whose legacy protocols are already disabled.",
    "other_aadsts": "A different Entra error: this runbook is about AADSTS1002016 only. Look the code up at "
                    "https://login.microsoftonline.com/error.",
}


def explain_error(params: Parameters) -> None:
    """What the pasted error says, why it appears now (enforcement dates), and where to look next."""
    parsed = parse_error_text(params.error_text)
    rows = [["Enforced for the public cloud", "31 January 2022 (moved from 30 June 2021)"],
            ["US Government clouds", "31 March 2021"], ["21Vianet (China)", "31 January 2025, rolling out"],
            ["Refused", "TLS 1.0, TLS 1.1 and TLS_RSA_WITH_3DES_EDE_CBC_SHA; TLS 1.2 and 1.3 accepted"]]
    if parsed is None and params.error_text.strip():
        head = "The pasted text contains no AADSTS code and no TLS handshake failure."
    elif parsed is None:
        head = "No error text pasted (parameter error_text); the checks below do not need it."
    else:
        head = _MEANINGS[parsed.kind]
        rows = [["Error", parsed.code or "TLS handshake failure"],
                ["Tenant", parsed.tenant_id or "(not in the text, or a placeholder)"]] + \
            [[label, value] for label, value in (("Trace ID", parsed.trace_id),
                                                 ("Correlation ID", parsed.correlation_id),
                                                 ("Timestamp", parsed.timestamp)) if value] + rows
    source = k.SOURCES["E1"]
    _emit(Card(f"<p>{html.escape(head)}</p>{html_table(['What', 'Value'], rows)}"
               f"<p>Source: <a href='{source}' target='_blank' rel='noopener'>{source}</a></p>",
               f"{head}\n{_text_table(rows)}\nSource: {source}"))


def _ensure_facts(session: Session, refresh: bool = False) -> HostFacts:
    """Facts for 01 and 04, which read the host without replacing 02's facts.json (the state before a fix)."""
    if session.facts is None or refresh:
        session.facts = _inspect(session, save_as=None)
    session.facts_unused = False
    return session.facts


def security_protocol_default(session: Session, refresh: bool = False) -> None:
    """What a fresh Windows PowerShell asks for when a script sets nothing: the value the Entra modules use."""
    host_facts = _ensure_facts(session, refresh)
    observed = dict(host_facts.observed.security_protocol) if host_facts.observed else {}
    rows = []
    for bitness, value in observed.items():
        name = k.security_protocol_name(value)
        if value == k.SP_SYSTEM_DEFAULT:
            meaning = "the OS chooses (TLS 1.2 if Schannel has it on by default)"
        elif value & k.SP_TLS12 or value & k.SP_TLS13:
            meaning = "asks for TLS 1.2: Entra can accept it"
        else:
            meaning = "asks only for legacy protocols: Entra answers AADSTS1002016"
        rows.append([f"powershell.exe ({'64' if bitness == 'x64' else '32'}-bit)", f"{name} ({value})", meaning])
    title = "[Net.ServicePointManager]::SecurityProtocol in a fresh process"
    session.show(Card(f"<h4>{html.escape(title)}</h4>{html_table(['Process', 'Value', 'Meaning'], rows)}",
                      f"{title}\n{_text_table(rows)}"))


def _probes_of(host_facts: HostFacts, mode: str) -> list[Probe]:
    return [p for p in (host_facts.observed.probes if host_facts.observed else ()) if p.mode == mode]


def _client(host_facts: HostFacts) -> EntraAnswer | None:
    """What a fresh Windows PowerShell on the host gets from Entra (runbook_lib.acceptance decides)."""
    return client_answer(host_facts.observed.probes if host_facts.observed else ())


def _client_refused(host_facts: HostFacts) -> bool:
    answer = _client(host_facts)
    return answer is not None and answer.decisive and not answer.accepted


def probe_as_entra_would(session: Session) -> None:
    """TCP, the default handshake (what an app gets without asking) and an explicit TLS 1.2 one, run on the host."""
    host_facts = _ensure_facts(session)
    probes = tuple(p for p in (host_facts.observed.probes if host_facts.observed else ()) if p.mode != "app")
    report = ProbeReport(session.host, session.simulated, probes,
                         "TLS probes from the host: default (as the Entra modules connect) and explicit TLS 1.2")
    session.show(report)


_ANSWER_MEANINGS = {
    ACCEPTED: "The request got past TLS: Entra does not refuse this host's Windows PowerShell for legacy TLS.",
    LEGACY: "This is the refusal Connect-AzureAD gets on this host, shown without any credential.",
    "handshake_failure": "No answer came back: the TLS session failed. Same root cause as AADSTS1002016 on a host "
                         "whose legacy protocols are off.",
    CERTIFICATE: "The certificate did not validate: a missing root (DigiCert Global Root G2) or a TLS-inspecting "
                 "proxy. Not a TLS version problem; Connect-AzureAD fails the same way until it is fixed.",
    UNREACHABLE: "The request did not reach Entra (DNS, firewall or proxy): it says nothing about TLS.",
    "unknown": "No endpoint probed is Entra's token endpoint, so there is no AADSTS answer to read.",
}


def entra_request(session: Session, after: bool = False) -> None:
    """The token request Connect-AzureAD starts with, made from a fresh Windows PowerShell on the host, and Entra's
    answer: AADSTS1002016 means legacy TLS refused, any other AADSTS code that TLS got through.

    The request carries a made-up client id and no secret, so no credential is used and no tenant changes.
    ``after``: the host as read back after the apply (and the reboot, when one ran) in notebook 03.
    """
    host_facts = (session.facts_after if after else None) or _ensure_facts(session)
    probes = tuple(_probes_of(host_facts, "app"))
    title = ("The token request Connect-AzureAD makes (fresh Windows PowerShell"
             + (", after the change)" if after else ")"))
    session.show(ProbeReport(session.host, session.simulated, probes, title))
    answer = client_answer(probes)
    if answer is None:
        text = "The host ran no application-level probe (facts from an older inspect)."
    else:
        text = f"{answer.reason[0].upper()}{answer.reason[1:]}. {_ANSWER_MEANINGS[answer.outcome]}"
    session.show(Card(f"<p><b>{html.escape(text)}</b></p>", text))


def diagnose_cause(session: Session) -> None:
    """Tell "the OS can, the app does not ask" apart from "the OS cannot", and name the notebook to open next."""
    host_facts = _ensure_facts(session)
    client = _client(host_facts)
    tls12 = [entra_answer(p) for p in _probes_of(host_facts, "tls12")]
    if client is None or client.outcome == UNREACHABLE and not any(a.decisive for a in tls12):
        diagnosis, next_notebook = "unreachable", "02_os_check.ipynb"
        text = ("The host cannot reach Entra (firewall, proxy or DNS): fix the network path first; TLS cannot be "
                "judged from here.")
    elif client.outcome == CERTIFICATE:
        diagnosis, next_notebook = "certificate", "02_os_check.ipynb"
        text = (f"{client.reason}. Install the root Entra chains to (DigiCert Global Root G2) or trust the "
                "inspecting proxy's root; this runbook's registry changes do not fix a certificate problem.")
    elif client.accepted:
        diagnosis, next_notebook = "works", "04_powershell_session_fix.ipynb"
        text = ("A fresh Windows PowerShell on this host already gets past TLS with Entra. If an application still "
                "shows AADSTS1002016, it sets its own protocol list or runs under another runtime: check it with "
                "the session-fix notebook.")
    elif (host_facts.powershell.windows_powershell_major or 3) < 3:
        diagnosis, next_notebook = "powershell_v2", "02_os_check.ipynb"
        text = (f"Windows PowerShell {host_facts.powershell.windows_powershell} runs on .NET 3.5 (CLR 2): "
                f"{client.reason}. The Entra modules need .NET Framework 4.5 or later and WMF 5.1 (or 3.0 where "
                "5.1 is not available); the OS check names what to install.")
    elif any(a.accepted for a in tls12):
        diagnosis, next_notebook = "app_does_not_ask", "03_registry_remediation.ipynb"
        text = (f"The OS can do TLS 1.2 with Entra, the application does not ask for it ({client.reason}). The "
                "durable fix is the .NET registry values (notebook 03); the per-session workaround is in "
                "notebook 04.")
    else:
        diagnosis, next_notebook = "os_cannot", "02_os_check.ipynb"
        text = ("Even an explicit TLS 1.2 handshake does not satisfy Entra: the OS itself cannot (Schannel "
                "protocol off, missing update, or a cipher-suite policy without an Entra suite). Start with the OS "
                "check.")
    parsed = parse_error_text(session.params.error_text)
    session.save_json("cause.json", {
        "host": session.host, "simulated": session.simulated, "error": parsed.to_dict() if parsed else None,
        "security_protocol": dict(host_facts.observed.security_protocol) if host_facts.observed else {},
        "probes": [p.to_dict() for p in (host_facts.observed.probes if host_facts.observed else ())],
        "diagnosis": diagnosis, "next_notebook": next_notebook})
    session.show(Card(f"<h4>Diagnosis: {diagnosis.replace('_', ' ')}</h4><p>{html.escape(text)}</p>"
                      f"<p><b>Open next:</b> <code>{next_notebook}</code></p>",
                      f"Diagnosis: {diagnosis}\n{text}\nOpen next: {next_notebook}"))


# --- 02: the OS check ---------------------------------------------------------------------------------------------
def inspect(session: Session) -> None:
    """Read the host (registry values, versions, SecurityProtocol, probes); facts.json is the state before a fix."""
    if session.facts is None or not session.facts_unused:
        session.facts = _inspect(session, save_as=None)
    session.facts_unused = False
    session.write("facts.json", session.facts.dumps())
    session.verdict = None
    session.show(facts_table(session.facts))


def _inspect(session: Session, save_as: str | None) -> HostFacts:
    with _step(f"inspect {session.host}", "02_os_check.ipynb", session.simulated, total=1) as progress:
        host_facts = inspect_host(session.target, session.params.endpoints)
        progress.advance("facts collected")
    if save_as:
        session.write(save_as, host_facts.dumps())
    return host_facts


_SECTIONS = (("SCHANNEL", k.SCHANNEL_PROTOCOLS), (".NET (64-bit view)", k.NETFX_NATIVE),
             (".NET (32-bit view, Wow6432Node)", k.NETFX_WOW64), (".NET setup", k.NDP),
             ("WinHTTP (64-bit view)", k.WINHTTP_NATIVE), ("WinHTTP (32-bit view)", k.WINHTTP_WOW64),
             ("Cipher-suite policy", k.CIPHER_POLICY))
_ALWAYS_SHOWN_SCHANNEL = (k.schannel_key("TLS 1.2", "Client"), k.schannel_key("TLS 1.2", "Server"))


def facts_table(host_facts: HostFacts) -> Card:
    """Every fact the verdict rests on, with real registry types and which values Group Policy delivers."""
    model = HostModel(host_facts)
    os_info = host_facts.os
    release = model.release
    observed = host_facts.observed.security_protocol if host_facts.observed else {}
    summary = [
        ["OS", os_info.caption], ["Version (build)", f"{os_info.version} (build {os_info.version_tuple[2]})"],
        ["Service pack", os_info.service_pack], ["Product type", os_info.product_type],
        ["Architecture", os_info.architecture],
        [".NET Framework 4.x", f"{k.dotnet_version(release) or 'not 4.5+'} (Release {release})" if release
         else "not installed (no Release value)"],
        ["Windows PowerShell", host_facts.powershell.windows_powershell or "absent"],
        ["PowerShell 7", host_facts.powershell.pwsh or "absent"],
        ["Hotfixes read", ", ".join(host_facts.hotfixes) or "none"],
        ["SecurityProtocol (fresh process)",
         ", ".join(f"{b}: {k.security_protocol_name(v)} ({v})" for b, v in observed.items()) or "not observed"],
    ]
    rows = []
    for path, name in k.values_read():
        section = next((label for label, root in _SECTIONS if path.casefold().startswith(root.casefold())), "")
        value = host_facts.registry.get(path, name)
        if value is None and section == "SCHANNEL" and path not in _ALWAYS_SHOWN_SCHANNEL:
            continue
        if value is None:
            rows.append([section, path, name, "(absent)", "OS default", ""])
        else:
            data = value.data if not isinstance(value.data, int) else f"{value.data} (0x{value.data:x})"
            rows.append([section, path, name, value.type, json.dumps(data) if not isinstance(data, str) else data,
                         "Group Policy" if value.from_policy else ""])
    policy_values = sum(1 for row in rows if row[5])
    note = (f"{policy_values} value(s) come from Group Policy: a local change to them is reverted at the next "
            "policy refresh." if policy_values else "No value here comes from Group Policy.")
    headers = ["Area", "Key", "Value", "Type", "Data", "Source"]
    html_text = (f"<h4>Host facts: {html.escape(host_facts.host)} (collected {html.escape(host_facts.collected_at)})"
                 f"</h4>{html_table(['Fact', 'Value'], summary)}<h4>Registry values the verdict reads</h4>"
                 f"<p>SCHANNEL keys that are absent are left out, except TLS 1.2 (absent means the OS default).</p>"
                 f"{html_table(headers, rows)}<p>{html.escape(note)}</p>")
    text = (f"Host facts: {host_facts.host}\n{_text_table(summary)}\nRegistry values:\n"
            f"{_text_table([row[1:] for row in rows])}\n{note}")
    return Card(html_text, text)


def os_matrix(session: Session) -> None:
    """The row of the OS matrix this host falls in: what this Windows release can do for TLS 1.2."""
    host_facts = _ensure_facts(session)
    row = k.os_row(host_facts.os.version_tuple, host_facts.os.service_pack, host_facts.os.product_type)
    tls12 = {"yes": "yes", "no": "no (upgrade the OS)", "update": f"only after {row.required_update}"}[row.tls12]
    rows = [["Release", row.name], ["TLS 1.2 possible", tls12],
            ["TLS 1.1/1.2 on by default", "yes" if row.tls12_default_on else "no: needs SCHANNEL values"],
            ["TLS 1.3", "yes" if row.tls13 else "no"],
            ["WinHTTP needs", row.winhttp_update or "nothing extra"],
            ["Highest .NET Framework", row.dotnet_max], ["WMF 5.1 available", "yes" if row.wmf51 else "no"]]
    links = " ".join(f"<a href='{k.SOURCES[tag]}' target='_blank' rel='noopener'>[{tag}]</a>" for tag in row.sources)
    session.show(Card(f"<h4>OS matrix row</h4>{html_table(['', ''], rows)}<p>Sources: {links}</p>",
                      "OS matrix row\n" + _text_table(rows) + "\nSources: " +
                      " ".join(k.SOURCES[tag] for tag in row.sources)))


def assess_host(session: Session) -> None:
    """The verdict with findings, blockers and source links; saved as verdict.json (the state before a fix)."""
    host_facts = _ensure_facts(session)
    verdict = assess(host_facts, session.params.profile)
    session.verdict = verdict
    session.write("verdict.json", verdict.dumps())
    session.show(verdict)


# --- 03: registry remediation -------------------------------------------------------------------------------------
def show_plan(session: Session) -> None:
    """The plan as current -> new, with the fix and rollback .reg files written next to the executed notebook."""
    _plan(session, show=True)


def _plan(session: Session, show: bool = False) -> RemediationPlan:
    host_facts = _ensure_facts(session)
    verdict = session.verdict or assess(host_facts, session.params.profile)
    session.verdict = verdict
    plan = RemediationPlan.from_verdict(verdict, host_facts)
    session.plan = plan
    _archive_previous_apply(session.evidence)
    if plan.changes:
        plan.write(session.evidence / "fix.reg", session.evidence / "rollback.reg",
                   lambda path, data: write_scrubbed(path, data, session.target.scrubber()))
        files = (f"Wrote {session.evidence / 'fix.reg'} and {session.evidence / 'rollback.reg'} (regedit can import "
                 "either; rollback restores every value with its original type).")
    else:
        files = "Nothing to change, so no .reg files were written."
    blocked = f" Blocked by: {', '.join(verdict.blockers)}; these need action outside this host's registry." \
        if verdict.blockers else ""
    if not show:
        return plan
    session.show(Card(plan._repr_html_() + f"<p>{html.escape(files + blocked)}</p>",
                      f"Plan for {plan.host}: {len(plan.changes)} change(s), restart {plan.restart}\n" +
                      _text_table([[f"{c.path}\\{c.name}", "(absent)" if c.current is None else c.current, "->",
                                   c.type, c.data] for c in plan.changes]) +
                      f"\n{files}{blocked}"))
    return plan


def _archive_previous_apply(folder: Path) -> None:
    report = folder / "apply-report.json"
    try:
        previous = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not any(r.get("status") == "written" for r in previous.get("results", [])):
        return
    stamp = previous.get("apply_id") or datetime.fromtimestamp(report.stat().st_mtime, timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    archive = folder / "history" / re.sub(r"[^A-Za-z0-9_.-]", "_", str(stamp))
    private_folder(archive)
    for name in ("fix.reg", "rollback.reg", "apply-report.json", "facts-after.json", "verdict-after.json"):
        if (folder / name).exists():
            shutil.move(str(folder / name), str(archive / name))


def apply_fix(session: Session, confirmed: bool | None = None) -> None:
    """Write the plan only with apply=True or a person's confirmation; otherwise a dry run that writes nothing.

    ``confirmed`` comes from the widget's confirmation step; in JupyterLab without it the cell asks.
    """
    plan = session.plan or _plan(session)
    earlier = _earlier_applies(session)
    write = session.params.apply or bool(confirmed)
    if not write and confirmed is None and plan.changes and _RESULTS is None and is_interactive():
        answer = input(f"Type 'apply' to write {len(plan.changes)} value(s) to {session.host} "
                       "(anything else keeps the dry run): ")
        write = answer.strip().lower() == "apply"
    with _step(f"apply on {session.host}", "03_registry_remediation.ipynb", session.simulated) as progress:
        report = apply_plan(session.target, plan, apply=write,
                            evidence_dir=session.evidence if plan.changes else None)
        progress.advance(report.summary())
    session.applied = report
    _save_apply_report(session, report, plan, earlier)
    session.show(report)
    if report.error:  # stop the chain here: the evidence holds the journal and the rollback file
        raise ApplyIncomplete(session.host, f"apply stopped after {len(report.written)} of {len(plan.changes)} "
                                            f"value(s): {report.error}; run this notebook again to converge")


def _earlier_applies(session: Session) -> list[dict]:
    """Every apply this evidence folder already records (an archived one, or what an interrupted attempt left in
    ``attempt-<n>/``), oldest first. One whose answer never arrived is completed from the host's journal first:
    nothing is applied again over a host before its last apply has been read."""
    found: dict[str, dict] = {}
    for report in apply_reports(session.evidence):
        for recorded in [*(e for e in report.get("earlier_applies") or [] if isinstance(e, dict)), report]:
            if isinstance(recorded.get("apply_id"), str) and found.get(recorded["apply_id"], {"pending": True}) \
                    .get("pending"):
                found[recorded["apply_id"]] = recorded
    for apply_id, recorded in found.items():
        if recorded.get("pending"):
            with _step(f"read the journal of apply {recorded['apply_id']}", "03_registry_remediation.ipynb",
                       session.simulated, total=1) as progress:
                found[apply_id] = recover_apply(session.target, recorded)
                progress.advance(found[apply_id]["error"] or "the apply completed")
    return [found[apply_id] for apply_id in sorted(found)]


def _save_apply_report(session: Session, report: ApplyReport, plan: RemediationPlan,
                       earlier: list[dict] | None = None) -> None:
    """One shape for every run (dry, no-op, real); a real apply's file already holds the host's own backup. With
    earlier applies in the folder, the backup is each value's state before the first of them, so a rollback goes
    back to where the host was before the runbook touched it, not to a half-way point."""
    earlier = earlier or []
    own = _read_json(session.evidence / "apply-report.json")
    current = [{"apply_id": report.apply_id, "results": report.results,
                "backup": own.get("backup", []) if own.get("apply_id") == report.apply_id else []}] \
        if report.apply_id else []
    applies = [*earlier, *current]
    backup = original_backup(applies)
    session.save_json("apply-report.json", {
        "host": session.host, "simulated": report.simulated, "dry_run": report.dry_run,
        "changed": report.changed_anything, "restart": plan.restart, "apply_id": report.apply_id,
        "completed": report.completed, "error": report.error, "recovered": report.recovered,
        "results": report.results, "backup": backup,
        "earlier_applies": [{"apply_id": e["apply_id"], "file": e.get("_file"), "completed": e.get("completed"),
                             "recovered_from_journal": bool(e.get("recovered_from_journal")), "error": e.get("error"),
                             "results": e.get("results", []), "backup": e.get("backup", [])} for e in earlier]})
    if earlier and backup:
        session.write("rollback.reg", to_bytes(rollback_from_backup(backup, session.host, report.simulated)))


def _read_after(session: Session) -> HostFacts:
    """The host as it is now, saved with its verdict as facts-after.json / verdict-after.json."""
    session.facts_after = _inspect(session, save_as="facts-after.json")
    session.verdict_after = assess(session.facts_after, session.params.profile)
    session.write("verdict-after.json", session.verdict_after.dumps())
    return session.facts_after


def read_back(session: Session) -> None:
    """Read the host again and compare each planned value: before, planned, and what the host holds now."""
    plan = session.plan or _plan(session)
    after = _read_after(session)
    rows = []
    for change, prior in zip(plan.changes, plan.prior):
        now = after.registry.get(change.path, change.name)
        before = "(absent)" if prior is None else f"{prior.type} {prior.data}"
        current = "(absent)" if now is None else f"{now.type} {now.data}"
        status = "as planned" if now is not None and now.same_as(change.type, change.data) else "NOT as planned"
        rows.append([f"{change.path}\\{change.name}", before, f"{change.type} {change.data}", current, status])
    written = session.applied is not None and not session.applied.dry_run
    if not plan.changes:
        head = "Nothing was planned, so nothing changed: the host already holds every value this profile wants."
    elif not written:
        head = "Dry run: nothing was written, so every value is still as before (NOT as planned)."
    elif all(row[4] == "as planned" for row in rows):
        head = f"Every planned value reads back as planned ({len(rows)})."
    else:
        head = "Some values do not read back as planned: see the rows marked NOT as planned."
    card = Card(f"<h4>Read-back diff</h4><p>{html.escape(head)}</p>"
                + (html_table(["Value", "Before", "Planned", "Now", "Status"], rows) if rows else ""),
                f"Read-back diff: {head}\n{_text_table(rows)}")
    session.show(card)


def _reboot_pending(host_facts: HostFacts, verdict: Verdict) -> bool:
    """The registry is already right but Entra still refuses a fresh process: Schannel has not loaded the values."""
    return not verdict.changes and not verdict.blockers and _client_refused(host_facts)


def reboot_if_needed(session: Session) -> None:
    """Reboot and wait when the change needs it and reboot=True; otherwise say plainly what stays broken."""
    after, verdict_after = session.facts_after, session.verdict_after
    restart = session.plan.restart if session.plan else "none"
    written = session.applied is not None and session.applied.changed_anything
    # An earlier attempt's writes are not counted: it may have rebooted the host already, so only what the host
    # shows now (values in place, a fresh process still failing) asks for a reboot on their behalf.
    pending = (written and restart == "reboot") or (after is not None and verdict_after is not None
                                                    and _reboot_pending(after, verdict_after))
    if not pending:
        text = "No reboot needed."
        if written and restart == "new_process":
            text += (" Every new process reads the .NET values; sessions and services already running keep the old "
                     "value until they restart.")
        card = Card(f"<p>{html.escape(text)}</p>", text)
    elif session.params.reboot:
        with _step(f"reboot {session.host}", "03_registry_remediation.ipynb", session.simulated,
                   total=1) as progress:
            report = reboot_and_wait(session.target, poll_s=0.5)
            progress.advance("WinRM answers again")
        session.rebooted = True
        card = Card(report._repr_html_(), report.render_text())
    else:
        text = (f"REBOOT PENDING on {session.host}: Schannel reads its protocol values at boot, so Windows "
                "PowerShell, Connect-MgGraph / Connect-ExchangeOnline and every other Schannel client on this host "
                "keep failing with AADSTS1002016 until it restarts. Restart it in a maintenance window (or run "
                "this notebook again with reboot=True), then run 04_powershell_session_fix.ipynb to prove the fix.")
        card = Card("<div style='border-left:6px solid #b26a00;background:#fff4e5;padding:6px 10px'><b>"
                    f"{html.escape(text)}</b></div>", text)
    session.show(card)


def verify_after(session: Session) -> None:
    """The verdict after the change (re-read after a reboot), with the default probe as the proof."""
    if session.rebooted or session.facts_after is None:
        _read_after(session)
    assert session.facts_after is not None and session.verdict_after is not None
    session.show(session.verdict_after)
    client = _client(session.facts_after)
    if client is not None and client.accepted:
        text = f"A fresh Windows PowerShell on the host now gets past TLS with Entra: {client.reason}."
    elif _reboot_pending(session.facts_after, session.verdict_after):
        text = (f"The values are in place but Entra still refuses a fresh Windows PowerShell ({client.reason}): "
                "the reboot is pending.")
    else:
        text = ("A fresh Windows PowerShell on the host still does not get past TLS with Entra"
                + (f": {client.reason}." if client else "."))
    session.show(Card(f"<p><b>{html.escape(text)}</b></p>", text))


# --- 04: the PowerShell session fix --------------------------------------------------------------------------------
SESSION_FIX_LINES = {
    "bor": "[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor "
           "[Net.SecurityProtocolType]::Tls12",
    "pin": "[System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]::Tls12",
}
_MODE_COSTS = {
    "bor": ("Adds TLS 1.2 and keeps what is there, so legacy servers used by the same script still work. On a "
            "SystemDefault (0) process it pins TLS 1.2 and loses the OS choice and TLS 1.3: only add it when the "
            "value lacks Tls12 and is not SystemDefault."),
    "pin": ("Microsoft's published fix: TLS 1.2 only. It drops TLS 1.3 and breaks any legacy server the same "
            "session talks to."),
}


def session_fix_demo(session: Session) -> None:
    """Set SecurityProtocol in one process on the host and probe Entra from that same process."""
    mode = session.params.session_fix_mode
    with _step(f"session fix ({mode}) on {session.host}", "02_os_check.ipynb", session.simulated,
               total=1) as progress:
        report = session_fix(session.target, mode, session.params.endpoints)
        progress.advance("probe ran in the same process")
    before, after = report.security_protocol or (0, 0)
    ok = report.ok
    session.save_json("session-fix.json", {
        "host": session.host, "simulated": session.simulated, "mode": mode, "before": before, "after": after,
        "before_name": k.security_protocol_name(before), "after_name": k.security_protocol_name(after), "ok": ok,
        "probes": [p.to_dict() for p in report.probes]})
    session.show(report)
    rows = [[name, SESSION_FIX_LINES[name], cost, "this run" if name == mode else ""]
            for name, cost in _MODE_COSTS.items()]
    answer = client_answer(report.probes)
    if report.fix_error:
        verdict = (f"The runtime refused TLS 1.2 ({report.fix_error}): this Windows PowerShell runs on a .NET without "
                   "TLS 1.2 (CLR 2 without its update, or .NET 4.0). Install .NET Framework 4.5+ and WMF 5.1; see "
                   "02_os_check.ipynb.")
    elif ok:
        verdict = ("The session fix works in that process: Entra accepts it" + (f" ({answer.reason})" if answer else "")
                   + ". The host can do TLS 1.2, only the default was wrong.")
    else:
        verdict = ("Even with TLS 1.2 requested Entra does not accept the session"
                   + (f" ({answer.reason})" if answer else "") + ": the OS cannot, see 02_os_check.ipynb.")
    session.show(Card(f"<p><b>{html.escape(verdict)}</b></p>"
                      + html_table(["Mode", "Line", "What it costs", ""], rows),
                      f"{verdict}\n" + _text_table(rows)))


def fresh_process_check(session: Session) -> None:
    """Why the session fix is not the fix: a new process starts from the registry-derived default again."""
    security_protocol_default(session, refresh=True)
    text = ("Every new powershell.exe starts from this value again: the session fix lasted only for its own "
            "process. The durable fix is the .NET registry values (SchUseStrongCrypto / SystemDefaultTlsVersions, "
            "notebook 03), read by every new process. A line in $PROFILE is no substitute: profiles do not run in "
            "WinRM/PSRemoting sessions, scheduled tasks with -NoProfile or services.")
    session.show(Card(f"<p>{html.escape(text)}</p>", text))


def final_verdict(session: Session) -> None:
    """fixed / fixed after reboot / compliant / blocked / reboot pending / failed, saved as outcome.json."""
    host_facts = _ensure_facts(session)
    verdict = assess(host_facts, session.params.profile)
    before = _read_json(session.evidence / "verdict.json")
    applied = _last_apply_that_wrote(session.evidence)
    earlier = _read_json(session.evidence / "apply-report.json").get("earlier_applies") or []
    written_earlier = written_values([e for e in earlier if isinstance(e, dict)])
    wrote = bool(applied) or bool(written_earlier)
    restart_before = applied.get("restart") or before.get("restart") or verdict.restart
    if written_earlier and not applied:  # this attempt found the host already changed by an earlier one
        restart_before = restart_for_paths(path for path, _ in written_earlier)
    client = _client(host_facts)
    works = client is not None and client.accepted and not verdict.affected
    if verdict.blockers:
        outcome, detail = "blocked", "Blocked by " + ", ".join(verdict.blockers) + ": see the findings."
    elif client is not None and client.outcome == CERTIFICATE:
        outcome, detail = "failed", (f"{client.reason}: install the root Entra chains to (DigiCert Global Root G2) or "
                                     "trust the inspecting proxy's root. Not a TLS version problem.")
    elif _reboot_pending(host_facts, verdict):
        outcome, detail = "reboot_pending", "The values are in place; restart the host, then run this notebook again."
    elif works and wrote:
        outcome = "fixed_after_reboot" if restart_before == "reboot" else "fixed"
        detail = f"The registry fix is in place and Entra accepts a fresh Windows PowerShell: {client.reason}."
    elif works and not verdict.changes:
        outcome, detail = "compliant", f"Nothing needed changing: {client.reason}."
    elif verdict.changes and not wrote:
        outcome = "fixable"
        detail = ("Not fixed yet: the plan was not applied (dry run). Run 03_registry_remediation.ipynb with "
                  "apply=True, or use the session fix above as a stopgap.")
    else:
        outcome = "failed"
        detail = ("Windows PowerShell still fails by default although the plan was applied: read the findings "
                  "(a setting the runbook does not read?) and use the session fix above as a stopgap.")
    doc = {"host": session.host, "simulated": session.simulated, "outcome": outcome,
           "blockers": list(verdict.blockers), "restart": restart_before, "detail": detail}
    session.save_json("outcome.json", doc)
    session.outcome = doc
    colour = {"fixed": "#2e7d32", "fixed_after_reboot": "#2e7d32", "compliant": "#2e7d32", "blocked": "#8b0000",
              "reboot_pending": "#b26a00", "fixable": "#b26a00", "failed": "#c62828"}[outcome]
    blockers = "".join(f"<li><code>{html.escape(f.id)}</code>: {html.escape(f.message)}</li>"
                       for f in verdict.findings if f.severity == "blocker")
    session.show(Card(f"<h3>Final verdict for {html.escape(session.host)}: <span style='color:{colour}'>"
                      f"{outcome.replace('_', ' ').upper()}</span></h3><p>{html.escape(detail)}</p>"
                      + (f"<ul>{blockers}</ul>" if blockers else ""),
                      f"Final verdict for {session.host}: {outcome.upper()}\n{detail}" +
                      "".join(f"\n  blocker {f.id}: {f.message}" for f in verdict.findings
                              if f.severity == "blocker")))


def _last_apply_that_wrote(folder: Path) -> dict:
    """The newest apply report that wrote values: the current one, else one a later run of 03 archived (after a
    pending reboot, 03 runs again with nothing left to write and only reboots)."""
    archived = sorted((folder / "history").glob("*/apply-report.json"), key=lambda path: path.parent.name,
                      reverse=True)
    for path in (folder / "apply-report.json", *archived):
        report = _read_json(path)
        if any(r.get("status") == "written" for r in report.get("results", [])):
            return report
    return {}


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


# --- 00: start here -------------------------------------------------------------------------------------------------
def show_flow(params: Parameters) -> None:
    """Which notebook answers which question, and where this run will write its evidence."""
    rows = [["01_cause.ipynb", "What AADSTS1002016 means here: OS cannot, or the app does not ask?", "cause.json"],
            ["02_os_check.ipynb", "Facts, OS-matrix row, verdict with findings and blockers",
             "facts.json, verdict.json"],
            ["03_registry_remediation.ipynb", "Plan, dry run or apply (cells tagged apply), read-back, reboot",
             "fix.reg, rollback.reg, apply-report.json, facts-after.json, verdict-after.json"],
            ["04_powershell_session_fix.ipynb", "Session fix vs registry fix; final verdict",
             "session-fix.json, outcome.json"]]
    where = params.evidence_dir or str(Path("evidence") / "<host>")
    target = params.target or f"(built-in simulated host {params.simulator_profile})"
    _emit(Card(f"<p>Target: <code>{html.escape(target)}</code>; evidence: <code>{html.escape(where)}</code></p>"
               + html_table(["Notebook", "Answers", "Evidence files"], rows),
               f"Target: {target}; evidence: {where}\n" + _text_table(rows)), params.simulated)


def field_check(params: Parameters, credential: Credential | None = None) -> None:
    """``tls-runbook check`` for this notebook's target: every operation a run uses, read-only, on one screen.

    Nothing is written, here or on the host; a built-in simulated host started for it is stopped afterwards."""
    with _step("field check", _START, params.simulated, total=1) as progress:
        target, node = _connect(params, credential)
        try:
            report = check_host(target, params.endpoints)
        finally:
            if node is not None:
                node.stop()
        progress.advance("checked")
    _emit(report, report.simulated)


def control_panel(params: Parameters) -> None:
    """The interactive front (host picker, credential prompt, buttons); headless runs get a note instead."""
    if not is_interactive():
        _emit(Card("<p>Interactive panel: open this notebook in JupyterLab to click through one host. Headless runs "
                   "use notebooks 01-04 with parameters instead.</p>",
                   "Interactive panel: only in JupyterLab; headless runs use notebooks 01-04 with parameters."))
        return
    from .widgets import RunbookPanel

    RunbookPanel(params).show()


# --- headless: one notebook through papermill (``tls-runbook notebook``) -------------------------------------------
START_TIMEOUT_S = 120  # a cold kernel on a busy jump host can take a while; a hung one must not block a run
CELL_TIMEOUT_S = 1800  # the longest cell waits for a reboot, within steps.reboot_and_wait's own limits
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024  # the runbook's notebooks are small; a huge one is a mistake or an attack


@dataclass(frozen=True)
class HeadlessRun:
    output: Path
    html: Path | None
    error_name: str | None = None  # the exception class of the failed cell, None when the notebook completed
    message: str | None = None


def notebook_source(name: str) -> Path:
    """NN (00-04), a notebook's stem, or a path: the runbook notebooks live in notebooks/ of the project."""
    candidate = Path(name)
    if candidate.suffix == ".ipynb":
        if not candidate.is_file():
            raise InputError(f"notebook {one_line(name, 80)!r} not found")
        return candidate
    stem = NOTEBOOKS.get(name, name)
    if stem not in NOTEBOOKS.values():
        raise InputError(f"notebook must be one of {', '.join(NOTEBOOKS)} (or a path to an .ipynb)")
    for folder in (Path.cwd() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"):
        if (folder / f"{stem}.ipynb").is_file():
            return folder / f"{stem}.ipynb"
    raise InputError("cannot find the runbook notebooks: run from the project folder or give a path to the .ipynb")


@contextlib.contextmanager
def _stderr_into(path: Path | None) -> Iterator[None]:
    """File descriptor 2 points at ``path`` meanwhile, so processes started meanwhile (kernels) write there."""
    if path is None:
        yield
        return
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except (OSError, RuntimeError):
        return False


def _check_notebook(source: Path) -> None:
    """A notebook file papermill can run: read and validated first, so a broken file is bad input, not a crash."""
    import nbformat

    try:
        raw = read_limited(source, MAX_NOTEBOOK_BYTES)
        nbformat.validate(nbformat.reads(raw.decode("utf-8"), as_version=4))
    except FileTooLarge as exc:
        raise InputError(f"notebook {source.name!r} is {exc}") from None
    except OSError as exc:
        raise InputError(f"notebook {source.name!r} cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - nbformat's readers and converters fail on malformed input in any way
        raise InputError(f"notebook {source.name!r} is not a valid notebook ({type(exc).__name__})") from None


def run_headless(source: Path, output: Path, values: dict, cell_timeout_s: int = CELL_TIMEOUT_S,
                 kernel_log: Path | None = None) -> HeadlessRun:
    """papermill with the parameters checked first and timeouts set; the executed notebook, failed or not, also
    becomes HTML next to it, because a partial notebook is evidence too. With ``kernel_log``, what the kernel
    process writes to stderr (its own warnings, a crash) goes to that file instead of this process's stderr."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .kernels import papermill_options
    from .notebook_html import write_html

    if output.suffix != ".ipynb":
        raise InputError("the output must be an .ipynb file")
    validate_parameters(**values)
    _check_notebook(source)
    if _same_file(source, output):
        raise InputError("-o names the notebook being run; write the executed copy somewhere else")
    output_file(output, "-o", create_folder=True)
    output_file(output.with_suffix(".html"), "-o (its HTML copy)")
    error_name = message = None
    try:
        with _stderr_into(kernel_log):
            papermill.execute_notebook(str(source), str(output), parameters=values, kernel_name="python3",
                                       progress_bar=False, start_timeout=START_TIMEOUT_S,
                                       execution_timeout=cell_timeout_s, **papermill_options())
    except PapermillExecutionError as exc:
        error_name, message = exc.ename, f"{source.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - kernel died or timed out; reported as a failed run, not a crash
        error_name, message = type(exc).__name__, f"{source.name} did not finish: {type(exc).__name__}: {exc}"
    return HeadlessRun(output, write_html(output), error_name, one_line(message) if message else None)


__all__ = ["Parameters", "validate_parameters", "parameters_from", "open_session", "Session", "parse_error_text",
           "ParsedError", "explain_error", "security_protocol_default", "probe_as_entra_would", "entra_request",
           "diagnose_cause",
           "inspect", "facts_table", "os_matrix", "assess_host", "show_plan", "apply_fix", "read_back",
           "reboot_if_needed", "verify_after", "session_fix_demo", "fresh_process_check", "final_verdict",
           "show_flow", "control_panel", "collect_results", "is_interactive", "Card", "EVIDENCE_FILES", "OUTCOMES",
           "NOTEBOOKS", "SEED_ERROR_TEXT", "SESSION_FIX_LINES", "run_headless", "notebook_source", "HeadlessRun"]
