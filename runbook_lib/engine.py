"""The decision engine: host facts + profile -> verdict. Pure: no I/O, no clock, no randomness.

The engine models what Windows does (``docs/tls-knowledge.md``): the SCHANNEL state of each protocol, the
protocols each client asks for, and what Entra's endpoint answers (it completes a TLS 1.0-1.3 handshake and then
refuses anything below TLS 1.2 or on 3DES with AADSTS1002016). Remediation is expressed as a desired end state per
profile, so applying a plan and assessing again yields no further change. ``docs/findings.md`` has a section for
every finding id emitted here (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import knowledge as k
from .acceptance import CERTIFICATE, UNREACHABLE, client_answer, entra_answer
from .facts import HostFacts
from .group_policy import DELETE, REFRESH_TEXT, UNCERTAIN, Claim, PolicyOwnership
from .registry import RegistryValue, is_policy_path
from .verdict import PROFILES, Change, Finding, Verdict

DEFAULT_PROFILE = "recommended"
TLS10, TLS11, TLS12, TLS13 = k.TLS_PROTOCOLS
_SP_PROTOCOLS = {k.SP_TLS: TLS10, k.SP_TLS11: TLS11, k.SP_TLS12: TLS12, k.SP_TLS13: TLS13}
_WINHTTP_PROTOCOLS = {k.WINHTTP_TLS10: TLS10, k.WINHTTP_TLS11: TLS11, k.WINHTTP_TLS12: TLS12,
                      k.WINHTTP_TLS13: TLS13}

# SCHANNEL protocol states ([S1], [S2]): usable by every caller / only by callers that ask for it explicitly /
# never / not implemented on this OS.
ON, OPT_IN, OFF, UNSUPPORTED = "on", "opt_in", "off", "unsupported"


@dataclass(frozen=True)
class Negotiation:
    """What a handshake with Entra's endpoint would give: the protocol, the kind of suite, and the answer."""

    protocol: str | None
    suite: str | None  # "modern", "3des" or "legacy"
    outcome: str  # "ok", "aadsts1002016" or "handshake_failure"

    def describe(self) -> str:
        if self.outcome == "handshake_failure":
            return "no common protocol or cipher suite: the TLS handshake fails"
        what = f"{self.protocol}" + (" with 3DES" if self.suite == "3des" else "")
        if self.outcome == "ok":
            return f"{what} is negotiated and Entra accepts it"
        return f"{what} is negotiated and Entra answers AADSTS1002016"


@dataclass(frozen=True)
class ClientPrediction:
    state: str  # fails, ok, absent, unknown
    security_protocol: int | None = None  # Windows PowerShell only
    negotiation: Negotiation | None = None


class HostModel:
    """Derived view of the facts: the OS row, .NET release, SCHANNEL states and cipher policy."""

    def __init__(self, facts: HostFacts):
        self.facts = facts
        self.policy = PolicyOwnership(facts)
        self.reg = self.policy.after_refresh(facts.registry)  # what the host keeps after the next GP refresh
        self.row = k.os_row(facts.os.version_tuple, facts.os.service_pack, facts.os.product_type)
        self.release = self.reg.dword(k.NDP_V4_FULL, "Release")
        self.has_wow64 = facts.os.architecture in ("x64", "arm64")
        self.suite_names = self.row.suite_names
        self.policy_entries = self._policy_entries()
        # What Schannel makes of the policy: base names of the entries this OS has ([X11]).
        self.policy_suites = None if self.policy_entries is None else tuple(
            suite for suite in map(self.suite_names.policy_suite, self.policy_entries) if suite)

    # --- OS capability -------------------------------------------------------------------------------------
    @property
    def tls12_possible(self) -> bool:
        if self.row.tls12 == "yes":
            return True
        return self.row.tls12 == "update" and self.facts.has_hotfix(self.row.required_update or "")

    def supports(self, protocol: str) -> bool:
        if protocol == TLS10:
            return True
        if protocol == TLS13:
            return self.row.tls13
        return self.tls12_possible

    def protocol_state(self, protocol: str, role: str = "Client") -> str:
        if not self.supports(protocol):
            return UNSUPPORTED
        key = k.schannel_key(protocol, role)
        if self.reg.dword(key, "Enabled") == 0:
            return OFF
        default_on = protocol in (TLS10, TLS13) or self.row.tls12_default_on
        disabled_by_default = self.reg.dword(key, "DisabledByDefault")
        if disabled_by_default is not None:
            return ON if disabled_by_default == 0 else OPT_IN
        return ON if default_on else OPT_IN

    # --- cipher policy ([X4]) -----------------------------------------------------------------------------
    def _policy_entries(self) -> tuple[str, ...] | None:
        value = self.reg.get(k.CIPHER_POLICY, "Functions")
        if value is None:
            return None
        if value.type in ("REG_SZ", "REG_EXPAND_SZ"):
            items = str(value.data).split(",")
        elif value.type == "REG_MULTI_SZ":
            items = list(value.data)  # type: ignore[arg-type]
        else:
            return None
        return tuple(item.strip().upper() for item in items if item.strip())

    def suite_for(self, protocol: str) -> str | None:
        suites = self.policy_suites
        if protocol == TLS13:
            return "modern" if suites is None or set(suites) & set(k.TLS13_SUITES) else None
        if protocol == TLS12:
            if suites is None or set(suites) & self.suite_names.entra_bases:
                return "modern"
            return "3des" if k.TRIPLE_DES_SUITE in suites else None
        if suites is None:
            return "legacy"
        legacy = [s for s in suites if k.suite_works_before_tls12(s)]
        if not legacy:
            return None
        return "3des" if legacy == [k.TRIPLE_DES_SUITE] else "legacy"

    # --- negotiation ---------------------------------------------------------------------------------------
    def negotiate(self, offer: frozenset[str] | None) -> Negotiation:
        """``offer`` None means "system default": only protocols on by default; else what the caller asks for."""
        usable = []
        for protocol in k.TLS_PROTOCOLS:
            state = self.protocol_state(protocol)
            if offer is None and state != ON or offer is not None and (protocol not in offer or
                                                                        state not in (ON, OPT_IN)):
                continue
            if protocol == TLS13 and self.suite_for(TLS13) is None:
                continue  # Schannel does not offer TLS 1.3 without a TLS 1.3 suite
            usable.append(protocol)
        if not usable:
            return Negotiation(None, None, "handshake_failure")
        protocol = usable[-1]
        suite = self.suite_for(protocol)
        if suite is None:
            return Negotiation(protocol, None, "handshake_failure")
        legacy = protocol in (TLS10, TLS11) or suite == "3des"
        return Negotiation(protocol, suite, "aadsts1002016" if legacy else "ok")

    # --- clients -------------------------------------------------------------------------------------------
    @property
    def dotnet4_usable(self) -> bool:
        return self.release is not None and self.release >= k.RELEASE_4_5

    def security_protocol(self, wow64: bool) -> int:
        """Default ServicePointManager.SecurityProtocol of a fresh Windows PowerShell (CLR 4) process ([N4]).

        powershell.exe behaves as an app targeting a pre-4.6 framework, so each switch is on only when its value
        is exactly DWORD 1, and SystemDefaultTlsVersions needs the 4.7+ runtime.
        """
        key = k.netfx_key(k.CLR4, wow64 and self.has_wow64)
        if self.reg.dword(key, "SystemDefaultTlsVersions") == 1 and (self.release or 0) >= k.RELEASE_4_7:
            return k.SP_SYSTEM_DEFAULT
        if self.reg.dword(key, "SchUseStrongCrypto") == 1 and self.dotnet4_usable:
            return k.SP_STRONG_DEFAULT
        return k.SP_LEGACY_DEFAULT

    def negotiate_security_protocol(self, value: int) -> Negotiation:
        if value == k.SP_SYSTEM_DEFAULT:
            return self.negotiate(None)
        return self.negotiate(frozenset(name for bit, name in _SP_PROTOCOLS.items() if value & bit))

    def windows_powershell(self, wow64: bool = False) -> ClientPrediction:
        major = self.facts.powershell.windows_powershell_major
        if major is None:
            return ClientPrediction("absent")
        if major < 3 or not self.dotnet4_usable:
            # CLR 2 (PowerShell 2.0) or .NET 4.0: no TLS 1.2 for the Entra modules whatever the registry says.
            return ClientPrediction("fails", k.SP_LEGACY_DEFAULT, self.negotiate_security_protocol(k.SP_LEGACY_DEFAULT))
        value = self.security_protocol(wow64)
        negotiation = self.negotiate_security_protocol(value)
        return ClientPrediction("ok" if negotiation.outcome == "ok" else "fails", value, negotiation)

    def pwsh(self) -> ClientPrediction:
        if not self.facts.powershell.pwsh:
            return ClientPrediction("absent")
        negotiation = self.negotiate(None)  # .NET (Core) leaves the choice to Schannel ([P4])
        return ClientPrediction("ok" if negotiation.outcome == "ok" else "fails", None, negotiation)

    def winhttp_mask(self, wow64: bool = False) -> int | None:
        return self.reg.dword(k.WINHTTP_WOW64 if wow64 else k.WINHTTP_NATIVE, "DefaultSecureProtocols")

    def winhttp_views_without_tls12(self) -> list[tuple[bool, int | None]]:
        """(wow64, value) of each registry view whose DefaultSecureProtocols leaves TLS 1.2 out, once WinHTTP
        honours the value; None is an absent value on an OS whose default lacks TLS 1.2 ([W1], [W2])."""
        default = self.row.winhttp_default_mask
        if default is None or (self.row.winhttp_update and not self.facts.has_hotfix(self.row.winhttp_update)):
            return []
        views = []
        for wow64 in (False, True) if self.has_wow64 else (False,):
            mask = self.winhttp_mask(wow64)
            if not (default if mask is None else mask) & k.WINHTTP_TLS12:
                views.append((wow64, mask))
        return views

    def winhttp(self, wow64: bool = False) -> ClientPrediction:
        """WinHTTP with the default protocol set, in the 64-bit (native) or the 32-bit (WOW64) view ([W1], [W2])."""
        if not self.tls12_possible:
            return ClientPrediction("fails", None, self.negotiate(None))
        if self.row.winhttp_default_mask is None:
            return ClientPrediction("unknown")  # 2008 SP2's WinHTTP update is unverified ([W8])
        if self.row.winhttp_update and not self.facts.has_hotfix(self.row.winhttp_update):
            mask = self.row.winhttp_default_mask  # without the update the value is ignored ([W2])
        else:
            mask = self.winhttp_mask(wow64 and self.has_wow64)
            if mask is None:
                mask = self.row.winhttp_default_mask | (k.WINHTTP_TLS13 if self.row.tls13 else 0)
        negotiation = self.negotiate(frozenset(name for bit, name in _WINHTTP_PROTOCOLS.items() if mask & bit))
        return ClientPrediction("ok" if negotiation.outcome == "ok" else "fails", None, negotiation)


# --- assessing ------------------------------------------------------------------------------------------------
class _Assessment:
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
        _refuse_weakening(change)
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
            what += f" but is delivered by Group Policy (now {_fmt(current)})"
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
    a = _Assessment(facts, profile)
    m = a.model
    _os_findings(a)
    _policy_findings(a)
    winps, pwsh, winhttp = m.windows_powershell(), m.pwsh(), m.winhttp()
    _schannel_findings(a)
    _dotnet_findings(a, winps)
    _cipher_findings(a)
    _client_findings(a, winps, pwsh, winhttp)
    if m.tls12_possible:
        (_plan_minimal if profile == "minimal" else _plan_recommended)(a, winps)
        _refuse_changes_that_break_a_working_client(a)
    _winhttp_findings(a)
    winps = _observed_findings(a, winps)

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


def _fmt(value: RegistryValue | None) -> str:
    if value is None:
        return "absent"
    return f"{value.type} {value.data!r}"


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


# --- findings ---------------------------------------------------------------------------------------------------
def _os_findings(a: _Assessment) -> None:
    m, os = a.model, a.facts.os
    label = f"{m.row.name} ({os.version}, SP{os.service_pack}, {os.architecture})"
    if m.row.tls12 == "no":
        a.add("os.no_tls12", "blocker", f"{label} cannot use TLS 1.2 at all: upgrade the OS", "S2")
        return
    if m.row.tls12 == "update" and not m.tls12_possible:
        a.add(f"update.{m.row.required_update}", "blocker",
              f"{label} needs {m.row.required_update} before TLS 1.2 exists in SCHANNEL", "S2")
        return
    default = "on by default" if m.row.tls12_default_on else "supported but off by default for clients and servers"
    a.add("os.tls12_support", "info", f"{label}: TLS 1.2 {default}"
          + ("; TLS 1.3 on by default" if m.row.tls13 else ""), "S2")
    if m.row.tls12 == "update":
        a.add("cipher.overlap_unverified", "warning",
              "Which suites Server 2008 SP2 offers after KB4019276 is not documented; verify with a probe", "S2")


def _policy_findings(a: _Assessment) -> None:
    """What Group Policy will undo, and which policy sources could not be read ("not available" is not "none")."""
    gp = a.facts.group_policy
    if gp is not None and not gp.rsop_available:
        a.add("gpo.rsop_unavailable", "warning",
              f"Administrative-template policy could not be read from RSoP ({gp.rsop_reason or 'no reason given'}): "
              "a value set through Registry.pol looks local here; confirm with gpresult /h before trusting a fix",
              "G1")
    if gp is not None and not gp.preferences_available:
        reason = gp.preferences_reason or "no reason given"
        a.add("gpo.preferences_unreadable", "warning",
              f"Group Policy Preferences registry items could not be read ({reason}): a value they set looks local "
              "here", "G3")
    for revert in a.model.policy.reverted(a.facts.registry):
        kept = f"puts back {_fmt(revert.kept)}" if revert.kept is not None else "deletes it again"
        a.add("gpo.local_change_reverted", "warning",
              f"{revert.path}\\{revert.name} is {_fmt(revert.live)} here, but {revert.claim.source} {kept} at the "
              "next refresh; this assessment uses the policy's value", "G2")


def _schannel_findings(a: _Assessment) -> None:
    m = a.model
    if not m.tls12_possible:
        return
    for path_protocol in k.TLS_PROTOCOLS + ("SSL 2.0", "SSL 3.0"):
        for role in ("Client", "Server"):
            for name in ("Enabled", "DisabledByDefault"):
                value = m.reg.get(k.schannel_key(path_protocol, role), name)
                if value is not None and value.type != "REG_DWORD":
                    a.add("schannel.value_not_dword", "warning",
                          f"{value.path}\\{name} is {value.type} {value.data!r}: Schannel reads DWORD values, so "
                          "the OS default applies", "S1")
    state = m.protocol_state(TLS12)
    if state == OFF:
        a.add("schannel.tls12_client_disabled", "error",
              "TLS 1.2 is disabled for clients (TLS 1.2\\Client Enabled=0): nothing on this host can use it, "
              "not even an explicit Tls12", "S1")
    elif state == OPT_IN:
        default = m.negotiate(None).protocol
        a.add("schannel.tls12_client_off_by_default", "warning",
              "TLS 1.2 is off by default for clients: only apps that ask for it explicitly use it; "
              "system-default callers (PowerShell 7, .NET with SystemDefaultTlsVersions) "
              + (f"stay on {default}" if default else "find no protocol at all"), "S1")


def _dotnet_findings(a: _Assessment, winps: ClientPrediction) -> None:
    m = a.model
    version = k.dotnet_version(m.release)
    if a.facts.powershell.windows_powershell is None:
        return
    if version:
        a.add("dotnet.release", "info", f".NET Framework {version} (Release {m.release})", "N2")
        if m.release < k.RELEASE_4_7 and m.row.dotnet_max_reads_system_default:
            a.add("dotnet.old_release", "warning",
                  f".NET Framework {version} ignores SystemDefaultTlsVersions (4.7+); Microsoft recommends "
                  f"4.7 or later (up to {m.row.dotnet_max} on this OS)", "N1")
        elif m.release < k.RELEASE_4_7:
            a.add("dotnet.old_release", "warning",
                  f".NET Framework {version} ignores SystemDefaultTlsVersions (4.7+), and {m.row.name} cannot run "
                  f"4.7 or later (its newest is {m.row.dotnet_max}): SchUseStrongCrypto=1 is what makes Windows "
                  "PowerShell ask for TLS 1.2 here", "N3")
    clr2 = (a.facts.powershell.windows_powershell_major or 0) < 3
    if clr2:
        wmf = "WMF 5.1" if m.row.wmf51 else "WMF 3.0 (the newest this OS can run)"
        a.add("powershell.v2", "blocker",
              f"Windows PowerShell {a.facts.powershell.windows_powershell} runs on CLR 2 and cannot run the "
              f"Entra modules over TLS 1.2: install .NET Framework 4.5 or later and {wmf}", "P7")
    if not m.dotnet4_usable:
        a.add("dotnet.missing", "blocker",
              "No .NET Framework 4.5 or later: Windows PowerShell cannot use TLS 1.2; install .NET Framework "
              f"{m.row.dotnet_max}", "N3")
    for clr in (k.CLR4, k.CLR2):
        for wow in (False, True) if m.has_wow64 else (False,):
            for name in k.DOTNET_VALUES:
                value = m.reg.get(k.netfx_key(clr, wow), name)
                if value is not None and value.type != "REG_DWORD":
                    a.add("dotnet.value_not_dword", "error",
                          f"{value.path}\\{name} is {value.type} {value.data!r}: .NET ignores values that are not "
                          "REG_DWORD", "N5")
    if winps.state == "absent" or not m.dotnet4_usable or clr2:
        return  # PowerShell 2.0 runs on CLR 2, which never reads the v4.0.30319 values: they explain nothing
    native = winps.security_protocol
    if native == k.SP_LEGACY_DEFAULT:
        a.add("dotnet.strong_crypto_off", "error",
              f"{k.netfx_key(k.CLR4, False)}\\SchUseStrongCrypto is not DWORD 1: Windows PowerShell requests "
              "Ssl3, Tls (240)", "N4")
    elif native == k.SP_SYSTEM_DEFAULT and m.protocol_state(TLS12) != ON:
        a.add("dotnet.system_default_os_off", "error",
              "SystemDefaultTlsVersions=1 hands the choice to the OS, whose defaults do not include TLS 1.2", "N1")
    if m.has_wow64:
        x86 = m.security_protocol(wow64=True)
        if x86 != native:
            only_wow = native == k.SP_LEGACY_DEFAULT
            a.add("dotnet.wow64_only" if only_wow else "dotnet.views_differ", "warning",
                  f"32-bit processes get {k.security_protocol_name(x86)} but 64-bit Windows PowerShell (the WinRM "
                  f"default) gets {k.security_protocol_name(native)}: "
                  + ("the values exist only under Wow6432Node" if only_wow else "the two registry views differ"),
                  "N5")


def _cipher_findings(a: _Assessment) -> None:
    m = a.model
    if m.policy_entries is None:
        return
    unknown = [entry for entry in m.policy_entries if m.suite_names.policy_suite(entry) is None]
    if unknown:
        a.add("cipher.names_unknown", "warning",
              f"The SSL Cipher Suite Order policy lists {', '.join(unknown)}, which {m.row.name} does not have, "
              "so Schannel skips them (before Windows 10 an ECDHE suite exists only with its curve suffix, such "
              "as ..._P256 or ..._P384)", m.suite_names.sources[0])
    if m.suite_for(TLS12) == "modern":
        return
    suites = set(m.policy_suites or ())
    only_3des = suites == {k.TRIPLE_DES_SUITE}
    what = "only 3DES" if only_3des else "no suite Entra accepts" + (
        " (the 3DES suite it lists is one Entra refuses)" if k.TRIPLE_DES_SUITE in suites else "")
    a.add("cipher.only_3des" if only_3des else "cipher.no_entra_suite", "error",
          f"The SSL Cipher Suite Order policy leaves {what} for TLS 1.2: a TLS 1.2 connection to Entra fails "
          "however the protocols are set", "X4")
    proposed = _proposed_cipher_order(m)
    where = (f"The cipher suite order is Group Policy ({k.CIPHER_POLICY}\\Functions): set the policy "
             "'SSL Cipher Suite Order'")
    if proposed is None:
        a.add("gpo.managed", "blocker",
              f"{where} so that it lists TLS 1.2 suites Entra accepts ({', '.join(k.ENTRA_TLS12_SUITES)}) as "
              f"{m.row.name} names them; Microsoft does not document which of them this OS has: check on the host",
              m.suite_names.sources[0])
        return
    order = ",".join(proposed)
    if len(order) > k.MAX_CIPHER_ORDER_CHARS:
        where += (f" (the policy takes at most {k.MAX_CIPHER_ORDER_CHARS} characters and this order has "
                  f"{len(order)}: leave out suites this host does not need)")
    a.add("gpo.managed", "blocker", f"{where} to {order}", m.suite_names.sources[0])


def _proposed_cipher_order(m: HostModel) -> list[str] | None:
    """The suites Entra accepts, spelled as this OS lists them (TLS 1.3 first where the OS has it), then the
    policy's own entries this OS has, in their order; never 3DES. None when the OS's names are not documented."""
    names = m.suite_names.entra_tls12
    if names is None:
        return None
    proposed = (list(k.TLS13_SUITES) if m.row.tls13 else []) + list(names)

    def same(entry: str) -> str:  # before Windows 10 each curve is its own entry; from 10 the suffix is ignored
        return entry.strip().upper() if m.suite_names.curve_suffixed else k.suite_base(entry)

    taken = {same(name) for name in proposed}
    for entry in m.policy_entries or ():
        suite = m.suite_names.policy_suite(entry)
        if suite is None or suite == k.TRIPLE_DES_SUITE or same(entry) in taken:
            continue
        if suite in k.TLS13_SUITES and not m.row.tls13:
            continue
        taken.add(same(entry))
        proposed.append(entry.strip().upper())
    return proposed


def _client_findings(a: _Assessment, winps: ClientPrediction, pwsh: ClientPrediction,
                     winhttp: ClientPrediction) -> None:
    if winps.state != "absent" and winps.negotiation:
        version = a.facts.powershell.windows_powershell
        bitness = "64-bit" if a.model.has_wow64 else "32-bit"
        runtime = (" runs on CLR 2 (.NET 2.0-3.5), which never reads the .NET 4 (v4.0.30319) values, and"
                   if (a.facts.powershell.windows_powershell_major or 0) < 3 else "")
        a.add("client.windows_powershell", "error" if winps.state == "fails" else "info",
              f"Windows PowerShell {version} ({bitness}){runtime} requests "
              f"{k.security_protocol_name(winps.security_protocol)} ({winps.security_protocol}): "
              f"{winps.negotiation.describe()}", "N4")
    if pwsh.negotiation:
        a.add("client.pwsh", "error" if pwsh.state == "fails" else "info",
              f"PowerShell {a.facts.powershell.pwsh} follows the Schannel defaults: {pwsh.negotiation.describe()}",
              "S2")
    if winhttp.negotiation:
        a.add("client.winhttp", "warning" if winhttp.state == "fails" else "info",
              f"WinHTTP clients (agents, WinRM client): {winhttp.negotiation.describe()}",
              "W2" if a.model.row.winhttp_update else "W1")


def _winhttp_findings(a: _Assessment) -> None:
    m = a.model
    update = m.row.winhttp_update
    if not m.tls12_possible:
        return
    if update and not a.facts.has_hotfix(update):
        severity = "blocker" if a.profile == "recommended" else "warning"
        a.add(f"update.{update}", severity,
              f"WinHTTP on this OS needs {update} before DefaultSecureProtocols can add TLS 1.2", "W2")
        return
    views = m.winhttp_views_without_tls12()
    if not views:
        return
    default = m.row.winhttp_default_mask or 0
    shown = "; ".join(f"{'Wow6432Node (32-bit)' if wow64 else 'native'} view " + (
        f"{mask:#x} ({_winhttp_names(mask)})" if mask is not None
        else f"absent, so the OS default {default:#x} ({_winhttp_names(default)})") for wow64, mask in views)
    fix = ("the plan adds TLS 1.2 (0x800) and keeps the TLS versions already allowed" if a.profile == "recommended"
           else "the recommended profile adds TLS 1.2 (0x800)")
    a.add("winhttp.tls12_missing", "warning",
          f"WinHTTP DefaultSecureProtocols leaves out TLS 1.2 ({shown}): WinHTTP clients (agents, the WinRM "
          f"client) cannot use it; {fix}", "W2" if update else "W1")


def _winhttp_names(mask: int) -> str:
    return ", ".join(name for bit, name in k.WINHTTP_BITS.items() if mask & bit) or "nothing"


# What the model cannot see, named in every disagreement between it and the host.
_UNSEEN_FAILING = ("a reboot pending since the Schannel values were written (they are read at boot), a setting the "
                   "runbook does not read (Group Policy not yet applied, an application's own .config), or a proxy "
                   "or TLS inspection in the path")
_UNSEEN_WORKING = ("a reboot since the registry was read, or a setting the runbook does not read (an application's "
                   "own .config, a cipher or protocol configured elsewhere)")


def _observed_findings(a: _Assessment, winps: ClientPrediction) -> ClientPrediction:
    """Compare what the host showed with the model; the Windows PowerShell client follows the observation.

    The probes ran in a fresh Windows PowerShell on the host (the inspect process, 64-bit where the OS is), so
    they measure the client the prediction is about: where they decide (an application-level answer, or a default
    handshake), the client's state is what they saw, and the prediction only explains it. Without a deciding
    probe, the SecurityProtocol observed in a fresh process replaces the predicted one.
    """
    observed = a.facts.observed
    if observed is None:
        return winps
    m = a.model
    disagreements, agreements = [], 0
    if winps.state not in ("absent",) and m.dotnet4_usable:
        predicted = {"x64": winps.security_protocol, "x86": m.security_protocol(wow64=True)}
        if not m.has_wow64:
            predicted["x86"] = winps.security_protocol
        for bitness, seen in observed.security_protocol.items():
            if seen == predicted[bitness]:
                agreements += 1
            else:
                disagreements.append(f"{bitness} SecurityProtocol is {k.security_protocol_name(seen)} ({seen}), "
                                     f"predicted {k.security_protocol_name(predicted[bitness])}")
    answers = [(p, entra_answer(p)) for p in observed.probes]
    for probe, answer in answers:
        if probe.mode == "tcp" and answer.outcome == UNREACHABLE:
            a.add("observed.unreachable", "warning",
                  f"TCP to {probe.endpoint} failed (firewall, proxy or DNS): its TLS probes say nothing about TLS",
                  "V1")
    certificate = next((answer for _, answer in answers if answer.outcome == CERTIFICATE), None)
    if certificate:
        a.add("observed.certificate", "error",
              f"Observed on the host: {certificate.reason}. This is a certificate problem, not a TLS version one: "
              "the host lacks the root Entra's certificate chains to (DigiCert Global Root G2), or a TLS-inspecting "
              "proxy answers instead of Entra; Windows PowerShell refuses the connection until the root is "
              "installed or the proxy's root is trusted. The TLS verdict rests on the settings read", "E1")
    clr2 = (a.facts.powershell.windows_powershell_major or 3) < 3
    tls12_expected = m.negotiate(frozenset({TLS12})).outcome == "ok"
    for probe, answer in answers:
        if probe.mode != "tls12" or not answer.decisive:
            continue
        if answer.accepted == tls12_expected:
            agreements += 1
        elif clr2 and not answer.accepted:
            a.add("observed.clr2_probe", "info",
                  f"The explicit TLS 1.2 probe ran in Windows PowerShell {a.facts.powershell.windows_powershell} "
                  f"(CLR 2) and failed ({probe.error or 'no error text'}): CLR 2 asks for TLS 1.2 only with the "
                  ".NET 3.5 TLS 1.2 update, so this probe tests the runtime, not the OS", "N1")
        else:
            disagreements.append(f"the explicit TLS 1.2 probe: {answer.reason}; predicted "
                                 f"{'success' if tls12_expected else 'failure'}")
    for text in disagreements:
        a.add("observed.disagrees", "warning",
              f"Observed on the host: {text} (a pending reboot, or a setting the runbook does not read)", "V1")
    client = _observed_client(a, winps, observed)
    if client is not None and client.state == winps.state:
        agreements += 1
    if agreements and not disagreements and (client is None or client.state == winps.state):
        a.add("observed.agrees", "info", f"What the host showed agrees with the prediction ({agreements} checks)",
              "V1")
    return client or winps


def _observed_client(a: _Assessment, winps: ClientPrediction, observed) -> ClientPrediction | None:
    """Windows PowerShell as observed (a deciding probe, else the observed SecurityProtocol through the model), with
    a finding when it contradicts the prediction; None when nothing observed decides it."""
    if winps.state == "absent":
        return None
    m = a.model
    seen_value = observed.security_protocol.get("x64" if m.has_wow64 else "x86")
    seen = client_answer(observed.probes)
    if seen is not None and seen.decisive:
        outcome = "ok" if seen.accepted else seen.outcome
        observed_client = ClientPrediction("ok" if seen.accepted else "fails",
                                           seen_value if seen_value is not None else winps.security_protocol,
                                           Negotiation(None, None, outcome))
        what = f"in a fresh Windows PowerShell on the host, {seen.reason}"
    elif seen_value is not None and m.dotnet4_usable and seen_value != winps.security_protocol \
            and (a.facts.powershell.windows_powershell_major or 0) >= 3:
        negotiation = m.negotiate_security_protocol(seen_value)
        observed_client = ClientPrediction("ok" if negotiation.outcome == "ok" else "fails", seen_value, negotiation)
        what = (f"that a fresh Windows PowerShell requests {k.security_protocol_name(seen_value)} ({seen_value}); "
                f"with it {negotiation.describe()}")
    else:
        return None
    if observed_client.state != winps.state:
        settings = (f"the settings read predict that Windows PowerShell {'fails' if winps.state == 'fails' else 'works'}"
                    + (f" ({winps.negotiation.describe()})" if winps.negotiation else ""))
        unseen = _UNSEEN_FAILING if observed_client.state == "fails" else _UNSEEN_WORKING
        a.add("observed.disagrees", "error" if observed_client.state == "fails" else "warning",
              f"Observed {what}. {settings[0].upper()}{settings[1:]}, so they do not explain it; the verdict "
              f"follows the observation. What the runbook cannot see: {unseen}", "V1")
    return observed_client


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


def _plan_minimal(a: _Assessment, winps: ClientPrediction) -> None:
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


def _plan_recommended(a: _Assessment, winps: ClientPrediction) -> None:
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


# --- never make a host worse ----------------------------------------------------------------------------------
def _client_predictions(model: HostModel) -> dict[str, ClientPrediction]:
    """Every client the engine models, in both registry views where the host has two."""
    views = ((False, "64-bit "), (True, "32-bit ")) if model.has_wow64 else ((False, ""),)
    clients = {f"{label}Windows PowerShell": model.windows_powershell(wow64) for wow64, label in views}
    clients["PowerShell 7"] = model.pwsh()
    clients.update({f"{label}WinHTTP": model.winhttp(wow64) for wow64, label in views})
    return clients


def _refuse_changes_that_break_a_working_client(a: _Assessment) -> None:
    """Re-assess the host as it will be once the plan is in effect (after the restart it needs) and drop every
    change under which a client that works now would fail: a fix must never make a host worse.

    The known case: Group Policy keeps TLS 1.2 off by default, so SystemDefaultTlsVersions=1 would hand the
    choice to an OS default without TLS 1.2 and take TLS 1.2 away from a Windows PowerShell that has it through
    SchUseStrongCrypto ([N1], [S1]).
    """
    now = _client_predictions(a.model)
    working = [name for name, prediction in now.items() if prediction.state == "ok"]
    if not a.changes or not working:
        return

    def broken(changes: list[Change]) -> dict[str, ClientPrediction]:
        registry = a.facts.registry
        for change in changes:
            registry = registry.set(change.path, change.name, change.type, change.data)
        after = _client_predictions(HostModel(a.facts.with_registry(registry)))
        return {name: after[name] for name in working if after[name].state != "ok"}

    kept = list(a.changes)
    while broken(kept):  # drop the change whose absence leaves the fewest clients broken; the later one on a tie
        _, _, index = min((len(broken(kept[:i] + kept[i + 1:])), -i, i) for i in range(len(kept)))
        del kept[index]
    restored = True
    while restored:  # put back every dropped change that does no harm next to what is kept
        restored = False
        for change in a.changes:
            if change not in kept and not broken(kept + [change]):
                kept.append(change)
                restored = True
    kept = [change for change in a.changes if change in kept]
    for change in a.changes:
        if change in kept:
            continue
        name, after = next(iter(broken(kept + [change]).items()))
        a.add("guard.change_dropped", "warning",
              f"Not writing {change.path}\\{change.name}={change.data}: once the plan is in effect it would make "
              f"{name} fail, which works now ({_client_story(now[name])}; with this change it "
              f"{_client_story(after)})", _source_of_change(change))
    a.changes[:] = kept


def _client_story(prediction: ClientPrediction) -> str:
    asks = (f"requests {k.security_protocol_name(prediction.security_protocol)} "
            f"({prediction.security_protocol}) and " if prediction.security_protocol is not None else "")
    return asks + (prediction.negotiation.describe() if prediction.negotiation else f"is {prediction.state}")


def _source_of_change(change: Change) -> str:
    path = change.path.casefold()
    if path.startswith(k.SCHANNEL_PROTOCOLS.casefold()):
        return "S1"
    if path in (k.WINHTTP_NATIVE.casefold(), k.WINHTTP_WOW64.casefold()):
        return "W1"
    return "N1"


class WeakeningRefused(AssertionError):
    """The engine produced a change that would weaken a host: a bug, never an operator error."""


def _refuse_weakening(change: Change) -> None:
    path = change.path.casefold()
    if path.startswith(k.SCHANNEL_PROTOCOLS.casefold()):
        protocol = change.path[len(k.SCHANNEL_PROTOCOLS) + 1:].split("\\")[0].upper()
        legacy = protocol in (p.upper() for p in k.LEGACY_PROTOCOLS)
        enabling = (change.name.casefold() == "enabled" and change.data != 0) or (
            change.name.casefold() == "disabledbydefault" and change.data == 0)
        if legacy and enabling or not legacy and not enabling:
            raise WeakeningRefused(f"refusing {change.path}\\{change.name}={change.data}")
    elif path.startswith(k.WINHTTP_NATIVE.casefold()) or path.startswith(k.WINHTTP_WOW64.casefold()):
        added = change.data & ~(change.current if isinstance(change.current, int) else 0)
        if added & (k.WINHTTP_SSL2 | k.WINHTTP_SSL3 | k.WINHTTP_TLS11) or not change.data & k.WINHTTP_TLS12:
            raise WeakeningRefused(f"refusing DefaultSecureProtocols={change.data:#x}")
    elif change.name in k.DOTNET_VALUES and change.data != 1:
        raise WeakeningRefused(f"refusing {change.name}={change.data}")
