"""The interactive front for JupyterLab: pick a host, give a password, click inspect / plan / apply / reboot.

Widgets only choose *what* to run: every button runs one of :mod:`.flow`'s actions, the same step functions a
notebook's cells call, so a click and a papermill run cannot drift apart. Results are not kept in an ``Output`` widget (that lives
only in widget state, which exported HTML and many viewers drop); they are written into a plain display below the
panel and updated by display id, so the saved notebook holds them as static HTML.

The password widget's value is turned into a ``Credential`` on first use and then cleared, so neither the widget
state saved with the notebook nor its outputs hold it.
"""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as w
from IPython.display import display

from ..core.errors import InputError, one_line
from ..remote.credentials import Credential
from .display import Card, collect_results, emit, is_interactive
from .flow import ACTIONS
from .parameters import Parameters, validate_parameters
from .session import Session, open_session


class RunbookPanel:
    """One host at a time; choosing another host closes the previous session."""

    def __init__(self, params: Parameters):
        self.params = params
        self.session: Session | None = None
        self.results: list[dict] = []
        options = [(f"built-in simulated host ({params.simulator_profile})", "")]
        if params.inventory:
            from ..remote.inventory import load_inventory

            options += [(entry.name, entry.name) for entry in load_inventory(params.inventory).hosts]
        if params.target and params.target not in [value for _, value in options]:
            options.append((params.target, params.target))
        self.host = w.Dropdown(options=options, value=params.target, description="Host")
        self.host.add_class("tls-runbook-host-picker")
        self.user = w.Text(description="User", placeholder="DOMAIN\\admin (empty: the host's reference)")
        self.password = w.Password(description="Password", placeholder="kept in memory, cleared after use")
        self.buttons = {name: w.Button(description=name.capitalize(), button_style=style) for name, style in
                        (("inspect", ""), ("plan", ""), ("apply", "warning"), ("reboot", "warning"))}
        self.confirm = w.Button(description="Confirm: write to host", button_style="danger")
        self.cancel = w.Button(description="Cancel")
        self.confirm_row = w.HBox([w.Label("Write the plan? rollback.reg is saved first."), self.confirm,
                                   self.cancel], layout=w.Layout(display="none"))
        self.status = w.Label("")
        self.buttons["inspect"].on_click(lambda _: self._run("inspect", ACTIONS["inspect"]))
        self.buttons["plan"].on_click(lambda _: self._run("plan", ACTIONS["plan"]))
        self.buttons["apply"].on_click(lambda _: self._ask_to_apply())
        self.buttons["reboot"].on_click(lambda _: self._run("reboot", ACTIONS["reboot"]))
        self.confirm.on_click(lambda _: self._run("apply", self._apply))
        self.cancel.on_click(lambda _: self._hide_confirmation())
        self.host.observe(lambda _: self._close_session(), names="value")
        self.handle = None

    def show(self) -> None:
        display(w.VBox([self.host, w.HBox([self.user, self.password]), w.HBox(list(self.buttons.values())),
                        self.confirm_row, self.status]))
        self.handle = display({"text/plain": "Results appear here.",
                               "text/html": "<p><i>Results appear here.</i></p>"}, raw=True, display_id=True)

    # --- actions: each one is flow's, the notebooks' own functions ---------------------------------------------
    def _apply(self, session: Session) -> None:
        self._hide_confirmation()
        ACTIONS["apply"](session)

    def _ask_to_apply(self) -> None:
        if self.session is None or self.session.plan is None:
            self.status.value = "Make a plan first (Plan button)."
            return
        self.confirm_row.layout.display = "flex"

    def _hide_confirmation(self) -> None:
        self.confirm_row.layout.display = "none"

    # --- plumbing ---------------------------------------------------------------------------------------------------
    def _open(self) -> Session:
        if self.session is None:
            params = validate_parameters(**{**vars(self.params), "target": self.host.value,
                                            "endpoints": ",".join(self.params.endpoints)})
            credential = None
            if self.password.value:
                if not self.user.value.strip():
                    raise InputError("enter the user name that goes with the password")
                credential = Credential(self.user.value.strip(), self.password.value)
            self.password.value = ""
            self.session = open_session(params, credential=credential)
        return self.session

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None

    def _run(self, label: str, action: Callable[[Session], None]) -> None:
        for button in self.buttons.values():
            button.disabled = True
        self.status.value = f"{label}: running"
        with collect_results() as bundles:
            try:
                action(self._open())
                self.status.value = f"{label}: done"
            except Exception as exc:  # noqa: BLE001 - shown to the operator; the hint box is already in bundles
                self.status.value = f"{label} failed: {one_line(str(exc), 200)}"
            finally:
                for button in self.buttons.values():
                    button.disabled = False
        self._publish(bundles)

    def _publish(self, bundles: list[dict]) -> None:
        self.results += bundles
        if self.handle is not None:
            self.handle.update({"text/html": "<hr>".join(b["text/html"] for b in self.results),
                                "text/plain": "\n\n".join(b["text/plain"] for b in self.results)}, raw=True)

    def __repr__(self) -> str:
        return f"RunbookPanel(host={html.escape(str(self.host.value))!r})"


def control_panel(params: Parameters) -> None:
    """The interactive front (host picker, credential prompt, buttons); headless runs get a note instead."""
    if not is_interactive():
        emit(Card("<p>Interactive panel: open this notebook in JupyterLab to click through one host. Headless runs "
                  "use notebooks 01-04 with parameters instead.</p>",
                  "Interactive panel: only in JupyterLab; headless runs use notebooks 01-04 with parameters."))
        return
    RunbookPanel(params).show()
