"""--limit patterns as Ansible reads them, answered in inventory order."""

from __future__ import annotations

import pytest

from runbook_lib.core.errors import InputError
from runbook_lib.remote.inventory import load_inventory


@pytest.fixture
def inventory(fixture_path):
    # dc01 dc02 (domain_controllers) | web01..03 legacy-web (web) | sql01 (sql); web+sql in servers;
    # servers+domain_controllers in production; web01 also in iis.
    return load_inventory(fixture_path("ansible_hosts.ini"))


def names(hosts):
    return [h.name.split(".")[0] for h in hosts]


ALL = ["dc01", "dc02", "web01", "web02", "web03", "legacy-web", "sql01"]


@pytest.mark.parametrize("pattern", [None, "", "  ", "all", "*"])
def test_no_pattern_all_and_star_select_every_host(inventory, pattern):
    assert names(inventory.select(pattern)) == ALL


@pytest.mark.parametrize("pattern, expected", [
    ("sql01.contoso.com", ["sql01"]),
    ("SQL01.Contoso.com", ["sql01"]),
    ("legacy-web", ["legacy-web"]),
    ("web", ["web01", "web02", "web03", "legacy-web"]),
    ("servers", ["web01", "web02", "web03", "legacy-web", "sql01"]),
    ("production", ALL),
    ("ungrouped", None),
])
def test_host_and_group_names(inventory, pattern, expected):
    if expected is None:
        with pytest.raises(InputError, match="matches no host"):
            inventory.select(pattern)
    else:
        assert names(inventory.select(pattern)) == expected


@pytest.mark.parametrize("pattern", ["sql:domain_controllers", "sql,domain_controllers", "sql, domain_controllers",
                                     "domain_controllers:sql:dc01.contoso.com"])
def test_union_is_in_inventory_order_without_duplicates(inventory, pattern):
    assert names(inventory.select(pattern)) == ["dc01", "dc02", "sql01"]


def test_intersection(inventory):
    assert names(inventory.select("web:&iis")) == ["web01"]
    assert names(inventory.select("servers,&web,&iis")) == ["web01"]


def test_exclusion(inventory):
    assert names(inventory.select("web:!iis")) == ["web02", "web03", "legacy-web"]
    assert names(inventory.select("production,!web,!dc02.contoso.com")) == ["dc01", "sql01"]


def test_exclusion_or_intersection_alone_starts_from_all(inventory):
    assert names(inventory.select("!servers")) == ["dc01", "dc02"]
    assert names(inventory.select("&domain_controllers")) == ["dc01", "dc02"]


def test_operators_apply_after_unions_whatever_their_position(inventory):
    assert names(inventory.select("!iis:web")) == ["web02", "web03", "legacy-web"]


@pytest.mark.parametrize("pattern, expected", [
    ("web0*", ["web01", "web02", "web03"]),
    ("*.contoso.com:!web*", ["dc01", "dc02", "sql01"]),
    ("web0[13].contoso.com", ["web01", "web03"]),
    ("dc0?.contoso.com", ["dc01", "dc02"]),
    ("domain_*", ["dc01", "dc02"]),
])
def test_shell_wildcards_match_hosts_and_groups(inventory, pattern, expected):
    assert names(inventory.select(pattern)) == expected


@pytest.mark.parametrize("pattern, expected", [
    (r"~web0[12]\.", ["web01", "web02"]),
    (r"~(dc|sql)\d+", ["dc01", "dc02", "sql01"]),
    (r"~DOMAIN", ["dc01", "dc02"]),
    (r"~contoso", []),  # anchored at the start, as Ansible's re.match
])
def test_regex_with_leading_tilde(inventory, pattern, expected):
    if expected:
        assert names(inventory.select(pattern)) == expected
    else:
        with pytest.raises(InputError, match="matches no host"):
            inventory.select(pattern)


def test_pattern_matching_nothing_is_an_input_error(inventory):
    with pytest.raises(InputError, match=r"^--limit 'nosuchhost' matches no host$"):
        inventory.select("nosuchhost")


def test_a_mistyped_term_in_a_union_is_named(inventory):
    with pytest.raises(InputError, match=r"^--limit 'web01.contoso.com,wbe02': 'wbe02' matches no host$"):
        inventory.select("web01.contoso.com,wbe02")


def test_exclusion_that_empties_the_selection_is_an_input_error(inventory):
    with pytest.raises(InputError, match=r"^--limit 'sql:!servers' matches no host$"):
        inventory.select("sql:!servers")


def test_exclusion_matching_nothing_is_fine(inventory):
    assert names(inventory.select("sql:!decommissioned*")) == ["sql01"]


@pytest.mark.parametrize("pattern, message", [
    ("~web[", r"^--limit '~web\[': unbalanced brackets"),
    ("~web[,x", r"^--limit: '~web\[' is not a regular expression"),
    ("web,!", r"'&' and '!' need a name"),
    ("&", r"'&' and '!' need a name"),
])
def test_malformed_patterns_are_input_errors(inventory, pattern, message):
    with pytest.raises(InputError, match=message):
        inventory.select(pattern)


def test_hostile_pattern_is_reported_on_one_line(inventory):
    with pytest.raises(InputError) as caught:
        inventory.select("x\n$(calc)")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("pattern, expected", [
    (r"~(web|sql)\d+\..*", ["web01", "web02", "web03", "sql01"]),
    (r"~[a-z]{2}[a-z]?0[1-3]\.contoso\.com", ["dc01", "dc02", "web01", "web02", "web03", "sql01"]),
    (r"~(?=.*0[13])(dc|web)", ["dc01", "web01", "web03"]),
])
def test_regexes_of_ordinary_shape_still_select(inventory, pattern, expected):
    assert names(inventory.select(pattern)) == expected


@pytest.mark.parametrize("pattern, words", [
    (r"~(a+)+$", "repetition inside a repetition"),
    (r"~(\w+\.?)*contoso", "repetition inside a repetition"),
    (r"~(web|w)*01", "repeated alternation"),
    (r"~.*a.*b.*c", "too many repetitions"),
    (r"~[a-z]+[0-9]+[a-z]+[0-9]+", "too many repetitions"),
    (r"~(w)\1", "backreferences"),
    ("~" + "w" * 201, "at most 200 characters"),
])
def test_regexes_that_could_backtrack_for_minutes_are_refused_before_running(inventory, pattern, words):
    with pytest.raises(InputError, match=words):
        inventory.select(pattern)
