"""The runbook's own YAML and CSV, format detection, and the Inventory API."""

from __future__ import annotations

import hashlib

import pytest

from runbook_lib.core.errors import InputError
from runbook_lib.remote.inventory import HostEntry, load_inventory


def test_runbook_yaml_maps_every_field_and_applies_defaults(fixture_path):
    inventory = load_inventory(fixture_path("runbook_hosts.yml"))
    assert inventory.format == "tls-runbook-yaml"
    web, legacy, sql = inventory.hosts
    assert web == HostEntry("web01.contoso.com", "web01.contoso.com", None, "http", "ntlm", "env:FLEET", None, True,
                            None, ("web", "production"), {"site": "hq", "reboot_ok": False})
    assert (legacy.address, legacy.port, legacy.scheme, legacy.validate_certificate, legacy.ca_trust_path) == (
        "10.0.5.20", 5986, "https", False, "C:\\certs\\contoso-root.pem")
    assert legacy.variables == {"site": "branch", "reboot_ok": False, "profile": "ws2008r2"}
    assert (sql.scheme, sql.port, sql.auth, sql.credential, sql.username) == (
        "https", None, "kerberos", "prompt", "CONTOSO\\svc-tls")


def test_csv_maps_columns_groups_and_extra_columns_as_variables(fixture_path):
    inventory = load_inventory(fixture_path("hosts.csv"))
    assert inventory.format == "csv"
    web, legacy, sql = inventory.hosts
    assert (web.name, web.credential, web.groups, web.variables) == (
        "WEB01.contoso.com", "env:TLS_RUNBOOK", ("web", "production"), {"site": "hq"})
    assert (legacy.port, legacy.scheme, legacy.validate_certificate, legacy.ca_trust_path) == (
        5986, "https", False, "C:\\certs\\root.pem")
    assert legacy.variables == {"profile": "ws2008r2"}
    assert (sql.auth, sql.credential, sql.username, sql.groups, sql.variables) == (
        "kerberos", "prompt", "CONTOSO\\svc-tls", ("sql", "production"), {"site": "dc, hall 2"})


def test_csv_header_is_case_and_space_insensitive(write_inventory):
    path = write_inventory("fleet.csv", " Name , Port ,Profile\nweb01,5986,legacy\n")
    host, = load_inventory(path).hosts
    assert (host.port, host.scheme, host.variables) == (5986, "https", {"profile": "legacy"})


def test_digest_is_sha256_of_the_file_bytes(fixture_path):
    path = fixture_path("hosts.csv")
    assert load_inventory(path).digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_is_parsed_again_only_when_its_bytes_changed(write_inventory, monkeypatch):
    """A notebook loads the inventory twice and a worker once more: hundreds of hosts parsed three times each."""
    from runbook_lib.remote import inventory as inventory_module

    parsed = []
    parse = inventory_module.parse
    monkeypatch.setattr(inventory_module, "parse", lambda *args: parsed.append(1) or parse(*args))
    path = write_inventory("hosts.yml", "hosts:\n  - name: web01\n")
    first, second = load_inventory(path), load_inventory(path)
    assert second is first and len(parsed) == 1
    write_inventory("hosts.yml", "hosts:\n  - name: web02\n")
    assert [h.name for h in load_inventory(path).hosts] == ["web02"] and len(parsed) == 2
    write_inventory("hosts.yml", "hosts:\n  - name: [web03\n")
    with pytest.raises(InputError):
        load_inventory(path)  # a file broken since is refused, not answered from before
    assert len(parsed) == 3


@pytest.mark.parametrize("name", ["hosts", "inventory", "prod.ini", "site.cfg", "fleet.txt"])
def test_files_without_a_yaml_or_csv_extension_are_read_as_ansible_ini(write_inventory, name):
    path = write_inventory(name, "[web]\nweb01 ansible_port=5985\n")
    inventory = load_inventory(path)
    assert inventory.format == "ansible-ini"
    assert inventory.hosts[0].port == 5985


@pytest.mark.parametrize("name", ["hosts", "production"])
def test_yaml_content_without_extension_is_read_as_yaml(write_inventory, name):
    path = write_inventory(name, "# fleet\nall:\n  hosts:\n    web01:\n")
    assert load_inventory(path).format == "ansible-yaml"


def test_yaml_with_hosts_list_is_the_runbook_format_else_ansible(write_inventory):
    native = write_inventory("a.yaml", "hosts:\n  - name: web01\n")
    ansible = write_inventory("b.yaml", "web:\n  hosts:\n    web01:\n")
    assert load_inventory(native).format == "tls-runbook-yaml"
    assert load_inventory(ansible).format == "ansible-yaml"


def test_runbook_format_defaults_to_http_unless_port_5986(write_inventory):
    path = write_inventory("f.yml", "hosts:\n  - {name: a}\n  - {name: b, port: 5986}\n  - {name: c, port: 8080}\n"
                                    "  - {name: d, scheme: HTTPS}\n")
    assert [(h.scheme, h.port) for h in load_inventory(path).hosts] == [
        ("http", None), ("https", 5986), ("http", 8080), ("https", None)]


def test_runbook_format_host_values_override_defaults_and_vars_merge(write_inventory):
    path = write_inventory("f.yml", "defaults:\n  auth: kerberos\n  groups: [fleet]\n  vars: {a: 1, b: 2}\n"
                                    "hosts:\n  - name: web01\n    auth: credssp\n    groups: [web]\n"
                                    "    vars: {b: 3}\n  - name: web02\n")
    first, second = load_inventory(path).hosts
    assert (first.auth, first.groups, first.variables) == ("credssp", ("web",), {"a": 1, "b": 3})
    assert (second.auth, second.groups, second.variables) == ("kerberos", ("fleet",), {"a": 1, "b": 2})


def test_utf16_with_bom_from_windows_powershell_is_read(write_inventory):
    path = write_inventory("hosts.csv", "name,site\r\nweb01,hq\r\n".encode("utf-16"))
    assert load_inventory(path).hosts[0].variables == {"site": "hq"}


def test_get_is_case_insensitive(fixture_path):
    inventory = load_inventory(fixture_path("hosts.csv"))
    assert inventory.get("web01.CONTOSO.com").name == "WEB01.contoso.com"


def test_get_unknown_host_names_it(fixture_path):
    with pytest.raises(InputError, match=r"^inventory hosts\.csv: no host 'web99'$"):
        load_inventory(fixture_path("hosts.csv")).get("web99")


def test_groups_lists_members_with_implicit_all_and_ungrouped(fixture_path):
    groups = load_inventory(fixture_path("runbook_hosts.yml")).groups
    assert groups == {"all": ("web01.contoso.com", "legacy01", "sql01.contoso.com"), "ungrouped": ("legacy01",),
                      "web": ("web01.contoso.com",), "production": ("web01.contoso.com", "sql01.contoso.com"),
                      "sql": ("sql01.contoso.com",)}


def test_host_entries_are_hashable_despite_their_variables(fixture_path):
    hosts = load_inventory(fixture_path("runbook_hosts.yml")).hosts
    assert len(set(hosts)) == 3
