"""Every OS row and every trap of windows-tls.md sections 1-5 and 9, as committed facts files.

Paths are spelled out here rather than imported from runbook_lib.knowledge, so a wrong constant in the package
fails these tests instead of agreeing with itself.
"""

import pytest

from runbook_lib import facts
from runbook_lib.engine import assess

SCH = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\"
NET = "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\"
WOW = "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\.NETFramework\\"
WINHTTP = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\WinHttp"
WINHTTP_WOW = "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\WinHttp"

STRONG_NATIVE = {(NET + "v4.0.30319", "SchUseStrongCrypto", 1)}
SCHANNEL_CLIENT_DEFAULT_ON = {(SCH + "Client", "DisabledByDefault", 0)}
SCHANNEL_ALL = {(SCH + role, name, data) for role in ("Client", "Server")
                for name, data in (("Enabled", 1), ("DisabledByDefault", 0))}


def dotnet(views=(NET, WOW), clrs=("v4.0.30319", "v2.0.50727"), names=("SchUseStrongCrypto", "SystemDefaultTlsVersions")):
    return {(view + clr, name, 1) for view in views for clr in clrs for name in names}


def winhttp(data, views=(WINHTTP, WINHTTP_WOW)):
    return {(view, "DefaultSecureProtocols", data) for view in views}


# name: (affected, symptom, {profile: (changes, restart, blockers)})
CASES = {
    # --- OS matrix rows (section 1) ---
    "vista_sp2": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"os.no_tls12", "powershell.v2", "dotnet.missing"}),
        "recommended": (set(), "none", {"os.no_tls12", "powershell.v2", "dotnet.missing"})}),
    "ws2008_rtm": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"os.no_tls12", "powershell.v2", "dotnet.missing"}),
        "recommended": (set(), "none", {"os.no_tls12", "powershell.v2", "dotnet.missing"})}),
    "ws2008sp2_no_kb4019276": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"update.KB4019276"}),
        "recommended": (set(), "none", {"update.KB4019276"})}),
    "ws2008sp2_with_kb4019276": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (SCHANNEL_ALL | dotnet(), "reboot", set())}),
    "win7_wmf51": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (SCHANNEL_ALL | dotnet() | winhttp(0x880), "reboot", set())}),
    "win7_x86_wmf51": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (SCHANNEL_ALL | dotnet(views=(NET,)) | winhttp(0x880, views=(WINHTTP,)), "reboot", set())}),
    "ws2008r2_untouched": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"powershell.v2", "dotnet.missing"}),
        "recommended": (SCHANNEL_ALL | dotnet(), "reboot", {"powershell.v2", "dotnet.missing", "update.KB3140245"})}),
    "ws2012_no_kb3140245": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (SCHANNEL_ALL | dotnet(), "reboot", {"update.KB3140245"})}),
    "ws2012r2_net452": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    "win81_untouched": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    "win10_22h2_untouched": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    "ws2016_untouched": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    "ws2022_healthy": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "win11_24h2_healthy": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "ws2025_dc_untouched": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    # --- traps (sections 2-5, 9) ---
    "ws2016_wow6432node_only": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(views=(NET,)), "new_process", set())}),
    "ws2019_reg_sz_values": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    "ws2019_tls12_disabled_by_gpo": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", {"gpo.managed"}),
        "recommended": (dotnet(), "new_process", {"gpo.managed"})}),
    "ws2016_tls12_disabled_locally": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE | {(SCH + "Client", "Enabled", 1)}, "reboot", set()),
        "recommended": (dotnet() | {(SCH + "Client", "Enabled", 1)}, "reboot", set())}),
    "ws2016_cipher_policy_only_3des": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}), "recommended": (set(), "none", {"gpo.managed"})}),
    "ws2016_legacy_disabled_untouched_dotnet": (True, "handshake_failure", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
    "ws2012r2_enabled_ffffffff": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "win7_system_default_only": (True, "aadsts1002016", {
        "minimal": (SCHANNEL_CLIENT_DEFAULT_ON, "reboot", set()),
        "recommended": (SCHANNEL_ALL | (dotnet() - {(NET + "v4.0.30319", "SystemDefaultTlsVersions", 1)})
                        | winhttp(0x880), "reboot", set())}),
    "win7_pwsh_strong_crypto": (True, "aadsts1002016", {
        "minimal": (SCHANNEL_CLIENT_DEFAULT_ON, "reboot", set()),
        "recommended": (SCHANNEL_ALL | (dotnet() - STRONG_NATIVE) | winhttp(0x880), "reboot", set())}),
    "ws2012_winhttp_ssl3_only": (False, None, {
        "minimal": (set(), "none", set()),
        "recommended": (winhttp(0x800, views=(WINHTTP,)), "reboot", set())}),
    "win7_fixed_reboot_pending": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    # --- Group Policy as Windows applies it ---
    # Administrative templates land through Registry.pol and show in RSoP (RSOP_RegistryPolicySetting,
    # https://learn.microsoft.com/previous-versions/windows/desktop/policy/rsop-registrypolicysetting); the GP
    # client writes them again at its refresh (every 90 minutes plus up to 30, https://learn.microsoft.com/
    # previous-versions/windows/desktop/policy/background-refresh-of-group-policy); GPP registry actions C/R/U/D
    # (https://learn.microsoft.com/powershell/module/grouppolicy/set-gpprefregistryvalue).
    "ws2016_tls12_disabled_by_admx": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", {"gpo.managed"}),
        "recommended": (dotnet(), "new_process", {"gpo.managed"})}),
    "ws2016_admin_template_reverts_local_write": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}), "recommended": (set(), "none", {"gpo.managed"})}),
    "ws2019_gpp_delete_disabled_create": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}),
        "recommended": (dotnet() - STRONG_NATIVE, "new_process", {"gpo.managed"})}),
    "ws2019_gpp_targeted_item": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.targeting_uncertain"}),
        "recommended": (dotnet() - STRONG_NATIVE, "new_process", {"gpo.targeting_uncertain"})}),
    "ws2016_rsop_logging_off": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()), "recommended": (dotnet(), "new_process", set())}),
}


@pytest.mark.parametrize("profile", ["minimal", "recommended"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_case_verdict_matches_the_knowledge(name, profile, facts_path):
    affected, symptom, by_profile = CASES[name]
    changes, restart, blockers = by_profile[profile]
    verdict = assess(facts.load(facts_path(name)), profile)
    assert verdict.affected is affected
    assert verdict.symptom == symptom
    assert {(c.path, c.name, c.data) for c in verdict.changes} == changes
    assert len(verdict.changes) == len(changes), "a value appears twice in the plan"
    assert verdict.restart == restart
    assert set(verdict.blockers) == blockers


def test_every_facts_fixture_has_expectations(facts_path):
    names = {p.stem for p in facts_path("x").parent.glob("*.json")}
    assert names == set(CASES)


def finding_ids(name, facts_path, profile="recommended"):
    return {f.id for f in assess(facts.load(facts_path(name)), profile).findings}


def test_reg_sz_one_is_reported_as_ignored_by_dotnet(facts_path):
    verdict = assess(facts.load(facts_path("ws2019_reg_sz_values")), "minimal")
    assert "dotnet.value_not_dword" in {f.id for f in verdict.findings}
    change = verdict.changes[0]
    assert (change.type, change.data, change.current) == ("REG_DWORD", 1, "1")


def test_wow6432node_only_keys_are_named_as_the_cause(facts_path):
    assert "dotnet.wow64_only" in finding_ids("ws2016_wow6432node_only", facts_path)


def test_windows_7_system_default_explains_the_os_picks_tls10(facts_path):
    assert "dotnet.system_default_os_off" in finding_ids("win7_system_default_only", facts_path)


def test_gpo_finding_names_the_value_that_must_change(facts_path):
    verdict = assess(facts.load(facts_path("ws2019_tls12_disabled_by_gpo")), "recommended")
    [gpo] = [f for f in verdict.findings if f.id == "gpo.managed"]
    assert "TLS 1.2\\Client\\Enabled" in gpo.message and gpo.severity == "blocker"


def test_cipher_policy_finding_proposes_an_order_with_entra_suites_and_no_new_3des(facts_path):
    verdict = assess(facts.load(facts_path("ws2016_cipher_policy_only_3des")))
    ids = {f.id for f in verdict.findings}
    assert "cipher.only_3des" in ids
    [gpo] = [f for f in verdict.findings if f.id == "gpo.managed"]
    proposed = gpo.message.rsplit(" to ", 1)[1].split(",")
    assert proposed[0].startswith("TLS_ECDHE_")
    assert proposed.count("TLS_RSA_WITH_3DES_EDE_CBC_SHA") == 1  # kept where it was, never added


def test_observed_failure_on_a_fixed_registry_is_called_out(facts_path):
    verdict = assess(facts.load(facts_path("win7_fixed_reboot_pending")))
    [disagreement] = [f for f in verdict.findings if f.id == "observed.disagrees"]
    assert "default TLS probe" in disagreement.message


def test_observed_agreement_is_recorded(facts_path):
    assert "observed.agrees" in finding_ids("ws2022_healthy", facts_path)


def test_every_finding_cites_a_microsoft_or_reference_source(facts_path):
    for path in facts_path("x").parent.glob("*.json"):
        for profile in ("minimal", "recommended"):
            for finding in assess(facts.load(path), profile).findings:
                assert finding.source.startswith("https://"), finding
                assert finding.severity in ("blocker", "error", "warning", "info")
                assert "\n" not in finding.message


def test_winhttp_is_unknown_on_server_2008_sp2(facts_path):
    verdict = assess(facts.load(facts_path("ws2008sp2_with_kb4019276")))
    assert verdict.clients["winhttp"] == "unknown"


def test_pwsh_failing_alone_makes_the_host_affected(facts_path):
    verdict = assess(facts.load(facts_path("win7_pwsh_strong_crypto")))
    assert verdict.clients == {"windows_powershell": "ok", "pwsh": "fails", "winhttp": "fails"}
