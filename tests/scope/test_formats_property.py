"""Whatever format carries the same sign-ins, the scope counts the same (the admin center's CSV: failures only)."""

import json

from scope_files import INVENTORY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapes import TABLES, entra_csv, la_csv, la_row, la_tables, sign_in

from runbook_lib.remote.inventory import load_inventory
from runbook_lib.scope.mapping import HostMap
from runbook_lib.scope.records import Window
from runbook_lib.scope.report import build
from runbook_lib.scope.sources import read_file

IPS = ["203.0.113.7", "198.51.100.20", "198.51.100.9", "192.0.2.50", ""]
USERS = ["admin1@contoso.com", "ADMIN1@contoso.com", "svc@contoso.com"]
DEVICES = ["", "SRV03", "srv03", "srv01.contoso.com"]
APPS = [("Azure Active Directory PowerShell", "1b730954-1685-4b74-9bfd-dac224a7b894"), ("Job", "5e0c7f7a-0000-4000-8000-000000000001")]


@st.composite
def sign_ins(draw):
    count = draw(st.integers(1, 12))
    records = []
    for number in range(count):
        event = draw(st.sampled_from(sorted(TABLES)))
        person = event in ("interactiveUser", "nonInteractiveUser")  # LA's app tables have no user columns
        app, app_id = draw(st.sampled_from(APPS))
        when = f"2026-11-{draw(st.integers(1, 28)):02d}T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00Z"
        records.append(sign_in(
            f"{number:08d}-0000-4000-8000-000000000000", when, event, ip=draw(st.sampled_from(IPS)), app=app,
            app_id=app_id, user=draw(st.sampled_from(USERS)) if person else "",
            device=draw(st.sampled_from(DEVICES)) if person else "",
            agent="WindowsPowerShell/5.1" if person else "",
            sp_id="" if person else "8a2d4c6e-1b3f-4a5c-9d7e-0f1a2b3c4d5e",
            legacy=draw(st.sampled_from([None, "True", "False", "TRUE", "true"])),
            code=draw(st.sampled_from([0, 1002016, 50126]))))
    return records


def scope_of(path, host_map):
    return build([read_file(path, Window())], Window(), host_map).to_dict()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=sign_ins())
def test_counts_entities_and_hosts_agree_across_formats(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("formats")
    host_map = HostMap(load_inventory(INVENTORY))
    carriers = {"array.json": json.dumps(records), "graph.json": json.dumps({"value": records}),
                "la_rows.json": json.dumps([la_row(r) for r in records]), "la_api.json": json.dumps(la_tables(records)),
                "la_portal.csv": la_csv(records)}
    results = {}
    for name, text in carriers.items():
        (folder / name).write_text(text, encoding="utf-8")
        doc = scope_of(folder / name, host_map)
        results[name] = {k: v for k, v in doc.items() if k != "sources"}
    first = results["array.json"]
    for name, doc in results.items():
        assert doc == first, name
    (folder / "admin.csv").write_text(entra_csv(records), encoding="utf-8")
    csv_doc = scope_of(folder / "admin.csv", host_map)
    assert csv_doc["records_read"] == first["records_read"]
    assert csv_doc["aadsts1002016_failures"] == first["aadsts1002016_failures"]
    assert csv_doc["legacy_records"] == 0
    assert first["legacy_records"] == sum(1 for r in records if any(
        d["key"].startswith("Legacy TLS") and d["value"].lower() == "true" for d in r["authenticationProcessingDetails"]))
