"""A host's steps as the actions a person takes on it, in the order notebooks 02 and 03 run them cell by cell.

The steps themselves live in :mod:`.steps` (one module per notebook; each function is one cell). This is the one
place that strings them together: the control panel's buttons run these actions, and a notebook runs the same
functions one cell at a time, so a click and a papermill run cannot drift apart.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .session import Session
from .steps.cause import entra_request
from .steps.os_check import assess_host, inspect
from .steps.remediation import apply_fix, read_back, reboot_if_needed, show_plan, verify_after


def check(session: Session) -> None:
    """Notebook 02: read the host, then the verdict."""
    inspect(session)
    assess_host(session)


def plan(session: Session) -> None:
    show_plan(session)


def fix(session: Session) -> None:
    """Notebook 03 after a person confirmed the write: apply the plan, then read the host back."""
    apply_fix(session, confirmed=True)
    read_back(session)


def reboot_and_verify(session: Session) -> None:
    """Notebook 03's end: the restart the plan needs (the request to run it is the caller's), then the proof."""
    session.params = replace(session.params, reboot=True)
    reboot_if_needed(session)
    verify_after(session)
    entra_request(session, after=True)


ACTIONS: dict[str, Callable[[Session], None]] = {"inspect": check, "plan": plan, "apply": fix,
                                                 "reboot": reboot_and_verify}
