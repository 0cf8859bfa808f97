"""Notebook 00 and every notebook's first cell: the parameters from the notebook's globals, and the map of the
notebooks.
"""

from __future__ import annotations

import html
from pathlib import Path

from ...remote.credentials import Credential
from ..check import check_host
from ..display import START, Card, emit, install_error_display, step, text_table
from ..operations import html_table
from ..parameters import Parameters, validate_parameters
from ..session import connect_target


_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_PARAMETER_TYPES = (str, bool, int, float, type(None), list, tuple, dict)


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
    emit(Card(f"<p>Target: <code>{html.escape(target)}</code>; evidence: <code>{html.escape(where)}</code></p>"
               + html_table(["Notebook", "Answers", "Evidence files"], rows),
               f"Target: {target}; evidence: {where}\n" + text_table(rows)), params.simulated)


def field_check(params: Parameters, credential: Credential | None = None) -> None:
    """``tls-runbook check`` for this notebook's target: every operation a run uses, read-only, on one screen.

    Nothing is written, here or on the host; a built-in simulated host started for it is stopped afterwards."""
    with step("field check", START, params.simulated, total=1) as progress:
        target, node = connect_target(params, credential)
        try:
            report = check_host(target, params.endpoints)
        finally:
            if node is not None:
                node.stop()
        progress.advance("checked")
    emit(report, report.simulated)


def parameters_from(namespace: dict) -> Parameters:
    """The validation cell: every parameter the notebook's globals hold, checked; typos become errors.

    papermill only warns about a parameter the notebook does not declare (``-p aply True`` would silently dry-run),
    so every plain value defined before this cell must be a known parameter. It also makes runbook errors show as
    one line plus a hint box instead of a traceback.
    """
    install_error_display()
    values = {name: value for name, value in namespace.items()
              if not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, _PARAMETER_TYPES)}
    params = validate_parameters(**values)
    target = params.target or f"(built-in simulated host: {params.simulator_profile})"
    text = (f"Parameters checked: target {target}, profile {params.profile}, apply {params.apply}, "
            f"reboot {params.reboot}, endpoints {', '.join(params.endpoints)}")
    emit(Card(f"<p>{html.escape(text)}</p>", text), params.simulated)
    return params
