"""LocalTransport against a stand-in for powershell.exe that answers like the runbook's scripts."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from runbook_lib.core.errors import HostUnreachable, InputError, RemoteScriptFailed, TimedOut
from runbook_lib.remote import LocalTransport

REPO = Path(__file__).resolve().parents[2]
STUB = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from runbook_lib.remote.scripts import decode_invocation, read_declaration, render_output

    behaviour, flags = sys.argv[1], sys.argv[2:]
    stdin = sys.stdin.buffer.read()
    if behaviour == "sleep":
        time.sleep(30)
    if behaviour == "clixml":
        sys.stderr.write('#< CLIXML\\r\\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
                         '<S S="Error">Access to the registry key is denied._x000D__x000A_</S></Objs>')
        sys.exit(1)
    script = decode_invocation("powershell.exe " + " ".join(flags), stdin)
    operation, args = read_declaration(script)
    result = {{"probes": [{{"endpoint": e, "mode": "tls12", "ok": True, "protocol": "Tls12", "cipher": "Aes256",
                          "error": None}} for e in args["endpoints"]]}}
    sys.stdout.write("WARNING: profile noise\\r\\n" + render_output(operation, result, warnings=("stub",)))
    """
)


@pytest.fixture
def stub(tmp_path):
    path = tmp_path / "fake_powershell.py"
    path.write_text(STUB.format(repo=str(REPO)), encoding="utf-8")
    return lambda behaviour: LocalTransport([sys.executable, str(path), behaviour], timeout_s=20)


def test_operation_runs_through_stdin_and_returns_the_parsed_result(stub):
    outcome = stub("ok").run("probe", {"endpoints": ["login.microsoftonline.com:443", "graph.microsoft.com:443"]})
    assert [p["endpoint"] for p in outcome.data["probes"]] == ["login.microsoftonline.com:443", "graph.microsoft.com:443"]
    assert outcome.warnings == ("stub",)
    assert outcome.duration_s > 0


def test_script_error_on_stderr_becomes_remote_script_failed(stub):
    with pytest.raises(RemoteScriptFailed, match="localhost: probe: Access to the registry key is denied."):
        stub("clixml").run("probe", {"endpoints": ["a.example:443"]})


def test_process_that_never_finishes_times_out(tmp_path, stub):
    transport = stub("sleep")
    transport.timeout_s = 0.5
    with pytest.raises(TimedOut, match="did not finish within 0.5 s"):
        transport.run("probe", {"endpoints": ["a.example:443"]})


def test_missing_executable_is_host_unreachable(tmp_path):
    with pytest.raises(HostUnreachable, match="cannot start"):
        LocalTransport(str(tmp_path / "no-powershell.exe")).run("probe", {"endpoints": ["a.example:443"]})


def test_invalid_arguments_fail_before_any_process_starts(tmp_path):
    with pytest.raises(InputError):
        LocalTransport(str(tmp_path / "never-started.exe")).run("probe", {"endpoints": ["a.example"]})


def test_empty_command_is_refused():
    with pytest.raises(InputError):
        LocalTransport([])
