"""How results show: a Card is static HTML plus text (an executed notebook exported to HTML is complete
evidence); progress while a step runs; and, when a step fails, a hint box naming the notebook to open next.
Nothing here touches a host.
"""

from __future__ import annotations

import contextlib
import html
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

from ..core.errors import (AuthenticationFailed, CertificateInvalid, CredentialError, EncryptionRequired,
                           HostUnreachable, InputError, QuotaExceeded, RebootFailed, RemoteScriptFailed, RunbookError,
                           TimedOut, TlsVersionMismatch, one_line)
from ..core.verdict import SIMULATED_BANNER_HTML
from .operations import SIMULATED_TEXT


_RESULTS: list[dict] | None = None  # set while a widget collects results instead of displaying them


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


def emit(obj: Any, simulated: bool = False) -> None:
    bundle = _bundle(obj, simulated)
    if _RESULTS is not None:
        _RESULTS.append(bundle)
        return
    if _kernel() is None:
        print(bundle["text/plain"], flush=True)
        return
    from IPython.display import display

    display(bundle, raw=True)


def collecting() -> bool:
    """True while a widget gathers results (there is no cell to display into)."""
    return _RESULTS is not None


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


def text_table(rows: list[list[Any]]) -> str:
    return "\n".join("  " + "  ".join(str(cell) for cell in row) for row in rows)


START = "00_start_here.ipynb"
# (error class, advice, notebook to open next; None: the failed step's own suggestion); the first match wins, so a
# subclass comes before its base.
_HINTS: tuple[tuple[type[BaseException], str, str | None], ...] = (
    (CredentialError, "The credential reference could not be resolved. Set TLS_RUNBOOK_USER and "
                      "TLS_RUNBOOK_PASSWORD in the environment that starts Jupyter, or fix the inventory's "
                      "credential entry.", START),
    (InputError, "A parameter or input file is wrong. Fix it in the parameters cell; 00_start_here.ipynb lists "
                 "every parameter.", START),
    (AuthenticationFailed, "The host refused the credentials or the authentication method. Check the account "
                           "(an administrator on the host) and the inventory's auth.", START),
    (EncryptionRequired, "The host refuses unencrypted WinRM: use auth ntlm or kerberos, or an https:// target. "
                         "Do not set AllowUnencrypted on the host.", START),
    (CertificateInvalid, "The HTTPS listener's certificate did not validate: give the inventory a ca_trust_path.",
     START),
    (QuotaExceeded, "The host's WinRM shells for this account stayed in use (MaxShellsPerUser, 5 on WinRM 2.0). "
                    "Nothing ran: close other sessions of the account or wait for idle ones to time out, then run "
                    "this notebook again.", None),
    (TlsVersionMismatch, "The host's HTTPS listener offers only TLS 1.0/1.1. Use its http:// endpoint (5985, NTLM "
                         "with message encryption) until the fix and its reboot are in.", START),
    (RebootFailed, "The restart did not happen as asked (see the message). Nothing else was changed; restart the "
                   "host, then run this notebook again to verify.", None),
    (HostUnreachable, "The host did not answer over WinRM (DNS, firewall, listener down). Nothing ran on it: "
                      "check Test-WSMan from a jump host, then run this notebook again.", START),
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
def step(title: str, next_notebook: str, simulated: bool = False, total: int = 0) -> Iterator["Progress"]:
    progress = Progress(title, total)
    try:
        yield progress
    except BaseException as exc:
        progress.finish(failed=True)
        if not isinstance(exc, KeyboardInterrupt):
            emit(_hint_for(exc, title, next_notebook), simulated)
        raise
    progress.finish()


def install_error_display() -> None:
    """A RunbookError's text is already one line for an operator; a Python traceback under it only hides it."""
    kernel = _kernel()
    if kernel is None:
        return

    def show(shell, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)  # a custom handler must publish the error output itself
        return stb

    kernel.shell.set_custom_exc((RunbookError,), show)


class Progress:
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
