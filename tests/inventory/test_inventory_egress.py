"""``tls_runbook_egress``: the addresses a host's sign-ins reach Entra from, as a host or group variable, checked."""

import pytest

from runbook_lib.core.errors import InputError
from runbook_lib.remote.inventory import load_inventory


def egress(path) -> dict[str, tuple[str, ...]]:
    return {host.name: host.egress for host in load_inventory(path).hosts}


def test_ansible_ini_host_list_and_group_variable_with_host_override(write_inventory):
    path = write_inventory("hosts.ini", """
[legacy]
srv01 tls_runbook_egress="['203.0.113.7', '2001:db8::/32']"
srv02
[legacy:vars]
tls_runbook_egress=198.51.100.16/28
[other]
srv03
""")
    assert egress(path) == {"srv01": ("203.0.113.7/32", "2001:db8::/32"), "srv02": ("198.51.100.16/28",),
                            "srv03": ()}


def test_ansible_yaml_group_list(write_inventory):
    path = write_inventory("hosts.yml", """
all:
  children:
    nat:
      vars:
        tls_runbook_egress: [203.0.113.7, 198.51.100.0/24]
      hosts:
        srv01:
        srv02:
          tls_runbook_egress: 192.0.2.1
""")
    assert egress(path) == {"srv01": ("203.0.113.7/32", "198.51.100.0/24"), "srv02": ("192.0.2.1/32",)}


def test_native_yaml_vars_and_defaults_and_csv_cells(write_inventory):
    native = write_inventory("fleet.yml", """
defaults:
  vars: {tls_runbook_egress: 192.0.2.0/24}
hosts:
  - name: srv01
    vars: {tls_runbook_egress: [203.0.113.7]}
  - name: srv02
""")
    assert egress(native) == {"srv01": ("203.0.113.7/32",), "srv02": ("192.0.2.0/24",)}
    table = write_inventory("fleet.csv", "name,tls_runbook_egress\nsrv01,203.0.113.7; 198.51.100.0/24\nsrv02,\n")
    assert egress(table) == {"srv01": ("203.0.113.7/32", "198.51.100.0/24"), "srv02": ()}


@pytest.mark.parametrize("value, shown", [
    ("srv-nat.contoso.com", "'srv-nat.contoso.com'"),  # a name, not an address
    ("198.51.100.7/24", "'198.51.100.7/24'"),  # host bits set: a typo for .0/24 or for the single address
    ("300.1.1.1", "'300.1.1.1'"),
])
def test_a_value_that_is_not_an_address_or_range_is_one_line_naming_host_and_value(write_inventory, value, shown):
    path = write_inventory("hosts.ini", f"[w]\nsrv01 tls_runbook_egress={value}\n")
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("inventory hosts.ini: host 'srv01': tls_runbook_egress: " + shown)


def test_a_mapping_is_refused(write_inventory):
    path = write_inventory("hosts.yml", "all:\n  hosts:\n    srv01:\n      tls_runbook_egress: {a: 1}\n")
    with pytest.raises(InputError, match="tls_runbook_egress must be a list of IP addresses or CIDR ranges"):
        load_inventory(path)
