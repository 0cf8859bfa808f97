"""Bad facts give one line naming the field; good facts load whatever the spelling of registry paths."""

import json

import pytest

from runbook_lib.core import facts
from runbook_lib.core.errors import FactsError


def good_doc():
    return json.loads((facts.Path(__file__).parent / "facts" / "win7_wmf51.json").read_text())


def load_with(mutate):
    doc = good_doc()
    mutate(doc)
    return facts.loads(json.dumps(doc))


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d.pop("os"), "os", "missing field"),
    (lambda d: d["os"].pop("version"), "os.version", "missing field"),
    (lambda d: d["os"].update(version=61), "os.version", "expected a string, got an integer"),
    (lambda d: d["os"].update(service_pack="1"), "os.service_pack", "expected an integer"),
    (lambda d: d["os"].update(product_type="laptop"), "os.product_type", "expected one of"),
    (lambda d: d["os"].update(architecture="sparc"), "os.architecture", "expected one of"),
    (lambda d: d["os"].update(last_boot="after lunch"), "os.last_boot", "ISO 8601"),
    (lambda d: d.update(schema="tls-runbook/host-facts/v9"), "schema", "unknown schema"),
    (lambda d: d.update(simulated="no"), "simulated", "expected a boolean"),
    (lambda d: d.update(collected_at="yesterday"), "collected_at", "ISO 8601"),
    (lambda d: d["registry"][0].update(type="REG_NONE"), "registry[0].type", "unknown registry type"),
    (lambda d: d["registry"][0].update(data="1"), "registry[0].data", "must be an integer"),
    (lambda d: d["registry"][0].update(data=True), "registry[0].data", "must be an integer"),
    (lambda d: d["registry"][0].update(data=2**32), "registry[0].data", "outside"),
    (lambda d: d["registry"][0].update(path="HKCU\\Software\\x"), "registry[0].path", "HKLM"),
    (lambda d: d["registry"][0].update(path="HKLM\\A\\\\B"), "registry[0].path", "empty segments"),
    (lambda d: d["registry"][0].pop("policy"), "registry[0].policy", "missing field"),
    (lambda d: d["registry"][0].update(name="Ena\nbled"), "registry[0].name", "control characters"),
    (lambda d: d["hotfixes"].append("3140245; rm -rf /"), "hotfixes[2]", "KB number"),
    (lambda d: d.update(host="srv01; Remove-Item C:\\ -Recurse"), "host", "DNS name"),
    (lambda d: d.update(host="$(Invoke-Expression evil)"), "host", "DNS name"),
    (lambda d: d.update(extra=1), "extra", "unknown field"),
    (lambda d: d.update(note=["a"]), "note", "expected a string"),
    (lambda d: d.update(note="line one\nline two"), "note", "printable text"),
    (lambda d: d.update(note="x" * 2001), "note", "at most 2000"),
    # full-match semantics: '$' would let a value end in a newline; '\d' would take other scripts' digits
    (lambda d: d.update(host="srv01\n"), "host", "DNS name"),
    (lambda d: d["os"].update(version="6.1.7601\n"), "os.version", ""),
    (lambda d: d["os"].update(version="\u0666.1.7601"), "os.version", ""),
    (lambda d: d["hotfixes"].append("KB3140245\n"), "hotfixes[2]", "KB number"),
    (lambda d: d["registry"][0].update(path=d["registry"][0]["path"] + "\n"), "registry[0].path", "HKLM"),
    (lambda d: d.update(observed={"probes": [{"endpoint": "login.example:443\n", "mode": "default", "ok": True}]}),
     "observed.probes[0].endpoint", "host:port"),
    (lambda d: d["powershell"].update(pwsh="seven"), "powershell.pwsh", "expected a version"),
    (lambda d: d.update(observed={"security_protocol": {"x64": "240"}}), "observed.security_protocol.x64",
     "SecurityProtocolType"),
    (lambda d: d.update(observed={"probes": [{"endpoint": "x", "mode": "default", "ok": True}]}),
     "observed.probes[0].endpoint", "host:port"),
])
def test_bad_field_is_named_in_one_line(mutate, field, words):
    with pytest.raises(FactsError) as caught:
        load_with(mutate)
    message = str(caught.value)
    assert message.startswith(f"facts: {field}: "), message
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("text, words", [
    ('{"schema": "tls-runbook/host-facts/v1", "host": ', "not valid JSON"),
    ("[" * 100000, "nested too deeply"),
    ('{"schema": NaN}', "NaN is not allowed"),
    ("[]", "expected an object, got a list"),
])
def test_broken_json_is_one_line(text, words):
    with pytest.raises(FactsError) as caught:
        facts.loads(text)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "huge.json"
    with big.open("wb") as handle:
        handle.write(b'{"host": "' + b"a" * (50 * 1024 * 1024) + b'"}')
    with pytest.raises(FactsError, match="larger than 10 MiB"):
        facts.load(big)


def test_hostile_unknown_field_name_is_folded_into_one_printable_line():
    with pytest.raises(FactsError) as caught:
        load_with(lambda d: d.update({"evil\r\nname\x1b[31m": 1}))
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_registry_lookups_ignore_case_like_windows():
    doc = good_doc()
    doc["registry"].append({"path": "hklm\\software\\microsoft\\.netframework\\V4.0.30319", "name": "schusestrongcrypto",
                            "type": "REG_DWORD", "data": 1, "policy": False})
    host = facts.from_dict(doc)
    assert host.registry.dword("HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319", "SchUseStrongCrypto") == 1


def test_values_under_policies_count_as_group_policy_even_when_not_marked():
    doc = good_doc()
    doc["registry"].append({"path": "HKLM\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002",
                            "name": "Functions", "type": "REG_SZ", "data": "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
                            "policy": False})
    value = facts.from_dict(doc).registry.get(
        "HKLM\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002", "Functions")
    assert value.from_policy


def test_save_then_load_gives_the_same_facts(tmp_path):
    host = facts.from_dict(good_doc())
    host.save(tmp_path / "f.json")
    assert facts.load(tmp_path / "f.json") == host


def test_a_note_on_where_the_facts_come_from_survives_saving_and_a_registry_change(tmp_path):
    doc = good_doc()
    doc["note"] = "Case from https://learn.microsoft.com/windows/win32/secauthn/cipher-suites-in-schannel"
    host = facts.from_dict(doc)
    host.save(tmp_path / "f.json")
    assert facts.load(tmp_path / "f.json").note == doc["note"]
    assert host.with_registry(host.registry).note == doc["note"]


def test_last_boot_is_optional_and_survives_save_and_load(tmp_path):
    host = load_with(lambda d: d["os"].update(last_boot="2026-01-02T03:04:05Z"))
    assert host.os.last_boot == "2026-01-02T03:04:05Z" and facts.from_dict(good_doc()).os.last_boot is None
    host.save(tmp_path / "f.json")
    assert facts.load(tmp_path / "f.json") == host
