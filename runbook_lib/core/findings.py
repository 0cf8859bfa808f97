"""The engine's findings, one function per area (OS, Group Policy, SCHANNEL, .NET, cipher suites, clients,
WinHTTP, observation): each reads the host model and adds findings, with their Microsoft sources, to the
assessment. Every finding id the engine can emit is raised here or by the plan guard (:mod:`.guard`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import knowledge as k
from .acceptance import CERTIFICATE, UNREACHABLE, client_answer, entra_answer
from .host_model import OFF, ON, OPT_IN, TLS12, ClientPrediction, HostModel, Negotiation
from .registry import RegistryValue

if TYPE_CHECKING:
    from .engine import Assessment


def describe_value(value: RegistryValue | None) -> str:
    if value is None:
        return "absent"
    return f"{value.type} {value.data!r}"


def os_findings(a: Assessment) -> None:
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


def policy_findings(a: Assessment) -> None:
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
        kept = f"puts back {describe_value(revert.kept)}" if revert.kept is not None else "deletes it again"
        a.add("gpo.local_change_reverted", "warning",
              f"{revert.path}\\{revert.name} is {describe_value(revert.live)} here, but {revert.claim.source} {kept} at the "
              "next refresh; this assessment uses the policy's value", "G2")


def schannel_findings(a: Assessment) -> None:
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


def dotnet_findings(a: Assessment, winps: ClientPrediction) -> None:
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


def cipher_findings(a: Assessment) -> None:
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


def client_findings(a: Assessment, winps: ClientPrediction, pwsh: ClientPrediction,
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


def winhttp_findings(a: Assessment) -> None:
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


def observed_findings(a: Assessment, winps: ClientPrediction) -> ClientPrediction:
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


def _observed_client(a: Assessment, winps: ClientPrediction, observed) -> ClientPrediction | None:
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
