"""What Microsoft documents about TLS on Windows, as tables the engine reads.

Every fact here comes from ``shared/knowledge/windows-tls.md``; each row carries the tags of its Microsoft
sources, and :data:`SOURCES` resolves a tag to the URL a finding cites. Keeping the knowledge as data means a
new OS build or .NET release is one row, not a new branch in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = {
    "E1": "https://learn.microsoft.com/troubleshoot/entra/entra-id/ad-dmn-services/enable-support-tls-environment",
    "E2": "https://learn.microsoft.com/troubleshoot/entra/entra-id/app-integration/application-using-tls-1dot0-1dot1-authentication-fail",
    "J1": "https://jpazureid.github.io/blog/azure-active-directory/howto-deal-with-aadsts1002016/",
    "C1": "https://learn.microsoft.com/mem/configmgr/core/plan-design/security/enable-tls-1-2-client",
    "W1": "https://learn.microsoft.com/windows-server/networking/configure-secure-protocol-options-winhttp",
    "W2": "https://support.microsoft.com/help/3140245",
    "S1": "https://learn.microsoft.com/windows-server/security/tls/tls-registry-settings",
    "S2": "https://learn.microsoft.com/windows/win32/secauthn/protocols-in-tls-ssl--schannel-ssp-",
    "N1": "https://learn.microsoft.com/dotnet/framework/network-programming/tls",
    "N2": "https://learn.microsoft.com/dotnet/framework/install/how-to-determine-which-versions-are-installed",
    "N3": "https://learn.microsoft.com/dotnet/framework/install/versions-and-dependencies",
    "N4": "https://github.com/microsoft/referencesource/blob/master/System/net/System/Net/ServicePointManager.Configuration.cs",
    "N5": "https://github.com/microsoft/referencesource/blob/master/System/net/System/Net/NetRegistryConfiguration.cs",
    "P1": "https://learn.microsoft.com/dotnet/api/system.net.securityprotocoltype",
    "P5": "https://learn.microsoft.com/powershell/gallery/powershellget/install-on-older-systems",
    "P6": "https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_profiles",
    "P7": "https://learn.microsoft.com/powershell/scripting/windows-powershell/wmf-overview",
    "M1": "https://learn.microsoft.com/powershell/exchange/exchange-online-powershell-v2",
    "X1": "https://learn.microsoft.com/windows/win32/secauthn/tls-cipher-suites-in-windows-7",
    "X2": "https://learn.microsoft.com/windows/win32/secauthn/tls-cipher-suites-in-windows-8-1",
    "X3": "https://learn.microsoft.com/azure/active-directory-b2c/https-cipher-tls-requirements",
    "X4": "https://learn.microsoft.com/windows-server/security/tls/manage-tls",
    "X10": "https://learn.microsoft.com/windows/win32/secauthn/tls-cipher-suites-in-windows-8",
    "X11": "https://learn.microsoft.com/windows/win32/secauthn/cipher-suites-in-schannel",
    "X12": "https://learn.microsoft.com/windows/win32/secauthn/tls-cipher-suites-in-windows-10-v1607",
    "X13": "https://learn.microsoft.com/windows/win32/secauthn/tls-cipher-suites-in-windows-server-2022",
    "V1": "https://github.com/microsoft/azure-devops-tls12/blob/main/AzureDevOpsTls12Analysis.ps1",
    "R1": "https://learn.microsoft.com/entra/identity/hybrid/connect/reference-connect-tls-enforcement",
    "O1": "https://learn.microsoft.com/windows/win32/sysinfo/operating-system-version",
    "G1": "https://learn.microsoft.com/previous-versions/windows/desktop/policy/rsop-registrypolicysetting",
    "G2": "https://learn.microsoft.com/previous-versions/windows/desktop/policy/background-refresh-of-group-policy",
    "G3": "https://learn.microsoft.com/powershell/module/grouppolicy/set-gpprefregistryvalue",
}

# --- registry locations ([S1], [N1], [N2], [W1], [X4]) --------------------------------------------------------
SCHANNEL_PROTOCOLS = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols"
NETFX_NATIVE = "HKLM\\SOFTWARE\\Microsoft\\.NETFramework"
NETFX_WOW64 = "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\.NETFramework"
CLR4 = "v4.0.30319"
CLR2 = "v2.0.50727"
NDP = "HKLM\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP"
NDP_V4_FULL = NDP + "\\v4\\Full"
NDP_V35 = NDP + "\\v3.5"
WINHTTP_NATIVE = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\WinHttp"
WINHTTP_WOW64 = "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\WinHttp"
CIPHER_POLICY = "HKLM\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002"

TLS_PROTOCOLS = ("TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
LEGACY_PROTOCOLS = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1")
DOTNET_VALUES = ("SchUseStrongCrypto", "SystemDefaultTlsVersions")


def schannel_key(protocol: str, role: str) -> str:
    return f"{SCHANNEL_PROTOCOLS}\\{protocol}\\{role}"


def netfx_key(clr: str, wow64: bool) -> str:
    return f"{NETFX_WOW64 if wow64 else NETFX_NATIVE}\\{clr}"


def values_read() -> list[tuple[str, str]]:
    """Every (path, name) the engine reads: inspection collects exactly these, so the two never drift apart."""
    wanted = [
        (schannel_key(protocol, role), name)
        for protocol in ("SSL 2.0", "SSL 3.0", *TLS_PROTOCOLS)
        for role in ("Client", "Server")
        for name in ("Enabled", "DisabledByDefault")
    ]
    wanted += [(netfx_key(clr, wow), name) for clr in (CLR4, CLR2) for wow in (False, True) for name in DOTNET_VALUES]
    wanted += [(NDP_V4_FULL, "Release"), (NDP_V4_FULL, "Install"), (NDP_V35, "Install"), (NDP_V35, "SP")]
    wanted += [(WINHTTP_NATIVE, "DefaultSecureProtocols"), (WINHTTP_WOW64, "DefaultSecureProtocols")]
    wanted += [(CIPHER_POLICY, "Functions"), (CIPHER_POLICY, "EccCurves")]
    return wanted


def values_planned() -> list[tuple[str, str]]:
    """Every (path, name) a remediation plan can write (TLS 1.2 in SCHANNEL, the .NET values, WinHTTP's default
    protocols): all a rollback may ever restore. A subset of :func:`values_read`."""
    planned = [(schannel_key("TLS 1.2", role), name) for role in ("Client", "Server")
               for name in ("Enabled", "DisabledByDefault")]
    planned += [(netfx_key(clr, wow), name) for clr in (CLR4, CLR2) for wow in (False, True) for name in DOTNET_VALUES]
    planned += [(WINHTTP_NATIVE, "DefaultSecureProtocols"), (WINHTTP_WOW64, "DefaultSecureProtocols")]
    return planned


# --- the OS matrix ([S2], [N1-2018], [W2], [E1], [P7], [N3], [O1], [O2]) --------------------------------------
@dataclass(frozen=True)
class OsRow:
    """One row of section 1a: what a Windows release can do for TLS 1.2 and what it needs."""

    name: str
    tls12: str  # "no" (cannot), "update" (only after required_update), "yes"
    tls12_default_on: bool  # TLS 1.1/1.2 enabled by default for clients and servers when no values are set
    tls13: bool
    required_update: str | None = None  # for TLS 1.2 in SCHANNEL
    winhttp_update: str | None = None  # WinHTTP defaults need this update plus DefaultSecureProtocols
    winhttp_default_mask: int | None = 0x0A80  # DefaultSecureProtocols the OS assumes when the value is absent
    explicit_schannel_values: bool = False  # [V1]: at or below 6.2 write explicit values rather than trust absence
    dotnet_max: str = "4.8.1"
    wmf51: bool = True
    suite_family: str = "win10"  # a key of SUITE_NAMES: how this release names its cipher suites
    sources: tuple[str, ...] = ("S2",)

    @property
    def source(self) -> str:
        return SOURCES[self.sources[0]]

    @property
    def suite_names(self) -> "SuiteNames":
        return SUITE_NAMES[self.suite_family]

    @property
    def dotnet_max_reads_system_default(self) -> bool:
        """Whether the newest .NET Framework this OS can run honours SystemDefaultTlsVersions (4.7+, [N1])."""
        return tuple(int(part) for part in self.dotnet_max.split(".")) >= (4, 7)


_VISTA_2008_RTM = OsRow("Windows Vista / Server 2008 (before SP2)", "no", False, False, dotnet_max="4.6.2",
                        wmf51=False, winhttp_default_mask=None, explicit_schannel_values=True,
                        suite_family="vista", sources=("S2", "N3"))
_2008_SP2 = OsRow("Windows Server 2008 SP2", "update", False, False, required_update="KB4019276",
                  winhttp_default_mask=None, explicit_schannel_values=True, dotnet_max="4.6.2", wmf51=False,
                  suite_family="vista", sources=("S2", "P7", "N3"))
_WIN7 = OsRow("Windows 7 SP1 / Server 2008 R2 SP1", "yes", False, False, winhttp_update="KB3140245",
              winhttp_default_mask=0x00A0, explicit_schannel_values=True, dotnet_max="4.8", suite_family="win7",
              sources=("S2", "W2"))
_WIN8 = OsRow("Windows 8", "yes", True, False, winhttp_update="KB3140245", winhttp_default_mask=0x00A0,
              explicit_schannel_values=True, dotnet_max="4.6.1", wmf51=False, suite_family="win8",
              sources=("S2", "N3", "P7"))
_2012 = OsRow("Windows Server 2012", "yes", True, False, winhttp_update="KB3140245", winhttp_default_mask=0x00A0,
              explicit_schannel_values=True, dotnet_max="4.8", suite_family="win8", sources=("S2", "W2", "V1"))
_WIN81 = OsRow("Windows 8.1 / Server 2012 R2", "yes", True, False, dotnet_max="4.8", suite_family="win81",
               sources=("S2", "E1"))

_SERVER_BUILDS = {14393: "Windows Server 2016", 17763: "Windows Server 2019", 20348: "Windows Server 2022",
                  26100: "Windows Server 2025"}
TLS13_FIRST_BUILD = 20348


def os_row(version: tuple[int, int, int], service_pack: int, product_type: str) -> OsRow:
    """The matrix row for an OS version; versions come from WMI, not [Environment]::OSVersion ([O1])."""
    major, minor, build = version
    workstation = product_type == "workstation"
    if (major, minor) < (6, 0):
        return OsRow(f"Windows {major}.{minor} (before Vista)", "no", False, False, winhttp_default_mask=None,
                     explicit_schannel_values=True, wmf51=False, dotnet_max="4.0", suite_family="vista")
    if (major, minor) == (6, 0):
        if workstation or service_pack < 2 or build < 6002:
            return _VISTA_2008_RTM
        return _2008_SP2
    if (major, minor) == (6, 1):
        return _WIN7
    if (major, minor) == (6, 2):
        return _WIN8 if workstation else _2012
    if (major, minor) == (6, 3):
        return _WIN81
    if workstation:
        name = f"Windows 11 (build {build})" if build >= 22000 else f"Windows 10 (build {build})"
    else:
        name = _SERVER_BUILDS.get(build, f"Windows Server (build {build})")
    return OsRow(name, "yes", True, build >= TLS13_FIRST_BUILD, sources=("S2",))


# --- .NET Framework 4.5+ releases ([N2]) ----------------------------------------------------------------------
DOTNET_RELEASES = (
    (533320, "4.8.1"),
    (528040, "4.8"),
    (461808, "4.7.2"),
    (461308, "4.7.1"),
    (460798, "4.7"),
    (394802, "4.6.2"),
    (394254, "4.6.1"),
    (393295, "4.6"),
    (379893, "4.5.2"),
    (378675, "4.5.1"),
    (378389, "4.5"),
)
RELEASE_4_5 = 378389
RELEASE_4_7 = 460798  # SystemDefaultTlsVersions and the SystemDefault enum exist from here ([N1], [P1])


def dotnet_version(release: int | None) -> str | None:
    if release is None:
        return None
    for minimum, version in DOTNET_RELEASES:
        if release >= minimum:
            return version
    return None


# --- SecurityProtocolType ([P1]) -------------------------------------------------------------------------------
SP_SYSTEM_DEFAULT = 0
SP_SSL3 = 48
SP_TLS = 192
SP_TLS11 = 768
SP_TLS12 = 3072
SP_TLS13 = 12288
SP_LEGACY_DEFAULT = SP_SSL3 | SP_TLS  # 240: Windows PowerShell without the .NET values ([P8], [X9])
SP_STRONG_DEFAULT = SP_TLS | SP_TLS11 | SP_TLS12  # 4032 with SchUseStrongCrypto=1 ([P9], [N4])

SP_BITS = {SP_SSL3: "SSL 3.0", SP_TLS: "TLS 1.0", SP_TLS11: "TLS 1.1", SP_TLS12: "TLS 1.2", SP_TLS13: "TLS 1.3"}
SP_NAMES = {SP_SSL3: "Ssl3", SP_TLS: "Tls", SP_TLS11: "Tls11", SP_TLS12: "Tls12", SP_TLS13: "Tls13"}


def security_protocol_name(value: int) -> str:
    """The enum text PowerShell prints for a SecurityProtocolType value."""
    if value == SP_SYSTEM_DEFAULT:
        return "SystemDefault"
    names = [name for bit, name in SP_NAMES.items() if value & bit]
    return ", ".join(names) if names else str(value)


# --- WinHTTP DefaultSecureProtocols bits ([W2], [W3]) ---------------------------------------------------------
WINHTTP_SSL2 = 0x0008
WINHTTP_SSL3 = 0x0020
WINHTTP_TLS10 = 0x0080
WINHTTP_TLS11 = 0x0200
WINHTTP_TLS12 = 0x0800
WINHTTP_TLS13 = 0x2000
WINHTTP_BITS = {WINHTTP_SSL2: "SSL 2.0", WINHTTP_SSL3: "SSL 3.0", WINHTTP_TLS10: "TLS 1.0",
                WINHTTP_TLS11: "TLS 1.1", WINHTTP_TLS12: "TLS 1.2", WINHTTP_TLS13: "TLS 1.3"}

# --- cipher suites ([E1], [X3], [X1], [X2], [X10], [X11], [X12], [X13], [X4]) ----------------------------------
ENTRA_TLS12_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
)
TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256")
TRIPLE_DES_SUITE = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
CURVE_SUFFIXES = ("_P256", "_P384", "_P521")
MAX_CIPHER_ORDER_CHARS = 1023  # what the 'SSL Cipher Suite Order' policy accepts ([X4])


def suite_base(name: str) -> str:
    """A suite name in upper case without its elliptic-curve suffix: ``..._SHA384_P256`` and ``..._SHA384`` are
    the same suite on different curves ([X11])."""
    upper = name.strip().upper()
    for suffix in CURVE_SUFFIXES:
        if upper.endswith(suffix):
            return upper[:-len(suffix)]
    return upper


@dataclass(frozen=True)
class SuiteNames:
    """How one Windows family spells its cipher suites, and which of them Entra accepts for TLS 1.2.

    Before Windows 10 an ECDHE suite exists only as one name per curve (``..._P256``, ``..._P384``); from
    Windows 10 the suffix is ignored, so an order written for the older systems still works there ([X11]).
    """

    curve_suffixed: bool
    entra_tls12: tuple[str, ...] | None  # as the OS lists them, in its default priority; None: not documented
    sources: tuple[str, ...]

    def policy_suite(self, entry: str) -> str | None:
        """The suite a cipher-order policy entry selects on this OS (its base name), or None: no such name here."""
        base = suite_base(entry)
        if self.curve_suffixed and base.startswith("TLS_ECDHE_") and base == entry.strip().upper():
            return None
        if self.entra_tls12 is not None and base in ENTRA_TLS12_SUITES and base not in self.entra_bases:
            return None  # e.g. ECDHE_RSA with GCM, which Windows lists only from Windows 10
        return base

    @property
    def entra_bases(self) -> frozenset[str]:
        return frozenset(suite_base(name) for name in (self.entra_tls12 or ENTRA_TLS12_SUITES))


# Windows 7 / 2008 R2 (after 3042058), 8 / 2012 (after 3042058) and 8.1 / 2012 R2 (after 2919355) list the same
# TLS 1.2 suites; of the ones Entra accepts they have no ECDHE_RSA GCM suite ([X1], [X10], [X2]).
_ENTRA_NAMES_BEFORE_WINDOWS_10 = (
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P256", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384_P384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256_P256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256_P384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256_P256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256_P384",
)
SUITE_NAMES = {
    # Vista / 2008 name ECDHE suites with the curve too; which TLS 1.2 suites KB4019276 adds is not documented.
    "vista": SuiteNames(True, None, ("X11",)),
    "win7": SuiteNames(True, _ENTRA_NAMES_BEFORE_WINDOWS_10, ("X1",)),
    "win8": SuiteNames(True, _ENTRA_NAMES_BEFORE_WINDOWS_10, ("X10",)),
    "win81": SuiteNames(True, _ENTRA_NAMES_BEFORE_WINDOWS_10, ("X2",)),
    "win10": SuiteNames(False, (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"), ("X12", "X13")),
}


def suite_works_before_tls12(suite: str) -> bool:
    """GCM and SHA-2 MAC suites are TLS 1.2-only; the old CBC/SHA-1 ones (3DES included) also run on 1.0/1.1."""
    base = suite_base(suite)
    return base.endswith("_SHA") and "GCM" not in base


AADSTS_ERROR_TEXT = ("AADSTS1002016: You are using TLS version 1.0, 1.1 and/or 3DES cipher which are deprecated "
                     "to improve the security posture of Azure AD.")
HANDSHAKE_ERROR_TEXT = "The request was aborted: Could not create SSL/TLS secure channel."
