"""Counts, entities and hosts from every export format, against a hand count of the fixtures.

The fixtures hold 15 sign-ins of all four types. Hand count: legacy ("True", "TRUE") are sign-ins 1, 2, 3, 4, 8, 9,
11, 12 and 13 (9); refused with 1002016 are 3 and 13 (2; both also legacy); 5, 7, 10 and 14 carry the key with
"False" and 6 and 15 carry no key, none of them counted. srv01 leaves from 203.0.113.7 (1-3), srv02's group from
198.51.100.16/28 (11-13), srv03.contoso.com is the device SRV03/srv03 (8, 9); 198.51.100.9 (4) is nobody's.
"""

import json

import pytest
from scope_files import ENTRA_CSV, ENTRA_JSON, INVENTORY, LA_CSV, LA_JSON, scope_cli

from runbook_lib.scope.collect import make_report, redactor
from runbook_lib.scope.records import Window

HOSTS = [{"name": "srv01", "legacy": 3, "failures": 1, "last_seen": "2026-11-10T10:00:00Z", "via": ["ip:203.0.113.7"]},
         {"name": "srv02", "legacy": 3, "failures": 1, "last_seen": "2026-11-24T03:00:00Z",
          "via": ["ip:198.51.100.20", "ip:198.51.100.21"]},
         {"name": "srv03.contoso.com", "legacy": 2, "failures": 0, "last_seen": "2026-11-18T01:00:00Z",
          "via": ["device:SRV03"]}]
UNMAPPED = [{"kind": "ip", "key": "198.51.100.9", "legacy": 1, "failures": 0}]


def report(paths, **window):
    return make_report([str(p) for p in paths], Window.parse(window.get("since"), window.get("until")), INVENTORY)


@pytest.mark.parametrize("paths", [ENTRA_JSON, [LA_JSON], [LA_CSV]], ids=["entra_json", "la_json", "la_csv"])
def test_every_format_with_the_flag_gives_the_hand_count(paths):
    doc = report(paths).to_dict()
    assert doc["schema"] == "tls-runbook/scope/v1"
    assert (doc["records_read"], doc["legacy_records"], doc["aadsts1002016_failures"]) == (15, 9, 2)
    assert doc["window"] == {"from": "2026-11-02T08:00:00Z", "to": "2026-11-24T03:00:00Z"}
    assert doc["hosts"] == HOSTS
    assert doc["unmapped"] == UNMAPPED
    by_key = {(e["kind"], e["key"]): e for e in doc["entities"]}
    assert by_key[("ip", "203.0.113.7")] == {
        "kind": "ip", "key": "203.0.113.7", "legacy": 3, "failures": 1, "first_seen": "2026-11-02T08:00:00Z",
        "last_seen": "2026-11-10T10:00:00Z", "apps": ["Azure Active Directory PowerShell"], "hosts": ["srv01"]}
    assert by_key[("user", "admin1@contoso.com")]["legacy"] == 3  # "Admin1@" on sign-in 3 is the same user
    assert by_key[("device", "SRV03")]["legacy"] == 2  # "srv03" with "TRUE" on sign-in 9 is the same device
    assert by_key[("service_principal", "8a2d4c6e-1b3f-4a5c-9d7e-0f1a2b3c4d5e")]["failures"] == 1
    assert ("ip", "192.0.2.10") not in by_key and ("user", "user3@contoso.com") not in by_key  # "False" / no key
    weights = [e["legacy"] + e["failures"] for e in doc["entities"]]
    assert weights == sorted(weights, reverse=True)
    assert {e["kind"] for e in doc["entities"]} == {"ip", "app", "service_principal", "user", "device", "user_agent"}


def test_entra_json_sources_are_named_with_their_record_counts():
    doc = report(ENTRA_JSON).to_dict()
    assert [(s["name"].split("_")[0], s["format"], s["records"]) for s in doc["sources"]] == [
        ("ApplicationSignIns", "entra_json", 2), ("InteractiveSignIns", "entra_json", 7),
        ("MSISignIns", "entra_json", 2), ("NonInteractiveSignIns", "entra_json", 4)]  # the last is {"value": [...]}


def test_the_same_sign_in_in_two_sources_counts_once():
    doc = report([*ENTRA_JSON, LA_JSON]).to_dict()
    assert [s["records"] for s in doc["sources"]] == [2, 7, 2, 4, 15]
    assert (doc["records_read"], doc["legacy_records"], doc["aadsts1002016_failures"]) == (15, 9, 2)


def test_a_window_keeps_only_its_sign_ins():
    doc = report(ENTRA_JSON, since="2026-11-20").to_dict()  # sign-ins 7, 10, 11 and 13
    assert (doc["records_read"], doc["legacy_records"], doc["aadsts1002016_failures"]) == (4, 2, 1)
    assert doc["window"]["from"] == "2026-11-20T00:00:00Z"
    assert [h["name"] for h in doc["hosts"]] == ["srv02"]


def test_admin_center_csv_counts_failures_only_and_says_so():
    result = scope_cli(ENTRA_CSV, "--format", "json", "--inventory", INVENTORY)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["records_read"], doc["legacy_records"], doc["aadsts1002016_failures"]) == (7, 0, 1)
    assert doc["sources"][0]["cannot_count"] == ["legacy"]
    assert doc["hosts"] == [{"name": "srv01", "legacy": 0, "failures": 1, "last_seen": "2026-11-10T10:00:00Z",
                             "via": ["ip:203.0.113.7"]}]
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and "no legacy-TLS flag; only AADSTS1002016 failures are counted" in warning[0]
    table = scope_cli(ENTRA_CSV)
    assert "cannot count: legacy" not in table.stdout and "no legacy-TLS flag" in table.stdout


def test_table_csv_and_json_say_the_same():
    doc = json.loads(scope_cli(*ENTRA_JSON, "--format", "json", "--inventory", INVENTORY).stdout)
    table = scope_cli(*ENTRA_JSON, "--inventory", INVENTORY).stdout
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(scope_cli(*ENTRA_JSON, "--format", "csv", "--inventory", INVENTORY).stdout)))
    summary = next(r for r in rows if r["section"] == "summary")
    assert (summary["records"], summary["legacy"], summary["failures"]) == ("15", "9", "2")
    assert [(r["key"], r["legacy"], r["failures"], r["via"]) for r in rows if r["section"] == "host"] == [
        (h["name"], str(h["legacy"]), str(h["failures"]), "; ".join(h["via"])) for h in doc["hosts"]]
    assert len([r for r in rows if r["section"] == "entity"]) == len(doc["entities"])
    assert "15 sign-in(s) read, 9 over legacy TLS, 2 refused with AADSTS1002016" in table
    for host in doc["hosts"]:
        assert host["name"] in table


def test_redact_replaces_user_names_with_a_keyed_hash(monkeypatch):
    monkeypatch.setenv("SCOPE_REDACT_KEY", "a key for this test")
    window = Window()
    first = make_report([str(p) for p in ENTRA_JSON], window, INVENTORY, redact=redactor("env:SCOPE_REDACT_KEY"))
    again = make_report([str(p) for p in ENTRA_JSON], window, INVENTORY, redact=redactor("env:SCOPE_REDACT_KEY"))
    other = make_report([str(p) for p in ENTRA_JSON], window, INVENTORY, redact=redactor(None))
    text = first.dumps() + first.to_csv() + first.render_text() + first._repr_html_()
    assert "@contoso.com" not in text
    users = [e for e in first.to_dict()["entities"] if e["kind"] == "user"]
    assert len(users) == 4 and all(u["key"].startswith("user-") and len(u["key"]) == 21 for u in users)
    assert users == [e for e in again.to_dict()["entities"] if e["kind"] == "user"]
    assert {u["key"] for u in users}.isdisjoint(e["key"] for e in other.to_dict()["entities"] if e["kind"] == "user")


def test_untrusted_text_is_escaped_folded_and_defused(tmp_path):
    hostile = '=HYPERLINK("http://x")<script>alert(1)</script>\x1b[31m'
    record = {"id": "1", "createdDateTime": "2026-11-02T08:00:00Z", "userAgent": hostile, "ipAddress": "203.0.113.7",
              "status": {"errorCode": 1002016}, "authenticationProcessingDetails": []}
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps([record]))
    result = make_report([str(path)], Window())
    assert "<script>" not in result._repr_html_() and "&lt;script&gt;" in result._repr_html_()
    assert "\x1b" not in result.render_text()
    assert "'=HYPERLINK" in result.to_csv()


@pytest.mark.parametrize("content, message", [
    ("{not json", "hostile.json: not valid JSON (line 1)"),
    ('{"some": "thing"}', "hostile.json: not a sign-in export: expected a JSON array"),
    ('[{"createdDateTime": "yesterday"}]', "hostile.json: record 1: createdDateTime is missing or not a time"),
    ('[{"createdDateTime": "2026-11-02T08:00:00Z", "status": {"errorCode": "x"}}]',
     "hostile.json: record 1: error code is not a number"),
    ("a,b\n1,2\n", "hostile.json: not a sign-in export: a CSV needs"),
])
def test_bad_sources_are_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "hostile.json"
    path.write_text(content)
    result = scope_cli(path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"tls-runbook: error: {message}") and len(result.stderr.splitlines()) == 1


def test_an_empty_window_is_an_error_not_a_report_of_zero():
    result = scope_cli(LA_JSON, "--since", "2026-12-01", "--until", "2026-12-31")
    assert result.returncode == 2 and result.stdout == ""
    assert "no sign-ins from 2026-12-01T00:00:00Z to 2026-12-31T00:00:00Z in log_analytics_signins.json" \
        in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--since", "last week"], "--since takes a date or time"),
    (["--since", "2026-11-20", "--until", "2026-11-01"], "is after --until"),
    (["--emit-limit"], "--emit-limit needs --inventory"),
    (["--after", "somewhere"], "--after needs --inventory"),
    (["--redact-key", "env:X"], "--redact-key goes with --redact"),
    (["graph:", "--token", "eyJhbGciOi.secret-token-pasted"], "--token takes a reference"),
    (["graph:", "--token", "env:T", "--client-secret", "env:S"], "--token and --client-secret exclude each other"),
    (["--client-secret", "env:S"], "are for graph: sources"),
    (["graph:", "--client-secret", "env:S"], "client credentials need the tenant (graph:TENANT) and --client-id"),
])
def test_bad_options_are_one_line_and_exit_2(args, message):
    result = scope_cli(LA_JSON, *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert "secret-token-pasted" not in result.stderr
