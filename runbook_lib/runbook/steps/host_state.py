"""What several steps need to know about the host: its facts, read once per session; what a fresh Windows
PowerShell gets from Entra; whether only a reboot is missing; an earlier step's evidence file."""

from __future__ import annotations

import json
from pathlib import Path

from ...core.acceptance import EntraAnswer, client_answer
from ...core.facts import HostFacts
from ...core.verdict import Verdict
from ..display import step
from ..operations import inspect_host
from ..session import Session


def read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def reboot_pending(host_facts: HostFacts, verdict: Verdict) -> bool:
    """The registry is already right but Entra still refuses a fresh process: Schannel has not loaded the values."""
    return not verdict.changes and not verdict.blockers and fresh_client_refused(host_facts)


def facts_for(session: Session, refresh: bool = False) -> HostFacts:
    """Facts for 01 and 04, which read the host without replacing 02's facts.json (the state before a fix)."""
    if session.facts is None or refresh:
        session.facts = read_host(session, save_as=None)
    session.facts_unused = False
    return session.facts


def fresh_client_answer(host_facts: HostFacts) -> EntraAnswer | None:
    """What a fresh Windows PowerShell on the host gets from Entra (runbook_lib.core.acceptance decides)."""
    return client_answer(host_facts.observed.probes if host_facts.observed else ())


def fresh_client_refused(host_facts: HostFacts) -> bool:
    answer = fresh_client_answer(host_facts)
    return answer is not None and answer.decisive and not answer.accepted


def read_host(session: Session, save_as: str | None) -> HostFacts:
    with step(f"inspect {session.host}", "02_os_check.ipynb", session.simulated, total=1) as progress:
        host_facts = inspect_host(session.target, session.params.endpoints)
        progress.advance("facts collected")
    if save_as:
        session.write(save_as, host_facts.dumps())
    return host_facts
