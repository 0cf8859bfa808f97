"""graph: sources against a local HTTPS server in Graph's and the identity platform's shapes, with real MSAL."""

import datetime
import json
import os

import pytest
from scope_files import ENTRA_JSON, INVENTORY, scope_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from graph_server import CLIENT_ID, TENANT, FakeEntra

from runbook_lib.core.errors import InputError
from runbook_lib.scope.auth import TEST_ORIGIN_VARIABLE, Endpoints, GraphAuth
from runbook_lib.scope.errors import GraphError, LicenceRequired, PermissionMissing, RequestRejected, SignInFailed
from runbook_lib.scope.graph import _retry_after, read_graph
from runbook_lib.scope.records import Window
from runbook_lib.scope.report import build

WINDOW = Window.parse("2026-11-01", "2026-11-30")
SECRET = "app-secret-" + os.urandom(8).hex()


def fixture_records() -> list[dict]:
    records = []
    for path in ENTRA_JSON:
        doc = json.loads(path.read_text())
        records += doc["value"] if isinstance(doc, dict) else doc
    return records


@pytest.fixture
def entra(monkeypatch):
    """A running server; the process trusts its CA and sends Graph and sign-in traffic to it."""
    with FakeEntra(fixture_records(), client_secret=SECRET) as server:
        monkeypatch.setenv(TEST_ORIGIN_VARIABLE, server.origin)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        yield server


def read(entra, auth, waits=None, notes=None, **kwargs):
    return read_graph(f"graph:{TENANT}", WINDOW, auth, notify=(notes if notes is not None else []).append,
                      sleep=(waits if waits is not None else []).append, **kwargs)


def test_all_four_types_paged_and_throttled_give_the_hand_count(entra, monkeypatch):
    monkeypatch.setenv("GRAPH_TOKEN", entra.token)
    waits, notes = [], []
    source = read(entra, GraphAuth(token="env:GRAPH_TOKEN"), waits, notes)
    doc = build([source], WINDOW).to_dict()
    assert (doc["records_read"], doc["legacy_records"], doc["aadsts1002016_failures"]) == (15, 9, 2)
    assert doc["sources"] == [{"name": f"graph:{TENANT}", "format": "graph", "records": 15}]
    assert waits == [1.0] and any("429" in n and "Retry-After" in n for n in notes)
    filters = [e["query"]["$filter"] for e in entra.log if e["path"] == "/beta/auditLogs/signIns"]
    for kind in ("interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity"):
        assert (f"createdDateTime ge 2026-11-01T00:00:00Z and createdDateTime le 2026-11-30T00:00:00Z and "
                f"signInEventTypes/any(t: t eq '{kind}')") in filters
    assert sum(1 for e in entra.log if e["query"].get("$skiptoken")) == 3 + 1  # 7 interactive: 3 more pages; 4 non-interactive: 1
    assert all("authenticationProcessingDetails" not in f for f in filters)


def test_sign_in_types_filter_limits_the_queries(entra, monkeypatch):
    monkeypatch.setenv("GRAPH_TOKEN", entra.token)
    source = read(entra, GraphAuth(token="env:GRAPH_TOKEN"), event_types=("servicePrincipal",))
    assert [r.id[:8] for r in source.records] == ["00000012", "00000013"]


def test_client_secret_by_reference(entra, monkeypatch):
    monkeypatch.setenv("APP_SECRET", SECRET)
    source = read(entra, GraphAuth(tenant=TENANT, client_id=CLIENT_ID, client_secret="env:APP_SECRET").validate())
    assert len(source.records) == 15
    assert {"method": "POST", "path": f"/{TENANT}/oauth2/v2.0/token", "grant": "client_credentials"} in entra.log


def _certificate(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls-runbook scope test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    combined = tmp_path / "app.pem"
    combined.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()) + pem)
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(
        b"app", key, cert, None, serialization.BestAvailableEncryption(b"pfx-password")))
    return pem, combined, pfx


def test_certificate_pem_and_pfx_sign_an_assertion_the_server_verifies(entra, monkeypatch, tmp_path):
    pem, combined, pfx = _certificate(tmp_path)
    entra.certificate_pem = pem
    monkeypatch.setenv("PFX_PASSWORD", "pfx-password")
    for auth in (GraphAuth(tenant=TENANT, client_id=CLIENT_ID, client_certificate=str(combined)),
                 GraphAuth(tenant=TENANT, client_id=CLIENT_ID, client_certificate=str(pfx),
                           certificate_password="env:PFX_PASSWORD")):
        assert len(read(entra, auth.validate()).records) == 15
    assert entra.assertions_verified == 2
    monkeypatch.setenv("PFX_PASSWORD", "wrong")
    with pytest.raises(InputError, match="app.pfx: not a PEM with its private key or a PFX, or the password is wrong"):
        read(entra, GraphAuth(tenant=TENANT, client_id=CLIENT_ID, client_certificate=str(pfx),
                              certificate_password="env:PFX_PASSWORD"))


def test_device_code_shows_the_instructions_and_signs_in(entra):
    notes = []
    source = read(entra, GraphAuth(tenant=TENANT), notes=notes)
    assert len(source.records) == 15
    assert any("enter the code TLSR-8F2Q" in n for n in notes)
    assert any(e.get("grant") == "urn:ietf:params:oauth:grant-type:device_code" for e in entra.log)


def test_a_wrong_secret_is_one_line_without_the_secret_even_when_echoed(entra, monkeypatch):
    monkeypatch.setenv("APP_SECRET", "not-the-secret-" + os.urandom(6).hex())
    with pytest.raises(SignInFailed) as caught:
        read(entra, GraphAuth(tenant=TENANT, client_id=CLIENT_ID, client_secret="env:APP_SECRET"))
    message = str(caught.value)
    assert "AADSTS7000215" in message and os.environ["APP_SECRET"] not in message and "[REDACTED]" in message


@pytest.mark.parametrize("mode, error, words", [
    ("licence", LicenceRequired, "Microsoft Entra ID P1 or P2"),
    ("permission", PermissionMissing, "AuditLog.Read.All and Directory.Read.All"),
    ("echo", RequestRejected, "[REDACTED]"),
])
def test_refusals_are_one_line_by_cause_without_the_token(entra, monkeypatch, mode, error, words):
    entra.mode, entra.throttle_next = mode, 0
    monkeypatch.setenv("GRAPH_TOKEN", entra.token)
    with pytest.raises(error) as caught:
        read(entra, GraphAuth(token="env:GRAPH_TOKEN"))
    message = str(caught.value)
    assert words in message and entra.token not in message and "\n" not in message


def test_a_next_link_to_another_origin_is_not_followed(entra, monkeypatch):
    entra.mode, entra.throttle_next = "elsewhere", 0
    monkeypatch.setenv("GRAPH_TOKEN", entra.token)
    with pytest.raises(GraphError, match="points away from Graph; the token is not sent there"):
        read(entra, GraphAuth(token="env:GRAPH_TOKEN"))


@pytest.mark.parametrize("value", ["https://graph.example.com", "http://127.0.0.1:8443", "https://localhost:8443",
                                   "https://10.0.0.5:443", "https://127.0.0.1:8443/beta", "https://u:p@127.0.0.1:1"])
def test_the_test_endpoint_is_refused_unless_loopback_https(value):
    with pytest.raises(InputError, match="is for tests only and must be https://<loopback IP>:PORT"):
        Endpoints.current({TEST_ORIGIN_VARIABLE: value})
    assert Endpoints.current({}).graph == "https://graph.microsoft.com"
    assert Endpoints.current({TEST_ORIGIN_VARIABLE: "https://[::1]:8443"}).test


def test_retry_after_in_seconds_or_as_a_date():
    assert _retry_after("7", default=2.0) == 7.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", default=2.0) == 0.0  # in the past: go now
    assert _retry_after("soon", default=2.0) == 2.0


def test_cli_graph_source_gives_the_contract_and_leaks_no_token_or_secret(entra, tmp_path):
    """The leak test: the token Graph issued and the app secret appear in no output, file or message."""
    env = {**os.environ, "APP_SECRET": SECRET, TEST_ORIGIN_VARIABLE: entra.origin, "REQUESTS_CA_BUNDLE": entra.ca_path}
    out = tmp_path / "scope.json"
    result = scope_cli(f"graph:{TENANT}", "--since", "2026-11-01", "--until", "2026-11-30", "--client-id", CLIENT_ID,
                       "--client-secret", "env:APP_SECRET", "--inventory", INVENTORY, "--format", "json", "-o", out,
                       env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert (doc["records_read"], doc["legacy_records"], doc["aadsts1002016_failures"]) == (15, 9, 2)
    assert [h["name"] for h in doc["hosts"]] == ["srv01", "srv02", "srv03.contoso.com"]
    assert "test endpoint" in result.stderr and "waiting 1 s" in result.stderr
    entra.mode = "echo"  # a failing run too: Graph's error text holds the Authorization header
    failed = scope_cli(f"graph:{TENANT}", "--client-id", CLIENT_ID, "--client-secret", "env:APP_SECRET", env=env)
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) >= 1
    for text in (result.stdout, result.stderr, out.read_text(), failed.stdout, failed.stderr):
        assert entra.token not in text and SECRET not in text
        assert entra.token.split(".")[1] not in text
