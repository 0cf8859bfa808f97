"""How a simulated Windows host behaves for TLS: Schannel, .NET defaults, and an endpoint that acts like Entra.

This is the simulator's own model of Windows, written from the knowledge base independently of the decision
engine, so that "apply the engine's plan, reboot, probe" is a real check of the engine rather than the engine
agreeing with itself. It differs from the engine in one way that matters to operators: Schannel, WinHTTP and
the cipher order are read at boot, .NET values when a process starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import knowledge as k
from ..registry import Registry

# SslProtocols enum names as SslStream.SslProtocol prints them.
_SSL_NAMES = {"TLS 1.0": "Tls", "TLS 1.1": "Tls11", "TLS 1.2": "Tls12", "TLS 1.3": "Tls13"}
_SECURITY_PROTOCOL_BITS = {"TLS 1.0": k.SP_TLS, "TLS 1.1": k.SP_TLS11, "TLS 1.2": k.SP_TLS12,
                           "TLS 1.3": k.SP_TLS13}
ENTRA_ENDPOINTS = ("login.microsoftonline.com", "login.windows.net", "graph.microsoft.com",
                   "login.microsoft.com", "device.login.microsoftonline.com")

# The 2016 "TLS System Default Versions" hotfix that lets .NET 3.5 (CLR 2) ask for TLS 1.2, per Windows version;
# Windows 10 / Server 2016 and later have it in their cumulative updates (windows-tls.md, section 3b).
CLR2_TLS12_HOTFIX = {(6, 0): "KB3154517", (6, 1): "KB3154518", (6, 2): "KB3154519", (6, 3): "KB3154520"}
# What the SecurityProtocol setter throws without it (NotSupportedException), as Get-TrErrorText reports it.
CLR2_NO_TLS12 = "The requested security protocol is not supported."

HANDSHAKE_FAILED = ("A call to SSPI failed, see inner exception. The client and server cannot communicate, "
                    "because they do not possess a common algorithm")
UNKNOWN_HOST = "No such host is known"


@dataclass(frozen=True)
class Handshake:
    ok: bool  # the endpoint accepted the session (TLS 1.2+, no 3DES)
    protocol: str | None
    cipher: str | None
    error: str | None

    def to_probe(self, endpoint: str, mode: str) -> dict:
        return {"endpoint": endpoint, "mode": mode, "ok": self.ok, "protocol": self.protocol,
                "cipher": self.cipher, "error": self.error}


class WindowsTls:
    """TLS behaviour of one host given its OS, the registry read at boot and the live registry."""

    def __init__(self, version: tuple[int, int, int], service_pack: int, product_type: str, architecture: str,
                 hotfixes: tuple[str, ...], windows_powershell: str | None):
        self.row = k.os_row(version, service_pack, product_type)
        self.hotfixes = {h.upper() for h in hotfixes}
        self.wow64 = architecture in ("x64", "arm64")
        self.clr2 = windows_powershell is not None and windows_powershell.startswith("2.")
        hotfix = CLR2_TLS12_HOTFIX.get(version[:2])
        self.clr2_knows_tls12 = version[0] >= 10 or (hotfix is not None and hotfix in self.hotfixes)

    # --- Schannel, as loaded at boot -------------------------------------------------------------------------
    def _implemented(self, protocol: str) -> bool:
        if protocol == "TLS 1.0":
            return True
        if protocol == "TLS 1.3":
            return self.row.tls13
        if self.row.tls12 == "update":
            return (self.row.required_update or "") in self.hotfixes
        return self.row.tls12 == "yes"

    def schannel_client(self, boot: Registry, role: str = "Client") -> dict[str, tuple[bool, bool]]:
        """protocol -> (usable when asked for explicitly, used when the caller leaves it to the system)."""
        result = {}
        for protocol in k.TLS_PROTOCOLS:
            if not self._implemented(protocol):
                continue
            key = k.schannel_key(protocol, role)
            enabled, disabled_by_default = boot.dword(key, "Enabled"), boot.dword(key, "DisabledByDefault")
            if enabled == 0:
                continue
            on_by_default = protocol in ("TLS 1.0", "TLS 1.3") or self.row.tls12_default_on
            if disabled_by_default is not None:
                on_by_default = disabled_by_default == 0
            result[protocol] = (True, on_by_default)
        return result

    def listener_protocols(self, boot: Registry) -> tuple[str, ...]:
        """What an HTTPS listener (HTTP.sys, which leaves the choice to Schannel) offers: the server side's defaults.
        Windows 7 and Server 2008 R2 as installed offer TLS 1.0 only."""
        return tuple(p for p, (_, default) in self.schannel_client(boot, "Server").items() if default)

    def _suites(self, boot: Registry) -> list[str] | None:
        value = boot.get(k.CIPHER_POLICY, "Functions")
        if value is None or value.type not in ("REG_SZ", "REG_MULTI_SZ", "REG_EXPAND_SZ"):
            return None
        items = value.data.split(",") if isinstance(value.data, str) else value.data
        return [item.strip().upper() for item in items if item.strip()]

    @staticmethod
    def reachable(endpoint: str) -> bool:
        """Only Entra's endpoints exist in the simulated network; anything else fails DNS."""
        return endpoint.rsplit(":", 1)[0].lower() in ENTRA_ENDPOINTS

    def handshake(self, boot: Registry, requested: int | None, endpoint: str) -> Handshake:
        """A client handshake; ``requested`` is a SecurityProtocolType mask, 0 or None for the system default."""
        if not self.reachable(endpoint):
            return Handshake(False, None, None, UNKNOWN_HOST)
        states = self.schannel_client(boot)
        if requested:
            offered = [p for p in k.TLS_PROTOCOLS if p in states and requested & _SECURITY_PROTOCOL_BITS[p]]
        else:
            offered = [p for p in k.TLS_PROTOCOLS if p in states and states[p][1]]
        suites = self._suites(boot)
        if suites is not None and not set(suites) & set(k.TLS13_SUITES) and "TLS 1.3" in offered:
            offered.remove("TLS 1.3")
        if not offered:
            return Handshake(False, None, None, HANDSHAKE_FAILED)
        protocol = offered[-1]
        cipher = self._cipher(protocol, suites)
        if cipher is None:
            return Handshake(False, None, None, HANDSHAKE_FAILED)
        name = _SSL_NAMES[protocol]
        if protocol in ("TLS 1.0", "TLS 1.1") or cipher == "TripleDes":
            return Handshake(False, name, cipher, f"{k.AADSTS_ERROR_TEXT} (negotiated {name} with {cipher})")
        return Handshake(True, name, cipher, None)

    @staticmethod
    def _cipher(protocol: str, suites: list[str] | None) -> str | None:
        if suites is None:
            return "Aes256"
        if protocol == "TLS 1.3":
            return "Aes256"
        usable = [s for s in suites if protocol == "TLS 1.2" or k.suite_works_before_tls12(s)]
        if protocol == "TLS 1.2":
            usable = [s for s in usable if s in k.ENTRA_TLS12_SUITES or s == k.TRIPLE_DES_SUITE]
        if not usable:
            return None
        first = usable[0]
        return "TripleDes" if "3DES" in first else ("Aes256" if "AES_256" in first else "Aes128")

    def session_protocol_error(self, requested: int) -> str | None:
        """Why ServicePointManager.SecurityProtocol = requested throws in Windows PowerShell, or None."""
        if self.clr2 and requested & _SECURITY_PROTOCOL_BITS["TLS 1.2"] and not self.clr2_knows_tls12:
            return CLR2_NO_TLS12
        return None

    # --- .NET, as a fresh process reads it -------------------------------------------------------------------
    def security_protocol(self, live: Registry, wow64: bool = False) -> int:
        """ServicePointManager.SecurityProtocol in a new Windows PowerShell process of that bitness."""
        if self.clr2:
            return k.SP_LEGACY_DEFAULT
        release = live.dword(k.NDP_V4_FULL, "Release") or 0
        key = k.netfx_key(k.CLR4, wow64 and self.wow64)
        if release >= k.RELEASE_4_7 and live.dword(key, "SystemDefaultTlsVersions") == 1:
            return k.SP_SYSTEM_DEFAULT
        if release >= k.RELEASE_4_5 and live.dword(key, "SchUseStrongCrypto") == 1:
            return k.SP_STRONG_DEFAULT
        return k.SP_LEGACY_DEFAULT
