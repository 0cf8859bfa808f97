"""Properties over generated hosts: never weaken, never break a working client, converge in one apply, roll back
exactly."""

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings, strategies as st

from runbook_lib import facts as facts_module
from runbook_lib.engine import HostModel, assess
from runbook_lib.knowledge import values_planned, values_read
from runbook_lib.plan import RemediationPlan

FACTS = Path(__file__).parent / "facts"
LEGACY = ("\\SSL 2.0\\", "\\SSL 3.0\\", "\\TLS 1.0\\", "\\TLS 1.1\\")
WINHTTP_SSL = 0x0008 | 0x0020
WINHTTP_LEGACY_TLS = 0x0080 | 0x0200
WINHTTP_OS_DEFAULT_OLD = 0x00A0

OSES = [  # (version, service pack, product type)
    ("6.0.6001", 1, "server"), ("6.0.6002", 2, "server"), ("6.0.6002", 2, "workstation"),
    ("6.1.7601", 1, "workstation"), ("6.1.7601", 1, "server"), ("6.2.9200", 0, "server"),
    ("6.3.9600", 0, "server"), ("10.0.14393", 0, "server"), ("10.0.17763", 0, "domain_controller"),
    ("10.0.19045", 0, "workstation"), ("10.0.20348", 0, "server"), ("10.0.26100", 0, "workstation"),
]
OSES_WITH_TLS12 = [  # where a working client can exist; first the ones without TLS 1.3 to fall back on
    ("10.0.14393", 0, "server"), ("6.1.7601", 1, "workstation"), ("6.3.9600", 0, "server"),
    ("10.0.17763", 0, "domain_controller"), ("6.2.9200", 0, "server"), ("10.0.19045", 0, "workstation"),
    ("6.1.7601", 1, "server"), ("6.0.6002", 2, "server"), ("10.0.20348", 0, "server"),
    ("10.0.26100", 0, "workstation")]
SUITES = ["TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_RSA_WITH_AES_128_CBC_SHA",
          "TLS_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384"]


def value_strategy(path, name):
    if name == "Functions":
        suites = st.lists(st.sampled_from(SUITES), min_size=1, max_size=4, unique=True)
        data = st.one_of(suites.map(",".join).map(lambda d: ("REG_SZ", d)), suites.map(lambda d: ("REG_MULTI_SZ", d)))
    elif name == "Release":
        data = st.sampled_from([378389, 379893, 394802, 460805, 461814, 528049, 533325]).map(lambda d: ("REG_DWORD", d))
    else:
        data = st.one_of(
            st.sampled_from([0, 1, 2, 0x20, 0xA0, 0x800, 0xA80, 0xFFFFFFFF]).map(lambda d: ("REG_DWORD", d)),
            st.integers(0, 0xFFFFFFFF).map(lambda d: ("REG_DWORD", d)),
            st.sampled_from(["1", "0"]).map(lambda d: ("REG_SZ", d)),
            st.just(("REG_QWORD", 1)),
        )
    return st.tuples(data, st.booleans()).map(
        lambda t: {"path": path, "name": name, "type": t[0][0], "data": t[0][1], "policy": t[1]})


@st.composite
def host_facts(draw):
    version, sp, product = draw(st.sampled_from(OSES))
    wanted = draw(st.lists(st.sampled_from(values_read()), unique=True, max_size=24))
    registry = [draw(value_strategy(path, name)) for path, name in wanted]
    doc = {
        "schema": "tls-runbook/host-facts/v1", "host": "gen-host", "simulated": draw(st.booleans()),
        "collected_at": "2026-11-25T10:00:00Z",
        "os": {"caption": "generated", "version": version, "service_pack": sp, "product_type": product,
               "architecture": draw(st.sampled_from(["x64", "x86", "arm64"]))},
        "hotfixes": draw(st.lists(st.sampled_from(["KB4019276", "KB3140245", "KB2919355"]), unique=True)),
        "powershell": {"windows_powershell": draw(st.sampled_from([None, "2.0", "3.0", "4.0", "5.1.14409.1005"])),
                       "pwsh": draw(st.sampled_from([None, "7.4.6"]))},
        "registry": registry,
    }
    return facts_module.from_dict(doc)


SCHANNEL = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\"
NETFX = ("HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\", "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\.NETFramework\\")
WINHTTP = ("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\WinHttp",
           "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\WinHttp")
NDP_FULL = "HKLM\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full"
CIPHER_POLICY = "HKLM\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002"


@st.composite
def worked_on_host_facts(draw):
    """Hosts an administrator or a baseline GPO has already worked on: the values that decide which client
    works, each absent, 0 or 1, locally or by Group Policy, on a host that mostly runs Windows PowerShell 5.1
    on .NET 4.7 or later. Dense where a plan can do harm: a working client next to a value the plan may not write.
    """
    def flag(path, name, choices=(None, 0, 1, 1)):
        data = draw(st.sampled_from(choices))
        if data is None:
            return []
        return [{"path": path, "name": name, "type": "REG_DWORD", "data": data, "policy": draw(st.booleans())}]

    registry = flag(NDP_FULL, "Release", (528049, 533325, 460805, 394802, None))
    for protocol, role in (("TLS 1.2", "Client"), ("TLS 1.2", "Server"), ("TLS 1.0", "Client"),
                           ("TLS 1.1", "Client"), ("TLS 1.3", "Client")):
        for name in ("Enabled", "DisabledByDefault"):
            registry += flag(f"{SCHANNEL}{protocol}\\{role}", name)
    for view in NETFX:
        for clr in ("v4.0.30319", "v2.0.50727"):
            for name in ("SchUseStrongCrypto", "SystemDefaultTlsVersions"):
                registry += flag(view + clr, name)
    for view in WINHTTP:
        registry += flag(view, "DefaultSecureProtocols", (None, 0x20, 0x80, 0xA0, 0x800, 0xA80, 0x2800))
    if draw(st.booleans()):
        registry.append(draw(value_strategy(CIPHER_POLICY, "Functions")))
    host = draw(host_facts()).to_dict()
    version, sp, product = draw(st.sampled_from(OSES_WITH_TLS12))
    host["os"].update(version=version, service_pack=sp, product_type=product)
    host["hotfixes"] = sorted(set(host["hotfixes"]) | {"KB4019276"})
    host["registry"] = registry
    host["powershell"]["windows_powershell"] = draw(st.sampled_from(["5.1.14409.1005", "5.1.17763.316", "2.0"]))
    return facts_module.from_dict(host)


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_not_weakening(change, host):
    assert change.type == "REG_DWORD"
    assert not change.path.upper().startswith("HKLM\\SOFTWARE\\POLICIES\\"), change
    current = host.registry.get(change.path, change.name)
    assert current is None or not current.policy, f"wrote a Group Policy value: {change}"
    if "\\SCHANNEL\\" in change.path.upper():
        assert not any(p in change.path for p in LEGACY), f"touched a legacy protocol: {change}"
        assert "\\TLS 1.2\\" in change.path or "\\TLS 1.3\\" in change.path
        if change.name == "Enabled":
            assert change.data != 0
        else:
            assert change.name == "DisabledByDefault" and change.data == 0
    elif change.path.upper().endswith("\\WINHTTP"):
        before = current.data if current is not None and current.type == "REG_DWORD" else WINHTTP_OS_DEFAULT_OLD
        assert change.data & 0x0800
        assert not change.data & WINHTTP_SSL
        assert not change.data & ~before & WINHTTP_LEGACY_TLS, f"enabled a legacy TLS version: {change}"
    else:
        assert change.name in ("SchUseStrongCrypto", "SystemDefaultTlsVersions") and change.data == 1


@PROPERTY_SETTINGS
@given(host=host_facts(), profile=st.sampled_from(["minimal", "recommended"]))
def test_no_generated_host_gets_a_weakening_change(host, profile):
    for change in assess(host, profile).changes:
        assert_not_weakening(change, host)


@PROPERTY_SETTINGS
@given(host=st.one_of(host_facts(), worked_on_host_facts()), profile=st.sampled_from(["minimal", "recommended"]))
def test_every_planned_value_is_one_a_rollback_may_restore(host, profile):
    planned = {(path.casefold(), name.casefold()) for path, name in values_planned()}
    assert planned <= {(path.casefold(), name.casefold()) for path, name in values_read()}
    for change in assess(host, profile).changes:
        assert (change.path.casefold(), change.name.casefold()) in planned, change


@PROPERTY_SETTINGS
@given(host=st.one_of(host_facts(), worked_on_host_facts()), profile=st.sampled_from(["minimal", "recommended"]))
def test_applying_a_plan_leaves_nothing_more_to_change(host, profile):
    verdict = assess(host, profile)
    after = host.with_registry(RemediationPlan.from_verdict(verdict, host).apply_to(host.registry))
    again = assess(after, profile)
    assert again.changes == ()
    if not verdict.blockers:
        assert "fails" not in (again.clients["windows_powershell"], again.clients["pwsh"]), again.findings


@PROPERTY_SETTINGS
@given(host=host_facts(), profile=st.sampled_from(["minimal", "recommended"]))
def test_rollback_restores_the_original_registry(host, profile):
    plan = RemediationPlan.from_verdict(assess(host, profile), host)
    assert plan.rollback(plan.apply_to(host.registry)) == host.registry


@PROPERTY_SETTINGS
@given(host=host_facts())
def test_facts_survive_a_json_round_trip(host):
    assert facts_module.loads(host.dumps()) == host


def working_clients(host):
    """Every client the engine models that signs in to Entra, by client and registry view."""
    model = HostModel(host)
    views = (False, True) if host.os.architecture != "x86" else (False,)
    clients = {("windows_powershell", wow64): model.windows_powershell(wow64) for wow64 in views}
    clients[("pwsh", False)] = model.pwsh()
    clients.update({("winhttp", wow64): model.winhttp(wow64) for wow64 in views})
    return {client for client, prediction in clients.items() if prediction.state == "ok"}


def assert_no_plan_makes_a_working_client_fail(host):
    working = working_clients(host)
    for profile in ("minimal", "recommended"):
        verdict = assess(host, profile)
        after = host.with_registry(RemediationPlan.from_verdict(verdict, host).apply_to(host.registry))
        assert working <= working_clients(after), (profile, verdict.changes)


@PROPERTY_SETTINGS
@given(host=host_facts())
def test_no_planned_change_set_makes_a_working_client_fail(host):
    assert_no_plan_makes_a_working_client_fail(host)


@settings(PROPERTY_SETTINGS, max_examples=500)
@given(host=worked_on_host_facts())
@example(host=facts_module.load(FACTS / "win7_gpo_tls12_off_by_default_strong_crypto.json"))
@example(host=facts_module.load(FACTS / "ws2016_gpo_tls12_off_by_default_pwsh.json"))
def test_no_planned_change_set_makes_a_working_client_fail_on_hosts_already_worked_on(host):
    assert_no_plan_makes_a_working_client_fail(host)
