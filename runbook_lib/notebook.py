"""What the notebook cells import: every code cell in ``notebooks/`` is one call into this module.

This is the public face of the runbook layer (:mod:`runbook_lib.runbook`); the functions live there, one module
per notebook under :mod:`runbook_lib.runbook.steps`, and the control panel's buttons run the same ones through
:mod:`runbook_lib.runbook.flow`.

Notebooks stay thin so that a papermill run, nbval, a widget button and a click in JupyterLab all do exactly the
same thing, and so the logic is tested here rather than in cells. Results render as static HTML (plus plain text),
never as widget state, so an executed notebook exported to HTML is complete evidence.

Parameters (the same names in every notebook; ``error_text`` only in 01, ``session_fix_mode`` only in 04):
``target`` (empty: a built-in simulated host), ``inventory``, ``profile``, ``apply``, ``reboot``, ``endpoints``
(comma-separated ``host:port``), ``evidence_dir`` (empty: ``evidence/<host>`` under the kernel's working folder),
``simulator_profile``, ``record`` (a folder: every WinRM exchange is recorded there, see
:mod:`runbook_lib.remote.recording`). There is never a credential parameter: papermill copies parameters into the notebook.

Evidence files, fixed names in the evidence folder, read by the fleet runner (:mod:`runbook_lib.fleet.runner`):

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
``reboot.json`` (03 with ``reboot=True`` and ``wait_for_reboot=False``; completed by the fleet runner)
    ``{"state": "scheduled" | "restarted" | "failed", "host", "simulated", "last_boot_before", "scheduled_at",
    "delay_s"}``, plus ``"last_boot_after", "back_after_s", "unreachable_after_s"`` once the host reports a new
    boot time, or ``"error"`` when it did not restart.
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
"error", ...}`` as ``runbook_lib/core/schemas/probe-record.schema.json`` defines it; ``ok`` means the handshake
completed, and whether Entra accepts it is read from :mod:`runbook_lib.core.acceptance` only.
"""

from __future__ import annotations

from .runbook.display import Card, collect_results, is_interactive
from .runbook.parameters import PARAMETER_NAMES, Parameters, validate_parameters
from .runbook.session import Session, open_session
from .runbook.steps.cause import (SEED_ERROR_TEXT, diagnose_cause, entra_request, explain_error, parse_error_text,
                                  probe_as_entra_would, security_protocol_default)
from .runbook.steps.os_check import assess_host, inspect, os_matrix
from .runbook.steps.remediation import apply_fix, read_back, reboot_if_needed, show_plan, verify_after
from .runbook.steps.session_fix import SESSION_FIX_LINES, final_verdict, fresh_process_check, session_fix_demo
from .runbook.steps.start import field_check, parameters_from, show_flow
from .runbook.widgets import control_panel

__all__ = ["PARAMETER_NAMES", "SEED_ERROR_TEXT", "SESSION_FIX_LINES", "Card", "Parameters", "Session", "apply_fix",
           "assess_host", "collect_results", "control_panel", "diagnose_cause", "entra_request", "explain_error",
           "field_check", "final_verdict", "fresh_process_check", "inspect", "is_interactive", "open_session", "os_matrix",
           "parameters_from", "parse_error_text", "probe_as_entra_would", "read_back", "reboot_if_needed",
           "security_protocol_default", "session_fix_demo", "show_flow", "show_plan", "validate_parameters",
           "verify_after"]
