"""How a simulated Windows host behaves for TLS: Schannel, .NET defaults, and an endpoint that acts like Entra.

This is the simulator's own model of Windows, written from the knowledge base independently of the decision
engine, so that "apply the engine's plan, reboot, probe" is a real check of the engine rather than the engine
agreeing with itself. It differs from the engine in one way that matters to operators: Schannel, WinHTTP and
the cipher order are read at boot, .NET values when a process starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core import acceptance
from ..core import knowledge as k
from ..core.registry import Registry

# SslProtocols enum names as SslStream.SslProtocol prints them.
_SSL_NAMES = {"TLS 1.0": "Tls", "TLS 1.1": "Tls11", "TLS 1.2": "Tls12", "TLS 1.3": "Tls13"}
_SECURITY_PROTOCOL_BITS = {"TLS 1.0": k.SP_TLS, "TLS 1.1": k.SP_TLS11, "TLS 1.2": k.SP_TLS12,
                           "TLS 1.3": k.SP_TLS13}
ENTRA_ENDPOINTS = ("login.microsoftonline.com", "login.windows.net", "graph.microsoft.com",
                   "login.microsoft.com", "device.login.microsoftonline.com")
TOKEN_ENDPOINTS = ("login.microsoftonline.com", "login.windows.net", "login.microsoft.com")
# The .NET Framework 3.5 (CLR 2) update that lets a process ask for TLS 1.2, per OS (docs/tls-knowledge.md section 5;
# Windows 10 / Server 2016 and later have it in their cumulative updates).
_CLR2_TLS12_UPDATES = {(6, 0): "KB3154517", (6, 1): "KB3154518", (6, 2): "KB3154519", (6, 3): "KB3154520"}

# What Get-TrErrorText reports for each failure: the innermost exception's message, word for word as .NET
# Framework writes it (English UI).
UNKNOWN_HOST = "No such host is known"  # SocketException from TcpClient (WSAHOST_NOT_FOUND)
# Win32Exception (SEC_E_ALGORITHM_MISMATCH) inside "A call to SSPI failed, see inner exception.": the client has
# no protocol or cipher suite to offer.
NO_COMMON_ALGORITHM = "The client and server cannot communicate, because they do not possess a common algorithm"
# IOException: the server ended the handshake (no suite it accepts).
REMOTE_CLOSED = "Authentication failed because the remote party has closed the transport stream."
# ArgumentException from SslStream on CLR 2 without the TLS 1.2 update, asked for 3072.
SSL_PROTOCOL_INVALID = ("The specified value is not valid in the 'SslProtocolType' enumeration. "
                        "Parameter name: sslProtocolType")
# NotSupportedException setting ServicePointManager.SecurityProtocol to a value the runtime does not know.
PROTOCOL_NOT_SUPPORTED = "The requested security protocol is not supported."
# AuthenticationException when the certificate does not validate (HttpWebRequest: WebExceptionStatus.TrustFailure).
CERTIFICATE_INVALID = "The remote certificate is invalid according to the validation procedure."
SECURE_CHANNEL = k.HANDSHAKE_ERROR_TEXT  # WebException SecureChannelFailure, which carries no inner exception
NAME_NOT_RESOLVED = "The remote name could not be resolved: '{host}'"  # WebException NameResolutionFailure

# ALG_ID numbers SslStream reports for the hash and key exchange ([P1] enums; values from wincrypt.h).
_HASH_IDS = (("SHA384", 32781), ("SHA256", 32780), ("SHA", 32772))
_ECDHE, _DHE, _RSA_KEYX = 44550, 43522, 41984


@dataclass(frozen=True)
class Handshake:
    """One client handshake as SslStream reports it: ``suite`` is None when it did not complete."""

    connected: bool
    protocol: str | None = None
    suite: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.suite is not None

    def to_probe(self, endpoint: str, mode: str, certificate_chain: tuple[str, ...] = ()) -> dict:
        """The record Invoke-TrProbe writes; certificate fields once the server sent its certificate."""
        probe = {"endpoint": endpoint, "mode": mode, "ok": self.ok, "connected": self.connected,
                 "protocol": self.protocol if self.ok else None, "cipher": None, "error": self.error}
        if self.ok:
            cipher, hash_id, key_exchange = suite_parts(self.suite or "")
            probe.update(cipher=cipher, hash=hash_id, key_exchange=key_exchange,
                         certificate_errors=["RemoteCertificateChainErrors"] if certificate_chain else [],
                         certificate_chain=list(certificate_chain))
        return probe


def suite_parts(suite: str) -> tuple[str, int, int]:
    """CipherAlgorithm name, HashAlgorithm and KeyExchangeAlgorithm numbers of a negotiated suite."""
    name = re.sub(r"_P(256|384|521)$", "", suite.upper())
    cipher = ("TripleDes" if "3DES" in name else "Aes256" if "AES_256" in name else "Aes128" if "AES_128" in name
              else "Rc4" if "RC4" in name else "None")
    hash_id = next((value for suffix, value in _HASH_IDS if name.endswith("_" + suffix)), 0)
    if name.startswith("TLS_AES_") or "ECDHE" in name:
        key_exchange = _ECDHE  # TLS 1.3 suites: the key share is ephemeral ECDH
    else:
        key_exchange = _DHE if "_DHE_" in name else _RSA_KEYX
    return cipher, hash_id, key_exchange


class WindowsTls:
    """TLS behaviour of one host given its OS, the registry read at boot and the live registry."""

    def __init__(self, version: tuple[int, int, int], service_pack: int, product_type: str, architecture: str,
                 hotfixes: tuple[str, ...], windows_powershell: str | None):
        self.row = k.os_row(version, service_pack, product_type)
        self.hotfixes = {h.upper() for h in hotfixes}
        self.wow64 = architecture in ("x64", "arm64")
        self.clr2 = windows_powershell is not None and windows_powershell.startswith("2.")
        self.modern_os = version[0] >= 10
        update = _CLR2_TLS12_UPDATES.get(version[:2])
        # A CLR 2 process (Windows PowerShell 2.0, which runs the scripts here) refuses TLS 1.2 without the update.
        self.runtime_refuses_tls12 = self.clr2 and not self.modern_os and (update is None or update not in self.hotfixes)

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
        """The cipher order Schannel loaded at boot, by base name: Windows 10 and later ignore a curve suffix
        (``..._P256``), earlier releases know an ECDHE suite only by its suffixed name and skip other entries."""
        value = boot.get(k.CIPHER_POLICY, "Functions")
        if value is None or value.type not in ("REG_SZ", "REG_MULTI_SZ", "REG_EXPAND_SZ"):
            return None
        items = value.data.split(",") if isinstance(value.data, str) else value.data
        return [suite for suite in map(self.row.suite_names.policy_suite, items) if suite]

    @staticmethod
    def reachable(endpoint: str) -> bool:
        """Only Entra's endpoints exist in the simulated network; anything else fails DNS."""
        return endpoint.rsplit(":", 1)[0].lower() in ENTRA_ENDPOINTS

    def handshake(self, boot: Registry, requested: int | None, endpoint: str) -> Handshake:
        """A client handshake; ``requested`` is a SecurityProtocolType mask, 0 or None for the system default."""
        if not self.reachable(endpoint):
            return Handshake(False, error=UNKNOWN_HOST)
        states = self.schannel_client(boot)
        if requested:
            offered = [p for p in k.TLS_PROTOCOLS if p in states and requested & _SECURITY_PROTOCOL_BITS[p]]
        else:
            offered = [p for p in k.TLS_PROTOCOLS if p in states and states[p][1]]
        suites = self._suites(boot)
        if suites is not None and not set(suites) & set(k.TLS13_SUITES) and "TLS 1.3" in offered:
            offered.remove("TLS 1.3")
        if not offered:
            return Handshake(True, error=NO_COMMON_ALGORITHM)
        protocol = offered[-1]
        if suites is None:
            return Handshake(True, _SSL_NAMES[protocol], self._default_suite(protocol))
        mine = [s for s in suites if protocol in ("TLS 1.2", "TLS 1.3") or k.suite_works_before_tls12(s)]
        if protocol == "TLS 1.3":
            mine = [s for s in mine if s in k.TLS13_SUITES]
        if not mine:
            return Handshake(True, error=NO_COMMON_ALGORITHM)  # nothing to offer for that protocol
        if protocol == "TLS 1.2":  # the server chooses: Entra takes one of its own suites before 3DES
            mine = [s for s in mine if s in k.ENTRA_TLS12_SUITES] or [s for s in mine if s == k.TRIPLE_DES_SUITE]
        if not mine:
            return Handshake(True, error=REMOTE_CLOSED)
        return Handshake(True, _SSL_NAMES[protocol], mine[0])

    def _default_suite(self, protocol: str) -> str:
        """What Entra picks from Windows' default suite list: AES-256 with ECDHE ([X1], [X2])."""
        if protocol == "TLS 1.3":
            return "TLS_AES_256_GCM_SHA384"
        if protocol == "TLS 1.2":  # 7 / 8.1 have no ECDHE_RSA GCM suites (docs/tls-knowledge.md section 7)
            return "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" if self.modern_os else "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"
        return "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"

    def entra_request(self, boot: Registry, security_protocol: int, endpoint: str,
                      certificate_chain: tuple[str, ...] = ()) -> dict:
        """What Invoke-TrEntraRequest records: HttpWebRequest with ``security_protocol``, answered as Entra does."""
        host, _, port = endpoint.rpartition(":")
        url = f"https://{host}{'' if port == '443' else ':' + port}{acceptance.TOKEN_PATH}"
        record = {"endpoint": endpoint, "mode": "app", "ok": False, "protocol": None, "cipher": None, "error": None,
                  "url": url, "security_protocol": security_protocol, "web_status": None, "http_status": None,
                  "aadsts": None, "aadsts_text": None}
        session = self.handshake(boot, security_protocol, endpoint)
        if not session.connected:
            return {**record, "web_status": "NameResolutionFailure", "error": NAME_NOT_RESOLVED.format(host=host)}
        if not session.ok:
            failure = ("SendFailure", REMOTE_CLOSED) if session.error == REMOTE_CLOSED else \
                ("SecureChannelFailure", SECURE_CHANNEL)
            return {**record, "web_status": failure[0], "error": failure[1]}
        if certificate_chain:
            return {**record, "web_status": "TrustFailure", "error": CERTIFICATE_INVALID}
        record.update(ok=True, web_status="ProtocolError", http_status=400)
        if host.lower() not in TOKEN_ENDPOINTS:
            return {**record, "http_status": 404}
        cipher = suite_parts(session.suite or "")[0]
        if acceptance.session_outcome(session.protocol, cipher) == acceptance.LEGACY:
            return {**record, "aadsts": acceptance.AADSTS_LEGACY_TLS, "aadsts_text": k.AADSTS_ERROR_TEXT}
        return {**record, "aadsts": 700016,
                "aadsts_text": f"AADSTS700016: Application with identifier '{acceptance.PROBE_CLIENT_ID}' was not "
                               "found in the directory 'organizations'."}

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
