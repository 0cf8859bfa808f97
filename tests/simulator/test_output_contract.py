"""The simulator may only say what a real script can say: every result it writes keeps the scripts' contract.

The contract is the JSON Schema in runbook_lib/remote/schemas, the same files the reader (runbook_lib.remote.scripts)
enforces on real hosts. Error texts are held to the messages .NET Framework really produces, listed here from
.NET's own resource strings and Win32 messages rather than imported from the simulator, so a text the simulator
made up fails.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from runbook_lib.core.acceptance import LEGACY, entra_answer
from runbook_lib.core.errors import RemoteScriptFailed
from runbook_lib.core.facts import Probe
from runbook_lib.core.knowledge import values_read
from runbook_lib.remote.contract import contract_problem
from runbook_lib.remote.scripts import RESULT_END, RESULT_START, compose, invocation, read_output, render_output
from runbook_lib.simulator.host import SimulatedHost
from runbook_lib.simulator.profile import HostProfile, builtin_profile, builtin_profile_names

ENDPOINTS = ["login.microsoftonline.com:443", "graph.microsoft.com:443", "nowhere.example:443"]
# What Get-TrErrorText can report from these probes on an English Windows: the innermost exception's message.
REAL_DOTNET_TEXTS = {
    "No such host is known",  # SocketException, WSAHOST_NOT_FOUND (Win32 message)
    "The client and server cannot communicate, because they do not possess a common algorithm",  # SEC_E_ALGORITHM_MISMATCH
    "Authentication failed because the remote party has closed the transport stream.",  # net_auth_eof
    "The remote certificate is invalid according to the validation procedure.",  # net_ssl_io_cert_validation
    "The request was aborted: Could not create SSL/TLS secure channel.",  # net_webstatus_SecureChannelFailure
    "The remote name could not be resolved: 'nowhere.example'",  # net_webstatus_NameResolutionFailure
    "The specified value is not valid in the 'SslProtocolType' enumeration. Parameter name: sslProtocolType",
    "The requested security protocol is not supported.",  # net_securityprotocolnotsupported
}
# The one line every operation writes under Constrained Language Mode (the language check in every script).
CONSTRAINED_LANGUAGE = "Constrained Language Mode: the runbook needs FullLanguage or a signed script"


def run(host: SimulatedHost, operation: str, args: dict):
    call = invocation(compose(operation, args))
    answer = host(call.command_line, call.stdin or b"")
    return answer.stdout


def envelope(stdout: str) -> dict:
    return json.loads(stdout.split(RESULT_START, 1)[1].split(RESULT_END, 1)[0])


def profile(name: str) -> HostProfile:
    """A built-in profile, or "<name>@x86": the same host on 32-bit Windows."""
    base, _, architecture = name.partition("@")
    if not architecture:
        return builtin_profile(base)
    doc = json.loads((resources.files("runbook_lib.simulator") / "profiles" / f"{base}.json").read_text())
    doc["state"]["os"]["architecture"] = architecture
    return HostProfile.from_dict(doc, name)


def every_output(name: str, certificate_chain: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    host = SimulatedHost(profile(name), name.replace("_", "-").replace("@", "-"))
    host.certificate_chain = certificate_chain
    outputs = [("inspect", run(host, "inspect", {"host": "h1", "endpoints": ENDPOINTS, "values": [
        {"path": path, "name": value} for path, value in values_read()]})),
               ("probe", run(host, "probe", {"endpoints": ENDPOINTS}))]
    outputs += [("session_fix", run(host, "session_fix", {"mode": mode, "endpoints": ENDPOINTS}))
                for mode in ("bor", "pin")]
    outputs.append(("preflight", run(host, "preflight", {})))  # before apply makes the journal folder, and after
    change = {"path": "HKLM\\SOFTWARE\\Test", "name": "V", "type": "REG_DWORD", "data": 1}
    applied = run(host, "apply", {"apply_id": "contract-1", "changes": [change]})
    outputs += [("apply", applied), ("journal", run(host, "journal", {"apply_id": "contract-1"})),
                ("journal", run(host, "journal", {"apply_id": "contract-2"})),
                ("journal", run(host, "journal", {"apply_id": "contract-3", "claim_if_absent": True}))]
    values = [{"path": change["path"], "name": change["name"]}, {"path": "HKLM\\SOFTWARE\\Run", "name": "X"}]
    outputs += [("restore", run(host, "restore", {"apply_id": "contract-1", "values": values})),
                ("last_boot", run(host, "last_boot", {})), ("preflight", run(host, "preflight", {}))]
    return outputs


CASES = [(name, ()) for name in builtin_profile_names()] + [("ws2022_healthy", ("PartialChain",)),
                                                           ("win7_wmf51", ("UntrustedRoot",)), ("win7_wmf51@x86", ())]


@pytest.mark.parametrize("name, chain", CASES, ids=[f"{n}{'-' + c[0] if c else ''}" for n, c in CASES])
def test_every_simulated_result_keeps_the_scripts_contract(name, chain):
    for operation, stdout in every_output(name, chain):
        doc = envelope(stdout)
        assert contract_problem("result", doc) is None, (operation, contract_problem("result", doc))
        if not doc["ok"]:  # a script that fails as a whole writes one line, which the reader raises
            assert doc["error"] == CONSTRAINED_LANGUAGE, (operation, doc["error"])
            continue
        assert contract_problem(operation, doc["result"]) is None, (operation, contract_problem(operation,
                                                                                               doc["result"]))
        read_output(operation, stdout, "", 0)  # the reader enforces the same contract


@pytest.mark.parametrize("name, chain", CASES, ids=[f"{n}{'-' + c[0] if c else ''}" for n, c in CASES])
def test_every_simulated_error_text_is_one_dotnet_really_writes(name, chain):
    for operation, stdout in every_output(name, chain):
        doc = envelope(stdout)
        if not doc["ok"]:
            continue  # the script's own text, checked above
        result = doc["result"]
        texts = [p["error"] for p in result.get("probes", ()) if p["error"]]
        texts += [result["error"]] if operation == "session_fix" and result["error"] else []
        assert set(texts) <= REAL_DOTNET_TEXTS, (operation, set(texts) - REAL_DOTNET_TEXTS)


def test_a_32_bit_windows_reports_no_64_bit_process():
    doc = envelope(every_output("win7_wmf51@x86")[0][1])["result"]
    assert set(doc["observed"]["security_protocol"]) == {"x86"}
    x64_too = dict(doc, observed=dict(doc["observed"], security_protocol={"x64": 240, "x86": 240}))
    assert contract_problem("inspect", x64_too).startswith("'observed.security_protocol'")


def test_simulated_ok_means_the_handshake_completed_even_when_entra_refuses_it():
    stdout = every_output("win7_wmf51")[1][1]
    [default] = [p for p in envelope(stdout)["result"]["probes"]
                 if p["mode"] == "default" and p["endpoint"] == ENDPOINTS[0]]
    assert default["ok"] is True and default["protocol"] == "Tls"
    assert entra_answer(Probe(**{k: tuple(v) if isinstance(v, list) else v for k, v in default.items()})).outcome \
        == LEGACY


# A probe record the old simulator wrote: "ok" meant "Entra accepted", so a refused TLS 1.0 session was ok=false
# with the negotiated protocol and an AADSTS text as its "error" - nothing a real SslStream can report.
OLD_SIMULATOR_PROBE = {"endpoint": ENDPOINTS[0], "mode": "default", "ok": False, "protocol": "Tls", "cipher": "Aes256",
                       "error": "AADSTS1002016: You are using TLS version 1.0, 1.1 and/or 3DES cipher which are "
                                "deprecated to improve the security posture of Azure AD. (negotiated Tls with Aes256)"}


@pytest.mark.parametrize("record, field", [
    (OLD_SIMULATOR_PROBE, "probes[0].protocol"),
    (dict(OLD_SIMULATOR_PROBE, ok=True, protocol="Tls12"), "probes[0].error"),  # a completed handshake has no error
    ({"endpoint": ENDPOINTS[0], "mode": "app", "ok": True, "protocol": "Tls12", "cipher": None, "error": None,
      "url": None, "security_protocol": 240, "web_status": "ProtocolError", "http_status": 400, "aadsts": 700016},
     "probes[0].protocol"),  # HttpWebRequest cannot see the negotiated protocol
    ({"endpoint": ENDPOINTS[0], "mode": "app", "ok": False, "protocol": None, "cipher": None, "error": "x",
      "url": None, "security_protocol": 240, "web_status": "SecureChannelFailure", "http_status": None,
      "aadsts": 1002016}, "probes[0].aadsts"),  # an AADSTS code needs an answer
    ({"endpoint": ENDPOINTS[0], "mode": "tcp", "ok": True, "connected": True, "protocol": None, "cipher": None,
      "error": None, "hash": 32772}, "probes[0]"),  # TCP alone has no hash
])
def test_a_probe_record_outside_the_contract_is_refused_by_the_reader(record, field):
    with pytest.raises(RemoteScriptFailed) as caught:
        read_output("probe", render_output("probe", {"probes": [record]}), "", 0)
    assert "breaks the contract" in str(caught.value) and field in str(caught.value)
