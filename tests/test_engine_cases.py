"""Every OS row and every trap of docs/tls-knowledge.md sections 3-7, as committed facts files.

Paths are spelled out here rather than imported from runbook_lib.core.knowledge, so a wrong constant in the package
fails these tests instead of agreeing with itself.
"""

import pytest

from runbook_lib.core import facts
from runbook_lib.core.engine import assess
from runbook_lib.core.host_model import HostModel
from runbook_lib.core.knowledge import os_row
from runbook_lib.core.plan import RemediationPlan

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
    # Registry fixed, not yet rebooted: the fresh process still completes TLS 1.0 and Entra answers AADSTS1002016
    # to its token request ([E1]): observation decides, so the host is affected although nothing is left to write.
    "win7_fixed_reboot_pending": (True, "aadsts1002016", {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    # --- observation decides (issue 8): healthy settings, but what a fresh Windows PowerShell negotiated is legacy.
    # Entra completes TLS 1.0 / 1.1 and TLS 1.2-on-3DES handshakes and then refuses with AADSTS1002016 ([E1]).
    "ws2019_healthy_observed_tls10": (True, "aadsts1002016", {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "ws2019_healthy_observed_tls11": (True, "aadsts1002016", {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "ws2019_healthy_observed_3des": (True, "aadsts1002016", {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    # A certificate that does not validate (missing DigiCert Global Root G2, or a TLS-inspecting proxy) is not a TLS
    # version problem: the verdict stays with the settings, a finding names the certificate ([E1] root guidance).
    "ws2019_healthy_untrusted_root": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    # Untouched registry, but SecurityProtocol 4032 in a fresh process and Entra's AADSTS700016 (past TLS) to the
    # token request (an application .config the runbook does not read): Windows PowerShell works as observed; the
    # durable registry values are still planned.
    "ws2016_untouched_observed_accepted": (False, None, {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (dotnet(), "new_process", set())}),
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
# Expert cases from Microsoft documentation: each facts file's "note" cites its source.
EXPERT_CASES = {
    "ws2016_cipher_policy_curve_suffixes": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "ws2012r2_cipher_policy_curve_suffixes": (False, None, {
        "minimal": (set(), "none", set()), "recommended": (set(), "none", set())}),
    "ws2012_cipher_policy_windows10_names": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}), "recommended": (set(), "none", {"gpo.managed"})}),
    "ws2008r2_cipher_policy_only_3des": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}), "recommended": (set(), "none", {"gpo.managed"})}),
    "ws2016_cipher_policy_rsa_aes_and_3des": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}), "recommended": (set(), "none", {"gpo.managed"})}),
    "ws2008r2_ps2_net48_values_set": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"powershell.v2"}), "recommended": (set(), "none", {"powershell.v2"})}),
    "win8_net45": (True, "aadsts1002016", {
        "minimal": (STRONG_NATIVE, "new_process", set()),
        "recommended": (SCHANNEL_ALL | dotnet(), "reboot", {"update.KB3140245"})}),
    "ws2016_winhttp_tls10_only": (False, None, {
        "minimal": (set(), "none", set()),
        "recommended": (winhttp(0x880), "reboot", set())}),
    "ws2012r2_winhttp_native_excludes_tls12": (False, None, {
        "minimal": (set(), "none", set()),
        "recommended": (winhttp(0x880, views=(WINHTTP,)), "reboot", set())}),
    "win7_gpo_tls12_off_by_default_strong_crypto": (False, None, {
        "minimal": (set(), "none", set()),
        "recommended": ({(SCH + "Client", "Enabled", 1), (SCH + "Server", "Enabled", 1),
                         (SCH + "Server", "DisabledByDefault", 0)} | dotnet(clrs=("v2.0.50727",)) | winhttp(0x880),
                        "reboot", {"gpo.managed"})}),
    "ws2016_gpo_tls12_off_by_default_pwsh": (True, "aadsts1002016", {
        "minimal": (set(), "none", {"gpo.managed"}),
        "recommended": (dotnet(clrs=("v2.0.50727",)), "new_process", {"gpo.managed"})}),
}
CASES.update(EXPERT_CASES)


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


def proposed_cipher_order(verdict):
    [gpo] = [f for f in verdict.findings if f.id == "gpo.managed"]
    return gpo.message.rsplit(" to ", 1)[1].split(",")


def test_cipher_policy_finding_proposes_the_entra_suites_windows_10_lists_and_drops_3des(facts_path):
    verdict = assess(facts.load(facts_path("ws2016_cipher_policy_only_3des")))
    assert "cipher.only_3des" in {f.id for f in verdict.findings}
    # Server 2016 lists all eight suites Entra accepts, without curve suffixes (TLS Cipher Suites in Windows 10
    # v1607); 3DES is what Entra refuses, so the order never carries it on, even when the policy had it.
    assert proposed_cipher_order(verdict) == [
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"]


def test_observed_failure_on_a_fixed_registry_is_called_out(facts_path):
    verdict = assess(facts.load(facts_path("win7_fixed_reboot_pending")))
    [disagreement] = [f for f in verdict.findings if f.id == "observed.disagrees"]
    assert "AADSTS1002016" in disagreement.message and "do not explain it" in disagreement.message
    assert "reboot pending" in disagreement.message and disagreement.severity == "error"
    assert verdict.clients["windows_powershell"] == "fails"


@pytest.mark.parametrize("name, seen", [("ws2019_healthy_observed_tls10", "TLS 1.0 with Aes256"),
                                        ("ws2019_healthy_observed_tls11", "TLS 1.1 with Aes256"),
                                        ("ws2019_healthy_observed_3des", "TLS 1.2 with TripleDes")])
def test_a_legacy_session_observed_on_a_healthy_registry_decides_the_verdict(name, seen, facts_path):
    verdict = assess(facts.load(facts_path(name)))
    assert (verdict.affected, verdict.symptom, verdict.clients["windows_powershell"]) == (True, "aadsts1002016", "fails")
    [client] = [f for f in verdict.findings if f.id == "observed.disagrees" and "fresh Windows PowerShell" in f.message]
    assert f"default TLS probe to login.microsoftonline.com:443 completed a handshake on {seen}" in client.message
    assert "settings read predict that Windows PowerShell works" in client.message
    assert "do not explain it" in client.message
    assert "observed.agrees" not in {f.id for f in verdict.findings}


def test_an_observed_acceptance_beats_a_predicted_failure_and_names_what_was_not_read(facts_path):
    verdict = assess(facts.load(facts_path("ws2016_untouched_observed_accepted")))
    assert verdict.clients["windows_powershell"] == "ok" and not verdict.affected
    [client] = [f for f in verdict.findings if f.id == "observed.disagrees" and "token request" in f.message]
    assert "AADSTS700016" in client.message and "application's own .config" in client.message


def test_a_certificate_problem_is_named_and_not_mistaken_for_legacy_tls(facts_path):
    verdict = assess(facts.load(facts_path("ws2019_healthy_untrusted_root")))
    [finding] = [f for f in verdict.findings if f.id == "observed.certificate"]
    assert "PartialChain" in finding.message and "DigiCert Global Root G2" in finding.message
    assert not verdict.affected and "observed.disagrees" not in {f.id for f in verdict.findings}


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


# --- expert cases ---------------------------------------------------------------------------------------------
WINDOWS_7_ENTRA_NAMES = [  # TLS Cipher Suites in Windows 7 (the same names on 8 / 2012 and 8.1 / 2012 R2)
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P256", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384_P384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256_P256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256_P384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256_P256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256_P384"]


@pytest.mark.parametrize("name", sorted(EXPERT_CASES))
def test_expert_case_cites_its_microsoft_source_in_the_facts_file(name, facts_path):
    note = facts.load(facts_path(name)).note
    assert note and ("https://learn.microsoft.com/" in note or "https://support.microsoft.com/" in note)


@pytest.mark.parametrize("name", ["ws2016_cipher_policy_curve_suffixes", "ws2012r2_cipher_policy_curve_suffixes"])
def test_curve_suffixed_policy_names_are_the_suites_entra_accepts(name, facts_path):
    verdict = assess(facts.load(facts_path(name)))
    assert not [f for f in verdict.findings if f.id.startswith("cipher.") or f.id == "gpo.managed"]
    [client] = [f for f in verdict.findings if f.id == "client.windows_powershell"]
    assert client.message.endswith("TLS 1.2 is negotiated and Entra accepts it")


def test_ecdhe_names_without_a_curve_are_not_suites_server_2012_has(facts_path):
    verdict = assess(facts.load(facts_path("ws2012_cipher_policy_windows10_names")))
    [unknown] = [f for f in verdict.findings if f.id == "cipher.names_unknown"]
    assert "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384," in unknown.message
    assert unknown.source.endswith("/tls-cipher-suites-in-windows-8")
    assert proposed_cipher_order(verdict) == WINDOWS_7_ENTRA_NAMES  # the Windows 10 spellings are dropped


def test_order_proposed_for_server_2008_r2_uses_its_own_names_and_never_3des(facts_path):
    verdict = assess(facts.load(facts_path("ws2008r2_cipher_policy_only_3des")))
    assert proposed_cipher_order(verdict) == WINDOWS_7_ENTRA_NAMES
    [gpo] = [f for f in verdict.findings if f.id == "gpo.managed"]
    assert gpo.source.endswith("/tls-cipher-suites-in-windows-7")


def test_policy_with_rsa_aes_suites_left_is_not_called_only_3des(facts_path):
    verdict = assess(facts.load(facts_path("ws2016_cipher_policy_rsa_aes_and_3des")))
    ids = {f.id for f in verdict.findings}
    assert "cipher.no_entra_suite" in ids and "cipher.only_3des" not in ids
    assert not [f for f in verdict.findings if "only 3DES" in f.message]
    proposed = proposed_cipher_order(verdict)
    assert proposed[-2:] == ["TLS_RSA_WITH_AES_256_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"]  # kept, in order
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA" not in proposed


def test_proposed_order_over_the_policy_limit_says_so(facts_path):
    doc = facts.load(facts_path("ws2016_cipher_policy_rsa_aes_and_3des")).to_dict()
    policy = [v for v in doc["registry"] if v["name"] == "Functions"][0]
    policy["data"] += "," + ",".join(f"TLS_RSA_WITH_AES_{n}_CBC_SHA" for n in range(40))
    [gpo] = [f for f in assess(facts.from_dict(doc)).findings if f.id == "gpo.managed"]
    assert "at most 1023 characters" in gpo.message


def test_powershell_2_failure_is_explained_by_clr2_not_by_correct_dotnet4_values(facts_path):
    verdict = assess(facts.load(facts_path("ws2008r2_ps2_net48_values_set")))
    ids = {f.id for f in verdict.findings}
    assert not ids & {"dotnet.strong_crypto_off", "dotnet.system_default_os_off", "dotnet.views_differ",
                      "dotnet.wow64_only"}
    [client] = [f for f in verdict.findings if f.id == "client.windows_powershell"]
    assert "runs on CLR 2" in client.message
    assert verdict.blockers == ("powershell.v2",)


def test_x86_host_reports_32_bit_windows_powershell(facts_path):
    [client] = [f for f in assess(facts.load(facts_path("win7_x86_wmf51"))).findings
                if f.id == "client.windows_powershell"]
    assert "(32-bit)" in client.message and "64-bit" not in client.message


def test_windows_8_is_not_advised_dotnet_48_or_wmf_51(facts_path):
    verdict = assess(facts.load(facts_path("win8_net45")))
    [old] = [f for f in verdict.findings if f.id == "dotnet.old_release"]
    assert "its newest is 4.6.1" in old.message
    assert not [f for f in verdict.findings if "4.8" in f.message or "WMF 5.1" in f.message]


def test_windows_8_and_server_2012_are_separate_rows():
    client, server = os_row((6, 2, 9200), 0, "workstation"), os_row((6, 2, 9200), 0, "server")
    assert (client.dotnet_max, client.wmf51) == ("4.6.1", False)
    assert (server.dotnet_max, server.wmf51) == ("4.8", True)


@pytest.mark.parametrize("profile", ["minimal", "recommended"])
def test_winhttp_value_without_tls12_is_explained_on_server_2016(profile, facts_path):
    verdict = assess(facts.load(facts_path("ws2016_winhttp_tls10_only")), profile)
    assert verdict.clients["winhttp"] == "fails"
    [finding] = [f for f in verdict.findings if f.id == "winhttp.tls12_missing"]
    assert "native view 0x80 (TLS 1.0)" in finding.message and "Wow6432Node (32-bit) view 0x80" in finding.message
    assert finding.source == "https://learn.microsoft.com/windows-server/networking/configure-secure-protocol-options-winhttp"


def test_recommended_plan_makes_winhttp_work_in_both_views(facts_path):
    host = facts.load(facts_path("ws2016_winhttp_tls10_only"))
    verdict = assess(host)
    model = HostModel(host.with_registry(RemediationPlan.from_verdict(verdict, host).apply_to(host.registry)))
    assert model.winhttp().state == "ok" and model.winhttp(wow64=True).state == "ok"


def test_guard_keeps_system_default_off_where_a_gpo_keeps_tls12_off_by_default(facts_path):
    host = facts.load(facts_path("win7_gpo_tls12_off_by_default_strong_crypto"))
    verdict = assess(host)
    dropped = [f for f in verdict.findings if f.id == "guard.change_dropped"]
    assert [f.message.split(":")[0] for f in dropped] == [
        "Not writing HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319\\SystemDefaultTlsVersions=1",
        "Not writing HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\.NETFramework\\v4.0.30319\\SystemDefaultTlsVersions=1"]
    assert "64-bit Windows PowerShell fail" in dropped[0].message and "32-bit" in dropped[1].message
    assert all(f.source == "https://learn.microsoft.com/dotnet/framework/network-programming/tls" for f in dropped)
    applied = host.with_registry(RemediationPlan.from_verdict(verdict, host).apply_to(host.registry))
    model = HostModel(applied)
    assert model.windows_powershell().state == "ok" and model.windows_powershell(wow64=True).state == "ok"
    # the engine's own model says why: with the value written, Windows PowerShell leaves the choice to the OS
    with_it = applied.registry.set(NET + "v4.0.30319", "SystemDefaultTlsVersions", "REG_DWORD", 1)
    assert HostModel(applied.with_registry(with_it)).windows_powershell().state == "fails"


def test_guarded_plan_converges_in_one_apply(facts_path):
    for name in ("win7_gpo_tls12_off_by_default_strong_crypto", "ws2016_gpo_tls12_off_by_default_pwsh"):
        host = facts.load(facts_path(name))
        verdict = assess(host)
        after = host.with_registry(RemediationPlan.from_verdict(verdict, host).apply_to(host.registry))
        assert assess(after).changes == ()
