"""The host-facts and verdict contracts are JSON Schema files (runbook_lib/core/schemas) that the loaders enforce:
every committed facts fixture, every recording and every simulated host keeps them, every verdict the engine
writes on them keeps the verdict's, and a broken document is refused with the field named."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import pytest

from runbook_lib.core import facts
from runbook_lib.core.engine import assess
from runbook_lib.core.errors import FactsError, VerdictError
from runbook_lib.core.json_schema import schema_problem
from runbook_lib.core.knowledge import values_read
from runbook_lib.core.verdict import PROFILES, Verdict
from runbook_lib.remote import recording
from runbook_lib.remote.contract import contract_problem
from runbook_lib.remote.scripts import LANGUAGE_MODE_ERROR, RESULT_END, RESULT_START, compose, invocation
from runbook_lib.simulator.host import SimulatedHost
from runbook_lib.simulator.profile import builtin_profile, builtin_profile_names

TESTS = Path(__file__).parent
FACTS_FILES = sorted((TESTS / "facts").glob("*.json"))
RECORDED_HOSTS = sorted(p for p in (TESTS / "recordings" / "simulator").iterdir() if p.is_dir())
SCHEMA_FOLDERS = {layer: resources.files(f"runbook_lib.{layer}") / "schemas" for layer in ("core", "remote")}


def schema_files(layer: str) -> dict[str, dict]:
    return {item.name: json.loads(item.read_text(encoding="utf-8")) for item in SCHEMA_FOLDERS[layer].iterdir()
            if item.name.endswith(".schema.json")}


def refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(value) for value in node))
    return set()


def simulated_inspect(profile: str) -> dict | None:
    """What inspect writes on a simulated host of this built-in profile, as the script's result document; None
    where the script cannot run at all (Constrained Language Mode), which the simulator must say in one line."""
    host = SimulatedHost(builtin_profile(profile), profile.replace("_", "-"))
    args = {"host": host.hostname, "endpoints": ["login.microsoftonline.com:443"],
            "values": [{"path": path, "name": name} for path, name in values_read()]}
    call = invocation(compose("inspect", args))
    stdout = host(call.command_line, call.stdin or b"").stdout
    envelope = json.loads(stdout.split(RESULT_START, 1)[1].split(RESULT_END, 1)[0])
    if not envelope["ok"]:
        assert envelope["error"] == LANGUAGE_MODE_ERROR, envelope
        return None
    return envelope["result"]


def assert_keeps_both_contracts(doc: dict) -> None:
    """The document keeps host facts, the facts loader takes it and writes it back unchanged; each profile's verdict
    keeps the verdict schema and reads back as the same verdict."""
    assert schema_problem("host-facts", doc) is None, schema_problem("host-facts", doc)
    host_facts = facts.from_dict(doc)
    assert facts.loads(host_facts.dumps()) == host_facts
    for profile in PROFILES:
        written = assess(host_facts, profile).to_dict()
        assert schema_problem("verdict", written) is None, (profile, schema_problem("verdict", written))
        assert Verdict.from_dict(json.loads(json.dumps(written))).to_dict() == written


# --- the schema files ----------------------------------------------------------------------------------------
def test_core_schemas_refer_only_to_core_schemas():
    """Core is the bottom layer: its contracts must resolve without the remote folder."""
    core = schema_files("core")
    targets = {ref.split("#")[0] for doc in core.values() for ref in refs(doc)} - {""}
    assert targets and targets <= set(core), targets - set(core)


def test_inspect_output_is_host_facts_by_reference_not_a_copy():
    inspect = schema_files("remote")["inspect.schema.json"]
    assert inspect["$ref"] == "host-facts.schema.json"
    assert "required" not in inspect and "additionalProperties" not in inspect


def test_docs_name_every_schema_file():
    text = (TESTS.parent / "docs" / "contracts.md").read_text(encoding="utf-8")
    for layer in SCHEMA_FOLDERS:
        for name in schema_files(layer):
            assert name in text or f"`{name.removesuffix('.schema.json')}`" in text, name


# --- what the project and the simulator write keeps the contracts ---------------------------------------------
@pytest.mark.parametrize("path", FACTS_FILES, ids=lambda p: p.stem)
def test_every_committed_facts_file_and_its_verdicts_keep_the_contracts(path):
    assert_keeps_both_contracts(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("folder", RECORDED_HOSTS, ids=lambda p: p.name)
def test_every_recorded_inspect_keeps_the_contracts(folder):
    [inspected] = [r for r in recording.replay_host(folder) if r.operation.operation == "inspect"]
    assert_keeps_both_contracts(inspected.data)


@pytest.mark.parametrize("profile", builtin_profile_names())
def test_every_simulator_profile_inspects_to_facts_and_verdicts_that_keep_the_contracts(profile):
    doc = simulated_inspect(profile)
    if doc is None:  # nothing to inspect: the host the profile starts from must still be host facts
        doc = builtin_profile(profile).initial_facts(profile.replace("_", "-")).to_dict()
    else:
        assert contract_problem("inspect", doc) is None, contract_problem("inspect", doc)
    assert_keeps_both_contracts(doc)


def test_only_the_constrained_language_profile_has_no_inspect_result():
    assert [name for name in builtin_profile_names() if simulated_inspect(name) is None] == \
        ["ws2019_constrained_language"]


# --- broken documents are refused, the field named ------------------------------------------------------------
def good_facts() -> dict:
    return json.loads((TESTS / "facts" / "ws2019_healthy_observed_tls10.json").read_text(encoding="utf-8"))


def good_verdict() -> dict:
    return assess(facts.load(TESTS / "facts" / "win7_wmf51.json"), "recommended").to_dict()


def broken(doc: dict, mutate) -> dict:
    doc = copy.deepcopy(doc)
    mutate(doc)
    return doc


def probe(index: int, **fields):
    return lambda d: d["observed"]["probes"][index].update(fields)


def failed_handshake(index: int, **fields):
    """Probe ``index`` (a completed TLS 1.0 handshake) as a failed one, with ``fields`` on top."""
    def mutate(doc):
        record = doc["observed"]["probes"][index]
        record.pop("hash"), record.pop("key_exchange")
        record.update(ok=False, protocol=None, cipher=None, **fields)
    return mutate


FACTS_BREAKS = [
    (lambda d: d.pop("registry"), "registry", "missing field"),
    (lambda d: d["os"].pop("caption"), "os.caption", "missing field"),
    (lambda d: d.update(simulated="no"), "simulated", "expected a boolean, got a string"),
    (lambda d: d["powershell"].update(pwsh=7), "powershell.pwsh", "expected a string or null, got an integer"),
    (lambda d: d.update(score=10), "score", "unknown field"),
    (lambda d: d["registry"][0].update(comment="x"), "registry[0].comment", "unknown field"),
    (lambda d: d["os"].update(product_type="laptop"), "os.product_type", "expected one of"),
    (lambda d: d.update(collected_at="next tuesday"), "collected_at", "ISO 8601"),
    (failed_handshake(1), "observed.probes[1].error", "expected a string, got null"),
    (probe(0, hash=32772), "observed.probes[0].hash", "not allowed here"),  # TCP alone has no hash
]


@pytest.mark.parametrize("mutate, field, words", FACTS_BREAKS)
def test_the_host_facts_schema_refuses_a_broken_document(mutate, field, words):
    problem = schema_problem("host-facts", broken(good_facts(), mutate))
    assert problem is not None and problem[0] == field and words in problem[1], problem


@pytest.mark.parametrize("mutate, field, words", FACTS_BREAKS)
def test_the_facts_loader_refuses_what_the_schema_refuses(mutate, field, words):
    with pytest.raises(FactsError) as caught:
        facts.from_dict(broken(good_facts(), mutate))
    assert caught.value.field == field


@pytest.mark.parametrize("mutate, field, words", [
    # the probe record's rules, which the field-by-field reader does not know: only the schema refuses these
    (failed_handshake(1), "observed.probes[1].error", "expected a string, got null"),
    (failed_handshake(1, error="Authentication failed because the remote party has closed the transport stream.",
                      hash=32772), "observed.probes[1]", "no hash or key exchange"),
    (probe(1, url="https://login.microsoftonline.com/organizations/oauth2/v2.0/token"), "observed.probes[1].url",
     "field not allowed here"),
    (probe(1, cipher="Aes999"), "observed.probes[1].cipher", 'as PowerShell prints it, got "Aes999"'),
])
def test_the_facts_loader_says_in_one_line_what_only_the_schema_catches(mutate, field, words):
    with pytest.raises(FactsError) as caught:
        facts.from_dict(broken(good_facts(), mutate))
    assert str(caught.value) == f"facts: {field}: {caught.value.problem}" and words in caught.value.problem
    assert caught.value.field == field


def test_host_facts_v1_allows_what_the_inspect_script_never_writes():
    """A person's note and a lower-case KB are host facts; the script's own output is narrower."""
    noted = broken(good_facts(), lambda d: d.update(note="exported by hand from srv01"))
    lower_kb = broken(good_facts(), lambda d: d.update(hotfixes=["kb3140245"]))
    for doc in (noted, lower_kb):
        assert schema_problem("host-facts", doc) is None
        facts.from_dict(doc)
    assert contract_problem("inspect", noted) == "'note' field not allowed here"
    assert contract_problem("inspect", lower_kb).startswith("'hotfixes[0]'")


def test_the_inspect_contract_refuses_what_host_facts_refuses():
    doc = broken(good_facts(), lambda d: d["os"].pop("caption"))
    assert contract_problem("inspect", doc) == "'os.caption' missing field"


VERDICT_BREAKS = [
    (lambda d: d.pop("restart"), "restart", "missing field"),
    (lambda d: d["findings"][0].pop("source"), "findings[0].source", "missing field"),
    (lambda d: d.update(affected="yes"), "affected", "expected a boolean, got a string"),
    (lambda d: d.update(score=3), "score", "unknown field"),
    (lambda d: d["clients"].update(edge="ok"), "clients.edge", "unknown field"),
    (lambda d: d["findings"][0].update(severity="fatal"), "findings[0].severity", "expected one of"),
    (lambda d: d.update(profile="maximal"), "profile", "expected one of"),
    (lambda d: d["findings"][0].update(source="see the wiki"), "findings[0].source", ""),
    (lambda d: d.update(changes=[]), "restart", 'expected "none"'),  # nothing to change, nothing to restart
    (lambda d: d.update(affected=False), "symptom", "expected null"),  # a symptom needs an affected host
]


@pytest.mark.parametrize("mutate, field, words", VERDICT_BREAKS)
def test_the_verdict_schema_refuses_a_broken_document_and_from_dict_names_the_field(mutate, field, words):
    doc = broken(good_verdict(), mutate)
    problem = schema_problem("verdict", doc)
    assert problem is not None and problem[0] == field and words in problem[1], problem
    with pytest.raises(VerdictError) as caught:
        Verdict.from_dict(doc)
    assert caught.value.field == field and str(caught.value).startswith(f"verdict: {field}: ")


def test_the_verdict_used_for_breaking_is_affected_with_changes_and_a_symptom():
    """The breaks above rely on it; a fixture change that made them vacuous must fail here."""
    doc = good_verdict()
    assert doc["affected"] and doc["symptom"] and doc["changes"] and doc["restart"] != "none"
