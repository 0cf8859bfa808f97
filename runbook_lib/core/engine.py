"""The decision engine: host facts + profile -> verdict. Pure: no I/O, no clock, no randomness.

The engine models what Windows does (``docs/tls-knowledge.md``): the SCHANNEL state of each protocol, the
protocols each client asks for, and what Entra's endpoint answers (it completes a TLS 1.0-1.3 handshake and then
refuses anything below TLS 1.2 or on 3DES with AADSTS1002016). Remediation is expressed as a desired end state per
profile, so applying a plan and assessing again yields no further change. ``docs/findings.md`` has a section for
every finding id emitted here (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Callable

from . import knowledge as k
from .facts import HostFacts
from .findings import (cipher_findings, client_findings, describe_value, dotnet_findings, observed_findings,
                       os_findings, policy_findings, schannel_findings, winhttp_findings)
from .group_policy import DELETE, REFRESH_TEXT, UNCERTAIN, Claim
from .guard import refuse_changes_that_break_a_working_client, refuse_weakening
from .host_model import TLS12, ClientPrediction, HostModel
from .registry import RegistryValue, is_policy_path
from .verdict import PROFILES, Change, Finding, Verdict


DEFAULT_PROFILE = "recommended"


class Assessment:
    def __init__(self, facts: HostFacts, profile: str):
        self.facts, self.profile = facts, profile
        self.model = HostModel(facts)
        self.findings: list[Finding] = []
        self.blockers: list[str] = []
        self.changes: list[Change] = []
        self.wanted: set[tuple[str, str]] = set()

    def add(self, finding_id: str, severity: str, message: str, source: str) -> None:
        self.findings.append(Finding(finding_id, severity, message, k.SOURCES[source]))
        if severity == "blocker" and finding_id not in self.blockers:
            self.blockers.append(finding_id)

    # -- want: the desired state of one value -----------------------------------------------------------------
    def want(self, path: str, name: str, data: int, reason: str, right: Callable[[RegistryValue | None], bool],
             reg_type: str = "REG_DWORD") -> None:
        current = self.model.reg.get(path, name)
        if right(current):
            return
        target = (path.casefold(), name.casefold())
        if target in self.wanted:
            return
        self.wanted.add(target)
        claim = self.model.policy.claim(path, name)
        if claim is not None or is_policy_path(path):
            self.policy_blocks(path, name, data, current, claim)
            return
        change = Change(path, name, reg_type, data, current.data if current else None, reason)
        refuse_weakening(change)
        self.changes.append(change)

    def policy_blocks(self, path: str, name: str, data: int, current: RegistryValue | None,
                      claim: Claim | None) -> None:
        """A value the plan needs is Group Policy's: nothing is written, and the GPO is named."""
        what = f"{path}\\{name} must become {data}"
        if claim is not None and claim.effect == UNCERTAIN:
            self.add("gpo.targeting_uncertain", "blocker",
                     f"{what}, and {claim.describe_effect()}: whether it applies to this host is not known, so a "
                     "local write may be reverted; check with gpresult /h, then change the GPO or its targeting",
                     "G3")
            return
        if claim is None:
            what += f" but is delivered by Group Policy (now {describe_value(current)})"
        elif claim.effect == DELETE:
            what += f" but {claim.describe_effect()}: it is absent and cannot be written locally either"
        else:
            what += f" but {claim.describe_effect()}"
        self.add("gpo.managed", "blocker", f"{what}; a local write would not last: {REFRESH_TEXT}; change the GPO",
                 claim.cites if claim is not None else "S1")


def assess(facts: HostFacts, profile: str = DEFAULT_PROFILE) -> Verdict:
    """Predict whether each client on the host signs in to Entra, explain why, and plan the profile's fix."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}")
    a = Assessment(facts, profile)
    m = a.model
    os_findings(a)
    policy_findings(a)
    winps, pwsh, winhttp = m.windows_powershell(), m.pwsh(), m.winhttp()
    schannel_findings(a)
    dotnet_findings(a, winps)
    cipher_findings(a)
    client_findings(a, winps, pwsh, winhttp)
    if m.tls12_possible:
        (_plan_minimal if profile == "minimal" else _plan_recommended)(a, winps)
        refuse_changes_that_break_a_working_client(a)
    winhttp_findings(a)
    winps = observed_findings(a, winps)

    failing = [c for c in (winps, pwsh) if c.state == "fails"]
    affected = bool(failing)
    symptom = failing[0].negotiation.outcome if failing and failing[0].negotiation else None
    if symptom == "ok":
        symptom = None
    return Verdict(
        host=facts.host, profile=profile, affected=affected, symptom=symptom,
        clients={"windows_powershell": winps.state, "pwsh": pwsh.state, "winhttp": winhttp.state},
        findings=tuple(a.findings), blockers=tuple(a.blockers), changes=tuple(a.changes),
        restart=_restart(a.changes), simulated=facts.simulated,
    )

def _restart(changes: list[Change]) -> str:
    return restart_for_paths(c.path for c in changes)


def restart_for_paths(paths) -> str:
    """What a write to these keys needs before it takes effect."""
    paths = [p.casefold() for p in paths]
    if not paths:
        return "none"
    reboot_roots = (k.SCHANNEL_PROTOCOLS, k.WINHTTP_NATIVE, k.WINHTTP_WOW64, k.CIPHER_POLICY)
    if any(path.startswith(root.casefold()) for path in paths for root in reboot_roots):
        return "reboot"  # SCHANNEL, WinHTTP and cipher order are read at boot ([S1], [W1], [X4])
    return "new_process"  # .NET reads its values once per process ([N4])


# --- remediation ----------------------------------------------------------------------------------------------
def _enabled_right(explicit: bool) -> Callable[[RegistryValue | None], bool]:
    def right(value: RegistryValue | None) -> bool:
        if value is None:
            return not explicit
        return value.dword is not None and value.dword != 0  # 0xFFFFFFFF is enabled too ([S1-2019])
    return right


def _not_disabled(value: RegistryValue | None) -> bool:
    return value is None or value.dword != 0


def _default_on_right(model: HostModel, explicit: bool) -> Callable[[RegistryValue | None], bool]:
    def right(value: RegistryValue | None) -> bool:
        if value is None:
            return model.row.tls12_default_on and not explicit
        if value.dword is None:
            return model.row.tls12_default_on and not explicit  # ignored by Schannel: the OS default applies
        return value.dword == 0
    return right


def _is_dword_one(value: RegistryValue | None) -> bool:
    return value is not None and value.dword == 1


def _plan_minimal(a: Assessment, winps: ClientPrediction) -> None:
    """The smallest set that makes the PowerShell clients work, preferring .NET values (no reboot)."""
    m = a.model
    client = k.schannel_key(TLS12, "Client")
    need_default_on = m.facts.powershell.pwsh is not None
    if winps.state != "absent" and m.dotnet4_usable and (a.facts.powershell.windows_powershell_major or 0) >= 3:
        if winps.security_protocol == k.SP_SYSTEM_DEFAULT:
            need_default_on = True
        else:
            a.want(k.netfx_key(k.CLR4, False), "SchUseStrongCrypto", 1, "dotnet.strong_crypto_off", _is_dword_one)
            a.want(client, "Enabled", 1, "schannel.tls12_client_disabled", _not_disabled)
    if need_default_on:
        a.want(client, "Enabled", 1, "schannel.tls12_client_disabled", _not_disabled)
        a.want(client, "DisabledByDefault", 0, "schannel.tls12_client_off_by_default",
               _default_on_right(m, explicit=False))


def _plan_recommended(a: Assessment, winps: ClientPrediction) -> None:
    """Microsoft's documented set for Entra ([E1], [R1], [C1]) minus what is already right."""
    m = a.model
    explicit = m.row.explicit_schannel_values
    for role in ("Client", "Server"):
        key = k.schannel_key(TLS12, role)
        a.want(key, "Enabled", 1, f"schannel.tls12_{role.lower()}", _enabled_right(explicit))
        a.want(key, "DisabledByDefault", 0, f"schannel.tls12_{role.lower()}", _default_on_right(m, explicit))
    for clr in (k.CLR4, k.CLR2):
        for wow in (False, True) if m.has_wow64 else (False,):
            for name in k.DOTNET_VALUES:
                reason = "dotnet.strong_crypto_off" if name == "SchUseStrongCrypto" else "dotnet.system_default"
                a.want(k.netfx_key(clr, wow), name, 1, reason, _is_dword_one)
    for wow, current in m.winhttp_views_without_tls12():
        base = m.row.winhttp_default_mask if current is None else current
        # Keep the TLS versions already in use, drop SSL, add TLS 1.2: never enables anything legacy.
        new = (base & (k.WINHTTP_TLS10 | k.WINHTTP_TLS11 | k.WINHTTP_TLS13)) | k.WINHTTP_TLS12
        a.want(k.WINHTTP_WOW64 if wow else k.WINHTTP_NATIVE, "DefaultSecureProtocols", new,
               "winhttp.tls12_missing",
               lambda v: v is not None and v.dword is not None and bool(v.dword & k.WINHTTP_TLS12))
