"""Ansible INI and YAML inventories read as Ansible reads them (checked against ansible-inventory 2.x --list)."""

from __future__ import annotations

import pytest

from runbook_lib.core.errors import InputError
from runbook_lib.remote.inventory import load_inventory


def hosts_by_name(path):
    return {host.name: host for host in load_inventory(path).hosts}


# --- the committed INI inventory --------------------------------------------------------------------------------
@pytest.fixture
def ini(fixture_path):
    return hosts_by_name(fixture_path("ansible_hosts.ini"))


def test_ini_keeps_file_order_and_expands_ranges(fixture_path):
    assert [h.name for h in load_inventory(fixture_path("ansible_hosts.ini")).hosts] == [
        "dc01.contoso.com", "dc02.contoso.com", "web01.contoso.com", "web02.contoso.com", "web03.contoso.com",
        "legacy-web", "sql01.contoso.com"]


def test_ini_ansible_host_is_the_address(ini):
    assert ini["dc01.contoso.com"].address == "10.0.0.10"
    assert ini["web02.contoso.com"].address == "web02.contoso.com"


def test_ini_group_vars_port_5986_means_https_and_ignore_disables_validation(ini):
    web = ini["web02.contoso.com"]
    assert (web.port, web.scheme, web.validate_certificate) == (5986, "https", False)


def test_ini_host_vars_override_group_vars(ini):
    legacy = ini["legacy-web"]
    assert (legacy.address, legacy.port, legacy.scheme) == ("10.0.1.50", 5985, "http")
    assert legacy.variables["profile"] == "ws2008r2"
    assert ini["dc02.contoso.com"].variables["site"] == "branch"


def test_ini_host_colon_port_transport_user_and_trust_path(ini):
    sql = ini["sql01.contoso.com"]
    assert (sql.port, sql.scheme, sql.auth, sql.username) == (5986, "https", "kerberos", "svc-tls@CONTOSO.COM")
    assert (sql.validate_certificate, sql.ca_trust_path) == (True, "/etc/pki/contoso-root.pem")


def test_ini_tls_runbook_credential_sets_the_reference_and_other_ansible_vars_are_dropped(ini):
    dc = ini["dc01.contoso.com"]
    assert dc.credential == "env:FLEET"
    assert dc.variables == {"site": "hq", "owner": "Platform Team"}


def test_ini_group_vars_merge_by_depth_as_ansible_does(ini):
    # web (depth 3) beats servers (2), iis (1) and all (0); sql only has servers and all.
    assert ini["web01.contoso.com"].variables == {"site": "dmz", "owner": "Platform Team", "patch_window": "sunday",
                                                  "iis_version": 8.5}
    assert ini["sql01.contoso.com"].variables["site"] == "datacenter"


def test_ini_groups_include_parents_through_children(ini):
    assert ini["web01.contoso.com"].groups == ("iis", "production", "servers", "web")
    assert ini["dc01.contoso.com"].groups == ("domain_controllers", "production")


def test_ini_without_scheme_or_port_uses_ansible_default_https(ini):
    dc = ini["dc01.contoso.com"]
    assert (dc.port, dc.scheme, dc.auth, dc.validate_certificate) == (None, "https", "ntlm", True)


# --- the committed YAML inventory -------------------------------------------------------------------------------
@pytest.fixture
def yml(fixture_path):
    return hosts_by_name(fixture_path("ansible_hosts.yml"))


def test_yaml_hosts_directly_under_all_are_ungrouped(fixture_path, yml):
    assert yml["jump01.contoso.com"].groups == ()
    assert load_inventory(fixture_path("ansible_hosts.yml")).groups["ungrouped"] == ("jump01.contoso.com",)


def test_yaml_transport_list_takes_the_first_supported(yml):
    assert yml["app01.contoso.com"].auth == "kerberos"


def test_yaml_plaintext_means_basic_and_comma_string_is_a_list(yml):
    assert yml["kiosk-a"].auth == "basic"
    assert yml["kiosk-b"].auth == "basic"
    assert (yml["kiosk-a"].port, yml["kiosk-a"].scheme) == (15986, "https")


def test_yaml_child_group_vars_override_parent_and_all(yml):
    assert (yml["dc01.contoso.com"].variables, yml["app01.contoso.com"].variables["tier"]) == (
        {"maintenance": False, "tier": 0}, 2)
    assert yml["dc01.contoso.com"].validate_certificate is False  # windows overrides all's validate
    assert yml["jump01.contoso.com"].validate_certificate is True


def test_yaml_host_vars_map_credssp_user_and_trust_path(yml):
    file01 = yml["file01.contoso.com"]
    assert (file01.auth, file01.username, file01.validate_certificate, file01.ca_trust_path) == (
        "credssp", "CONTOSO\\svc-tls", True, "/etc/pki/contoso-root.pem")
    assert file01.credential == "keyring:tls-runbook/CONTOSO\\svc-tls"


def test_yaml_float_and_bool_variables_survive(yml):
    assert yml["kiosk-a"].variables == {"maintenance": False, "weight": 0.5}


# --- precedence and mapping details -------------------------------------------------------------------------
PRECEDENCE = """\
[all:vars]
x=all
[beta]
h1
[alpha]
h1
[alpha:vars]
x=alpha
y=alpha
[beta:vars]
x=beta
[gamma]
h1 z=host
h2
[gamma:vars]
x=gamma
ansible_group_priority=0
y=gamma
z=gamma
[deep:children]
alpha
[deep:vars]
x=deep
"""


def test_precedence_depth_then_priority_then_name_then_host(write_inventory):
    # Same result as ansible-inventory: alpha is deepest; gamma's low priority loses to alpha at equal depth;
    # a host variable beats every group.
    hosts = hosts_by_name(write_inventory("hosts", PRECEDENCE))
    assert hosts["h1"].variables == {"x": "alpha", "y": "alpha", "z": "host"}
    assert hosts["h2"].variables == {"x": "gamma", "y": "gamma", "z": "gamma"}


def test_same_depth_groups_are_merged_by_name(write_inventory):
    hosts = hosts_by_name(write_inventory("hosts", "[b]\nh1\n[a]\nh1\n[a:vars]\nx=a\n[b:vars]\nx=b\n"))
    assert hosts["h1"].variables == {"x": "b"}


def test_group_priority_beats_name_at_equal_depth(write_inventory):
    text = "[b]\nh1\n[a]\nh1\n[a:vars]\nx=a\nansible_group_priority=5\n[b:vars]\nx=b\n"
    assert hosts_by_name(write_inventory("hosts", text))["h1"].variables == {"x": "a"}


def test_host_listed_twice_merges_its_vars_later_line_wins(write_inventory):
    text = "[web]\nweb01 a=1 b=1\n[iis]\nweb01 b=2\n"
    host = hosts_by_name(write_inventory("hosts", text))["web01"]
    assert (host.variables, host.groups) == ({"a": 1, "b": 2}, ("iis", "web"))


def test_ini_values_are_python_literals_quoted_or_not(write_inventory):
    text = "[w]\nweb01 n=5986 f=1.5 t=True s='5986' q=\"two words\" plain=ntlm lead=01\n"
    assert hosts_by_name(write_inventory("hosts", text))["web01"].variables == {
        "n": 5986, "f": 1.5, "t": True, "s": 5986, "q": "two words", "plain": "ntlm", "lead": "01"}


def test_ini_group_vars_keep_quotes_as_ansible_does(write_inventory):
    text = "[w]\nweb01\n[w:vars]\ns='5986'\nspaced = a b\n"
    assert hosts_by_name(write_inventory("hosts", text))["web01"].variables == {"s": "5986", "spaced": "a b"}


def test_ini_hosts_before_any_section_are_ungrouped(write_inventory):
    inventory = load_inventory(write_inventory("hosts", "jump01\n[web]\nweb01\n"))
    assert inventory.groups["ungrouped"] == ("jump01",)
    assert inventory.get("jump01").groups == ()


def test_ini_group_vars_for_a_group_defined_later_apply(write_inventory):
    text = "[web:vars]\nansible_port=5985\n[web]\nweb01\n"
    assert hosts_by_name(write_inventory("hosts", text))["web01"].port == 5985


@pytest.mark.parametrize("pattern, names", [
    ("web[01:03].contoso.com", ["web01.contoso.com", "web02.contoso.com", "web03.contoso.com"]),
    ("web[8:10]", ["web8", "web9", "web10"]),
    ("web[0:6:3]", ["web0", "web3", "web6"]),
    ("web[:1]", ["web0", "web1"]),
    ("rack[a:c]", ["racka", "rackb", "rackc"]),
    ("r[1:2]-n[01:02]", ["r1-n01", "r1-n02", "r2-n01", "r2-n02"]),
])
def test_host_ranges_expand_like_ansible(write_inventory, pattern, names):
    inventory = load_inventory(write_inventory("hosts", f"[web]\n{pattern}\n"))
    assert [h.name for h in inventory.hosts] == names


def test_host_range_with_port(write_inventory):
    hosts = load_inventory(write_inventory("hosts", "[web]\nweb[1:2]:5985 ansible_winrm_scheme=http\n")).hosts
    assert [(h.name, h.port, h.scheme) for h in hosts] == [("web1", 5985, "http"), ("web2", 5985, "http")]


def test_explicit_ansible_port_beats_host_colon_port(write_inventory):
    assert load_inventory(write_inventory("hosts", "web01:5985 ansible_port=5986\n")).hosts[0].port == 5986


def test_yaml_host_keys_expand_ranges_too(write_inventory):
    path = write_inventory("hosts.yml", "web:\n  hosts:\n    web[1:2].contoso.com:5985:\n")
    assert [(h.name, h.port) for h in load_inventory(path).hosts] == [
        ("web1.contoso.com", 5985), ("web2.contoso.com", 5985)]


@pytest.mark.parametrize("transport, auth", [
    ("ntlm", "ntlm"), ("kerberos", "kerberos"), ("credssp", "credssp"), ("basic", "basic"),
    ("certificate", "certificate"), ("plaintext", "basic"), ("ssl", "basic"), ("NTLM", "ntlm"),
    ("'[\"foo\", \"credssp\", \"ntlm\"]'", "credssp"), ("foo,kerberos", "kerberos"),
])
def test_winrm_transport_maps_to_auth(write_inventory, transport, auth):
    path = write_inventory("hosts", f"web01 ansible_winrm_transport={transport}\n")
    assert load_inventory(path).hosts[0].auth == auth


@pytest.mark.parametrize("variables, scheme, port", [
    ("", "https", None),
    ("ansible_port=5985", "http", 5985),
    ("ansible_port=5986", "https", 5986),
    ("ansible_port=8080", "https", 8080),
    ("ansible_winrm_scheme=http", "http", None),
    ("ansible_port=5986 ansible_winrm_scheme=http", "http", 5986),
])
def test_ansible_scheme_defaults_follow_the_winrm_plugin(write_inventory, variables, scheme, port):
    host = load_inventory(write_inventory("hosts", f"web01 {variables}\n")).hosts[0]
    assert (host.scheme, host.port) == (scheme, port)


def test_winrm_specific_aliases_win_over_generic_ones(write_inventory):
    text = "web01 ansible_host=a ansible_winrm_host=b ansible_port=1 ansible_winrm_port=2 ansible_user=u " \
           "ansible_winrm_user=w\n"
    host = load_inventory(write_inventory("hosts", text)).hosts[0]
    assert (host.address, host.port, host.username) == ("b", 2, "w")


def test_non_scalar_and_ansible_vars_are_not_variables(write_inventory):
    path = write_inventory("hosts.yml", "all:\n  hosts:\n    web01:\n      ntp: [a, b]\n      ad: {site: x}\n"
                                        "      ansible_connection: winrm\n      ansible_become_method: runas\n"
                                        "      role: web\n")
    assert load_inventory(path).hosts[0].variables == {"role": "web"}


def test_yaml_unsafe_tag_is_text(write_inventory):
    path = write_inventory("hosts.yml", "all:\n  hosts:\n    web01:\n      note: !unsafe '{{ raw }}'\n")
    assert load_inventory(path).hosts[0].variables == {"note": "{{ raw }}"}


def test_yaml_anchors_and_merge_keys_work(write_inventory):
    text = "all:\n  children:\n    web:\n      vars: &common\n        site: hq\n      hosts:\n" \
           "        web01:\n          <<: *common\n          site: dmz\n    sql:\n      vars: *common\n" \
           "      hosts:\n        sql01:\n"
    hosts = hosts_by_name(write_inventory("hosts.yml", text))
    assert (hosts["web01"].variables, hosts["sql01"].variables) == ({"site": "dmz"}, {"site": "hq"})


@pytest.mark.parametrize("text, message", [
    ("[a:children]\nb\n[b:children]\na\n[a]\nh\n", r"is its own ancestor"),
    ("[web:children]\nall\n[web]\nh\n", r"group 'all' cannot be a child"),
    ("[web:hosts_and_more]\nh\n", r"line 1: section type"),
    ("[web servers]\nh\n", r"line 1: bad section header"),
    ("[web:vars]\nansible_port 5986\n", r"line 2: expected key=value in \[web:vars\]"),
    ("[web]\nweb01 ansible_port\n", r"line 2: expected key=value after the host name"),
    ("[web]\nweb01 note='unclosed\n", r"line 2: unbalanced quotes"),
    ("[web:children]\nsql extra\n", r"line 2: expected one group name"),
    ("[web]\nweb[3:1]\n", r"a range is \[BEGIN:END\]"),
    ("[web]\nweb[01:100]\n", r"zero-padded range"),
    ("[web]\nweb[0:99999999]\n", r"more than 100000 hosts"),
    ("[web]\nweb01:http\n", r"expected NAME or NAME:PORT"),
    ("[web]\nh\n[web:vars]\nansible_group_priority=high\n", r"ansible_group_priority must be a number"),
    ("web01 ansible_winrm_server_cert_validation=maybe\n", r"must be validate or ignore"),
])
def test_malformed_ini_is_one_line_input_error(write_inventory, text, message):
    with pytest.raises(InputError, match=message) as caught:
        load_inventory(write_inventory("hosts", text))
    assert "\n" not in str(caught.value) and str(caught.value).startswith("inventory hosts: ")


@pytest.mark.parametrize("text, message", [
    ("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n", r"dynamic inventory plugin"),
    ("all:\n  host:\n    web01:\n", r"group 'all': unknown key 'host'; expected hosts, children or vars"),
    ("all:\n  hosts:\n    - web01\n", r"group 'all': hosts must be a mapping"),
    ("all:\n  hosts:\n    web01: 5986\n", r"host 'web01': expected a mapping of variables"),
    ("web: [web01]\n", r"group 'web': expected a mapping"),
    ("- web01\n", r"expected a mapping at the top"),
    ("all:\n  hosts:\n    web01:\n    web01:\n", r"line 4: key 'web01' appears twice"),
    ("all:\n  hosts:\n    web01:\n      tag: !!python/object:os.system x\n", r"bad YAML at line 4"),
])
def test_malformed_ansible_yaml_is_one_line_input_error(write_inventory, text, message):
    with pytest.raises(InputError, match=message) as caught:
        load_inventory(write_inventory("hosts.yml", text))
    assert "\n" not in str(caught.value)


def test_names_differing_only_in_case_are_refused(write_inventory):
    with pytest.raises(InputError, match=r"host 'WEB01' is listed twice \(also as 'web01'\)"):
        load_inventory(write_inventory("hosts", "[a]\nweb01\n[b]\nWEB01\n"))
