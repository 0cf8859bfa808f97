"""``--emit-limit``: an expression the real inventory selection (what ``tls-runbook run --limit`` calls) turns into
exactly the hosts the sign-ins map to, and never an empty one (which would select every host)."""

import pytest
from scope_files import ENTRA_JSON, INVENTORY, LA_JSON, scope_cli

from runbook_lib.remote.inventory import load_inventory
from runbook_lib.scope.mapping import NoHostToLimit, limit_expression


def selected(inventory_path, expression):
    return sorted(h.name for h in load_inventory(inventory_path).select(expression))


def test_emitted_limit_selects_exactly_the_hosts_found():
    result = scope_cli(*ENTRA_JSON, "--inventory", INVENTORY, "--emit-limit")
    assert result.returncode == 0, result.stderr
    expression = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1
    assert selected(INVENTORY, expression) == ["srv01", "srv02", "srv03.contoso.com"]  # srv04 is left out


def test_emitted_limit_for_a_window_after_the_fix_names_only_the_host_still_failing():
    result = scope_cli(LA_JSON, "--since", "2026-11-20", "--inventory", INVENTORY, "--emit-limit")
    assert selected(INVENTORY, result.stdout.strip()) == ["srv02"]


def test_a_host_named_like_a_group_is_selected_alone(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nweb tls_runbook_egress=203.0.113.7\napi\n[db]\nsql01\n")
    inventory = load_inventory(path)
    expression = limit_expression(inventory, ["web"])
    assert selected(path, expression) == ["web"]  # the term "web" alone would also select api through group web
    assert selected(path, limit_expression(inventory, ["web", "sql01"])) == ["sql01", "web"]


def test_hosts_no_pattern_can_name_exactly_are_refused_rather_than_approximated(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nweb\napi\n[api]\nweb\n")  # "!api" would also drop web, a member of group api
    with pytest.raises(NoHostToLimit, match="run them by name instead: web"):
        limit_expression(load_inventory(path), ["web"])


def test_no_host_found_prints_nothing_and_fails(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    srv09:\n      tls_runbook_egress: [192.0.2.200]\n")
    result = scope_cli(*ENTRA_JSON, "--inventory", path, "--emit-limit")
    assert result.returncode == 1 and result.stdout == ""
    assert "no inventory host matches" in result.stderr and len(result.stderr.splitlines()) == 1


def test_device_names_match_host_names_short_or_qualified_but_never_addresses(tmp_path):
    from runbook_lib.scope.mapping import HostMap

    path = tmp_path / "hosts.yml"
    path.write_text("hosts:\n  - name: srv01.contoso.com\n  - name: SRV02\n  - name: web\n    address: 10.0.0.5\n"
                    "  - name: srv03.fabrikam.com\n")
    host_map = HostMap(load_inventory(path))
    assert host_map.hosts_for("device", "SRV01") == ("srv01.contoso.com",)
    assert host_map.hosts_for("device", "srv02.contoso.com") == ("SRV02",)
    assert host_map.hosts_for("device", "srv03.contoso.com") == ()  # another domain is another machine
    assert host_map.hosts_for("device", "10") == ()
    assert host_map.hosts_for("device", "WEB") == ("web",)
