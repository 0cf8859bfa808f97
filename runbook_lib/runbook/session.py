"""One host for one notebook: connect (or start the built-in simulated host in this kernel), read it once, and
keep its evidence folder.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.facts import HostFacts
from ..core.files import private_folder
from ..core.plan import RemediationPlan
from ..core.verdict import Verdict
from .display import START, Card, emit, step
from .operations import ApplyReport, inspect_host
from .parameters import Parameters
from ..remote.credentials import Credential
from ..remote.scrub import write_scrubbed
from ..remote.target import Target, connect


SIMULATOR_USER = "runbook-notebook"


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
    reboot_scheduled: bool = False  # scheduled and not waited for here: whoever runs the notebook waits (fleet runs)
    outcome: dict | None = field(default=None, repr=False)
    facts_unused: bool = field(default=False, repr=False)  # read at connect time and not shown yet

    @property
    def host(self) -> str:
        return self.target.name

    @property
    def simulated(self) -> bool:
        return self.node is not None or self.target.simulated

    def show(self, obj: Any) -> None:
        emit(obj, self.simulated)

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
        return session_card(self).html

    def render_text(self) -> str:
        return session_card(self).text


def open_session(params: Parameters, credential: Credential | None = None) -> Session:
    """Connect to the target, or start the built-in simulated host inside this kernel, and read the host once.

    Reading it here makes a wrong address or credential fail in the connect cell, and tells whether the host is
    simulated before the first output about it is shown. The simulated host gets a fresh random password that
    exists only in this process's memory (the Credential object goes straight to ``connect``), and stops when the
    kernel exits.
    """
    with step("connect", START, params.simulated, total=1) as progress:
        target, node = connect_target(params, credential)
        evidence = Path(params.evidence_dir).expanduser() if params.evidence_dir else \
            Path.cwd() / "evidence" / target.name
        private_folder(evidence)
        session = Session(params, target, evidence.resolve(), node)
        session.facts = inspect_host(target, params.endpoints)
        session.facts_unused = True
        progress.advance("host read")
    session.show(session_card(session))
    return session


def connect_target(params: Parameters, credential: Credential | None) -> tuple[Target, Any]:
    """The target, and the simulated node when the built-in host was started for it (None for a real target)."""
    if params.simulated:
        from ..simulator.fleet import start_node
        from ..simulator.profile import builtin_profile

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
        from ..remote.recording import record

        note = f"SIMULATED host: tls-runbook simulator profile {params.simulator_profile}" if node else None
        record(target.transport, Path(params.record).expanduser(), note)
    return target, node


def _stop_at_exit(node: Any) -> None:
    """At interpreter exit the simulator's NTLM scratch folder may already be gone; the listener still stops."""
    with contextlib.suppress(OSError):
        node.stop()


def session_card(session: Session) -> Card:
    where = "built-in simulated host " + session.params.simulator_profile if session.node is not None \
        else session.target.endpoint
    text = f"Host {session.host} ({where}); evidence folder {session.evidence}"
    return Card(f"<p>Host <b>{html.escape(session.host)}</b> ({html.escape(where)}); evidence folder "
                f"<code>{html.escape(str(session.evidence))}</code></p>", text)
