"""Bad input is one InputError line naming the file and the place; passwords and vault values are refused."""

from __future__ import annotations

import json

import keyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyring.backends.fail import Keyring as NoKeyring

from runbook_lib.core.errors import CredentialError, InputError
from runbook_lib.remote.inventory import MAX_INVENTORY_BYTES, load_inventory
from runbook_lib.remote.credentials import reference_problem
from runbook_lib.remote.credentials import resolve_credential

SECRET = "Fl33t-S3cret!fixture"  # the password written into every password fixture
BY_REFERENCE = ("is refused; pass it by reference: set tls_runbook_credential (or credential:) to env:PREFIX (reads "
                "PREFIX_USER and PREFIX_PASSWORD), keyring:SERVICE/USER or prompt")


def refusal(path) -> str:
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("name, where, key", [
    ("password_ini_host.ini", "host 'web01.contoso.com'", "ansible_password"),
    ("password_ini_group_vars.ini", "group 'windows'", "ansible_winrm_password"),
    ("password_ini_all_vars.ini", "group 'all'", "ansible_become_pass"),
    ("password_yaml_group_vars.yml", "group 'windows'", "ansible_password"),
    ("password_yaml_host.yml", "host 'web01.contoso.com'", "ansible_ssh_pass"),
    ("password_yaml_nested.yml", "host 'web01.contoso.com'", "password"),
    ("password_native_defaults.yml", "defaults", "password"),
    ("password_native_host.yml", "host 'web01.contoso.com'", "ansible_become_password"),
    ("password_native_vars.yml", "host 'web01.contoso.com'", "ansible_password"),
    ("password_column.csv", "CSV header", "password"),
])
def test_plain_text_password_is_refused_by_reference_without_its_value(fixture_path, name, where, key):
    message = refusal(fixture_path(name))
    assert message == f"inventory {name}: {where}: a plain-text password in '{key}' {BY_REFERENCE}"
    assert SECRET not in message


@pytest.mark.parametrize("key", ["ansible_ssh_password", "ansible_winrm_pass", "ansible_sudo_pass", "db_passwd",
                                 "ansible_ssh_private_key_passphrase", "PASSWORD"])
def test_every_password_like_key_is_refused(write_inventory, key):
    message = refusal(write_inventory("hosts", f"web01 {key}={SECRET}\n"))
    assert f"a plain-text password in '{key}'" in message and SECRET not in message


@pytest.mark.parametrize("key", ["compass_heading", "bypass_proxy", "passive_mode"])
def test_keys_merely_containing_pass_are_variables(write_inventory, key):
    assert load_inventory(write_inventory("hosts", f"web01 {key}=1\n")).hosts[0].variables == {key: 1}


def test_vault_tag_is_refused_with_its_line(fixture_path):
    assert refusal(fixture_path("vault_tag.yml")) == (
        f"inventory vault_tag.yml: line 3: an Ansible Vault value (!vault) {BY_REFERENCE}")


def test_vault_text_in_an_ini_value_is_refused(fixture_path):
    message = refusal(fixture_path("vault_value.ini"))
    assert message.startswith("inventory vault_value.ini: group 'windows': an Ansible Vault value in 'service_token'")
    assert "6231336539666234306139346433" not in message


def test_vault_encrypted_file_is_refused(fixture_path):
    assert "an Ansible Vault encrypted file is refused" in refusal(fixture_path("vault_file.yml"))


def test_password_pasted_as_credential_is_not_echoed(fixture_path):
    message = refusal(fixture_path("credential_is_a_password.yml"))
    assert "unknown credential reference; use env:PREFIX" in message and SECRET not in message


@pytest.mark.parametrize("text", [
    f"[windows]\nweb01 ansible_password = {SECRET}\n",       # spaces around '=': not key=value
    f"[windows:vars]\nansible_password: {SECRET}\n",          # YAML habit in INI
    f"[windows]\nweb01 ansible_password='{SECRET}\n",          # unbalanced quote
    f"[windows:vars]\n{SECRET}\n",
])
def test_malformed_lines_near_a_password_do_not_echo_it(write_inventory, text):
    assert SECRET not in refusal(write_inventory("hosts", text))


def test_bad_yaml_names_the_line(fixture_path):
    message = refusal(fixture_path("bad_yaml.yml"))
    assert message.startswith("inventory bad_yaml.yml: bad YAML at line 7:")


def test_duplicate_hosts_in_runbook_yaml_are_named(fixture_path):
    assert refusal(fixture_path("duplicate_hosts.yml")) == (
        "inventory duplicate_hosts.yml: host 'WEB01.contoso.com' is listed twice (also as 'web01.contoso.com')")


def test_duplicate_hosts_in_csv_are_named(fixture_path):
    assert refusal(fixture_path("duplicate_hosts.csv")) == "inventory duplicate_hosts.csv: host 'web01' is listed twice"


def test_unknown_key_is_named(fixture_path):
    assert refusal(fixture_path("unknown_key.yml")).startswith(
        "inventory unknown_key.yml: host 'web01.contoso.com': unknown key 'adress'; expected name, address,")


def test_hostile_host_name_in_ini_is_refused(fixture_path):
    assert refusal(fixture_path("hostile_names.ini")).startswith(
        "inventory hostile_names.ini: host 'web02$(Invoke-Expression).contoso.com': name must be a DNS name")


HOSTILE = ["web01;calc", "web01 & calc", "$(calc)", "`calc`", "web'01", 'web"01', "web01|calc", "web\u000a01",
           "-web01", "web01\u2028", "a" * 254, "web01/wsman", "web01@evil", "web01\\calc", "wéb01"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_and_addresses_are_refused_in_every_format(write_inventory, name):
    quoted = json.dumps(name)  # a JSON string is a YAML double-quoted scalar
    for path in (write_inventory("a.yml", f"hosts:\n  - name: {quoted}\n"),
                 write_inventory("b.yml", f"hosts:\n  - name: web01\n    address: {quoted}\n"),
                 write_inventory("c.yml", f"all:\n  hosts:\n    web01:\n      ansible_host: {quoted}\n"),
                 write_inventory("d.yml", f"all:\n  hosts:\n    {quoted}:\n")):
        message = refusal(path)
        assert "must be a DNS name" in message


@pytest.mark.parametrize("text", ["hosts:\n  - name: ''\n", "name,site\n,hq\n", "all:\n  hosts:\n    '':\n"])
def test_empty_host_names_are_refused(write_inventory, text):
    path = write_inventory("f.csv" if text.startswith("name") else "f.yml", text)
    assert "host '': name must be a DNS name" in refusal(path)


@pytest.mark.parametrize("group", ["web;calc", "$(calc)", "`x`", "web'x"])
def test_hostile_group_names_are_refused(write_inventory, group):
    quoted = '"' + group.replace('"', '\\"') + '"'
    for path in (write_inventory("a.yml", f"hosts:\n  - name: web01\n    groups: [{quoted}]\n"),
                 write_inventory("b.yml", f"{quoted}:\n  hosts:\n    web01:\n"),
                 write_inventory("c.csv", f"name,groups\nweb01,{group.replace(';', '!')}\n")):
        assert "a group name uses letters, digits" in refusal(path)


@pytest.mark.parametrize("field, value, message", [
    ("port", "0", "port must be a number from 1 to 65535, got 0"),
    ("port", "65536", "port must be a number from 1 to 65535"),
    ("port", "http", "port must be a number from 1 to 65535, got 'http'"),
    ("port", "true", "port must be a number from 1 to 65535, got True"),
    ("scheme", "ftp", "scheme must be http or https, got 'ftp'"),
    ("auth", "digest", "auth 'digest' is not one of ntlm, kerberos, credssp, basic, certificate"),
    ("auth", "[]", "auth [] is not one of"),
    ("credential", "vault:secret/tls", "unknown credential reference 'vault'; use env:PREFIX"),
    ("credential", "env:1BAD", "credential reference env:PREFIX needs a PREFIX of letters"),
    ("credential", "keyring:svc/", "credential reference must be keyring:SERVICE or keyring:SERVICE/USER"),
    ("validate_certificate", "maybe", "validate_certificate must be true/false"),
    ("username", '"a\\tb"', "username must be one line of printable text"),
    ("ca_trust_path", '"a\\nb"', "ca_trust_path must be one line of printable text"),
    ("groups", "web", "groups must be a list of group names"),
    ("vars", "[a]", "vars must be a mapping"),
    ("vars", "{a: [1]}", "vars: 'a' must be a name with a text, number or true/false value"),
])
def test_bad_field_values_are_named(write_inventory, field, value, message):
    path = write_inventory("f.yml", f"hosts:\n  - name: web01\n    {field}: {value}\n")
    assert refusal(path).startswith(f"inventory f.yml: host 'web01': {message}")


@pytest.mark.parametrize("text, message", [
    ("hosts:\n  - web01\n", "hosts item 1: expected a mapping with name:"),
    ("hosts: []\nversion: 2\n", "unknown top-level key 'version'"),
    ("defaults:\n  name: x\nhosts: []\n", "defaults: unknown key 'name'"),
    ("defaults: [1]\nhosts: []\n", "defaults must be a mapping"),
    ("defaults: {}\nhosts: {web01: {}}\n", "hosts must be a list"),
    ("hosts: []\n", "no hosts in it"),
])
def test_malformed_runbook_yaml_is_named(write_inventory, text, message):
    assert message in refusal(write_inventory("f.yml", text))


@pytest.mark.parametrize("text, message", [
    ("address,port\nweb01,5986\n", "the CSV header row needs a name column"),
    ("name,,site\nweb01,x,hq\n", "CSV column 2 has no name"),
    ("name,site,Site\nweb01,a,b\n", "CSV column 'site' appears twice"),
    ("name\nweb01,extra\n", "line 2: more fields than the header row"),
    ("name\n", "no hosts in it"),
    ("name,port\nweb01,59 86\n", "host 'web01': port must be a number"),
])
def test_malformed_csv_is_named(write_inventory, text, message):
    assert message in refusal(write_inventory("f.csv", text))


@pytest.mark.parametrize("name, content, message", [
    ("hosts", b"", "inventory hosts: no hosts in it"),
    ("hosts.yml", b"# nothing yet\n", "inventory hosts.yml: no hosts in it"),
    ("hosts", b"[web]\n[sql]\n", "inventory hosts: no hosts in it"),
    ("hosts", b"[web]\nweb\xff01\n", "inventory hosts: not UTF-8 text (byte 9)"),
    ("hosts.yml", b"\xff\xfe" + b"\x00\xd8", "inventory hosts.yml: not UTF-8 text (byte 2)"),
])
def test_unreadable_or_empty_files_are_input_errors(write_inventory, name, content, message):
    assert refusal(write_inventory(name, content)) == message


def test_files_over_5_mib_are_refused_before_parsing(write_inventory):
    path = write_inventory("hosts", b"#" * (MAX_INVENTORY_BYTES + 1))
    assert refusal(path) == "inventory hosts: larger than 5 MiB"


def test_missing_file_is_an_input_error(tmp_path):
    assert refusal(tmp_path / "nope.ini").startswith("inventory nope.ini: cannot read it:")


def test_deeply_nested_yaml_is_an_input_error(write_inventory):
    assert refusal(write_inventory("hosts.yml", "[" * 5000)).startswith("inventory hosts.yml: ")


def test_yaml_alias_bomb_is_refused_quickly(write_inventory):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "all:\n  vars:\n" + "".join(f"    {line}\n" for line in lines) + "    password: x\n  hosts:\n    h:\n"
    assert "a plain-text password in 'password'" in refusal(write_inventory("hosts.yml", text))


# --- credential references agree with resolve_credential ----------------------------------------------------
@given(st.one_of(
    st.text(max_size=30),
    st.builds(lambda s, r: s + r, st.sampled_from(["env:", "keyring:", "prompt", "prompt:", "env", "Env:"]),
              st.text(alphabet="ab_1/\\: -$", max_size=12)),
))
@settings(max_examples=300, deadline=None)
def test_reference_check_accepts_exactly_what_resolve_credential_accepts(reference):
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        resolve_credential(reference, environ={}, ask_user=lambda _: "", ask_password=lambda _: "")
        expected = None
    except CredentialError:
        expected = None
    except InputError as exc:
        expected = str(exc)
    finally:
        keyring.set_keyring(previous)
    assert reference_problem(reference) == expected


def test_yaml_inventories_are_parsed_by_libyaml_where_pyyaml_has_it_with_the_same_refusals(write_inventory):
    """Every notebook of every host reads the whole inventory: the C parser keeps that small at fleet width."""
    import yaml

    from runbook_lib.remote.inventory_formats import _Loader

    assert yaml.__with_libyaml__, "PyYAML without LibYAML: the inventories parse in pure Python"
    assert issubclass(_Loader, yaml.CSafeLoader)
    duplicate = write_inventory("inventory.yml", "hosts:\n  - name: web01\n    name: web02\n")
    assert "line 3: key 'name' appears twice" in refusal(duplicate)
