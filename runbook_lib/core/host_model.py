"""What Windows makes of the facts: the OS row, the .NET release, the SCHANNEL state of each protocol, the cipher
policy as Schannel reads it, what each client asks for, and what a handshake with Entra's endpoint gives.

Pure: no I/O, no clock, no randomness. The engine (:mod:`.engine`) reads the model; it never reads facts directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import knowledge as k
from .facts import HostFacts
from .group_policy import PolicyOwnership


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
