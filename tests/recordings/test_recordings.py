"""Recordings: WinRM exchanges saved above NTLM encryption, replayed below the real reader, compared with the simulator.

``simulator/`` holds the simulator's own recordings, made with
``tls-runbook recordings make tests/recordings/simulator --profile win7_wmf51 --profile ws2016_tls12_disabled_by_admx
--profile ws2022_healthy``; a recording of a real host goes beside them the same way (``inspect --record``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from leak_forms import written_forms

from runbook_lib.core import facts
from runbook_lib import fidelity
from runbook_lib.remote import recording
from runbook_lib.core.engine import assess
from runbook_lib.core.errors import TimedOut
from runbook_lib.core.plan import RemediationPlan
from runbook_lib.simulator.profile import builtin_profile
from runbook_lib.runbook.operations import apply_plan, inspect_host, probe_host
from runbook_lib.remote.target import Target, connect

SHIPPED = Path(__file__).parent / "simulator"
SHIPPED_HOSTS = sorted(p for p in SHIPPED.iterdir() if p.is_dir())
REMAKE = ("tls-runbook recordings make tests/recordings/simulator " +
          " ".join(f"--profile {p.name.replace('-', '_')}" for p in SHIPPED_HOSTS))


def profile_of(folder: Path) -> str:
    note = recording.load_host(folder)[0].note or ""
    return re.search(r"profile (\w+)$", note).group(1)


def replay_target(folder: Path) -> Target:
    operations = recording.load_host(folder)
    transport = recording.ReplayTransport(operations)
    return Target(operations[0].host, transport, transport.endpoint)


@pytest.mark.parametrize("profile", ["ws2016_tls12_disabled_by_admx", "win7_wmf51"])
def test_a_recording_made_against_the_simulator_replays_to_the_same_verdict(profile, simulated, tmp_path):
    target = connect(simulated(profile).url)
    recording.record(target.transport, tmp_path)
    live = assess(inspect_host(target))
    [replayed] = recording.replay_host(tmp_path)
    assert replayed.verdict == live
    assert replayed.verdict.outcome == builtin_profile(profile).intent


@pytest.mark.parametrize("folder", SHIPPED_HOSTS, ids=lambda p: p.name)
def test_shipped_recordings_replay_through_the_reader_and_engine_to_the_profiles_verdict(folder):
    replayed = recording.replay_host(folder)
    assert [r.operation.operation for r in replayed] == ["inspect", "probe"]
    verdict = replayed[0].verdict
    profile = builtin_profile(profile_of(folder))
    assert verdict.outcome == profile.intent and set(verdict.blockers) == set(profile.intent_blockers)
    assert verdict.simulated and replayed[1].data["simulated"] is True
    assert replayed[1].data["probes"], "the probe result came through the reader"


@pytest.mark.parametrize("folder", SHIPPED_HOSTS, ids=lambda p: p.name)
def test_the_simulator_answers_as_its_shipped_recordings_field_by_field(folder):
    replayed = recording.replay_host(folder)
    found = fidelity.compare_with_simulator(replayed, profile_of(folder))
    assert found == [], f"the simulator drifted from its recordings; if that is intended, run: {REMAKE}"


def test_differences_are_named_by_field():
    [replayed, _] = recording.replay_host(SHIPPED / "ws2016-tls12-disabled-by-admx")
    found = fidelity.compare_with_simulator([replayed], "ws2016_untouched")
    client = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\Client"
    assert f"001 inspect: result.registry[{client}\\Enabled]: only in the recording" in found
    assert any(line.startswith(f"001 inspect: result.group_policy.rsop.settings[{client}\\Enabled]") for line in found)
    assert not [line for line in found if "collected_at" in line], "run-to-run fields are not differences"


def test_replay_refuses_a_run_that_differs_from_the_recording():
    target = replay_target(SHIPPED / "ws2022-healthy")
    with pytest.raises(recording.RecordingMismatch, match="the client runs probe, the recording has inspect"):
        target.run("probe", {"endpoints": ["login.microsoftonline.com:443"]})
    target = replay_target(SHIPPED / "ws2022-healthy")
    args = recording.load_host(SHIPPED / "ws2022-healthy")[0].args
    with pytest.raises(recording.RecordingMismatch, match="other arguments"):
        target.run("inspect", {**args, "host": "another-host"})


def test_replay_checks_the_script_the_client_sends(monkeypatch):
    from runbook_lib.remote import scripts, transport as transport_module

    operations = recording.load_host(SHIPPED / "ws2022-healthy")
    args = operations[0].args
    monkeypatch.setattr(transport_module, "compose",
                        lambda operation, _: scripts.compose(operation, {**args, "host": "another-host"}))
    with pytest.raises(recording.RecordingMismatch, match="other arguments than the recording"):
        recording.ReplayTransport(operations).run("inspect", args)


def test_a_lost_connection_is_recorded_and_replays_as_the_same_error(simulated, tmp_path):
    node = simulated("win7_wmf51")
    target = connect(node.url)
    host_facts = inspect_host(target)
    # The network drops after 3 values and is back at once: the shell delete ends the apply process on the host.
    node.host.drop_apply_after, node.host.apply_value_s = 3, 0.4
    recording.record(target.transport, tmp_path)
    plan = RemediationPlan.from_verdict(assess(host_facts), host_facts)
    live = apply_plan(target, plan, apply=True, poll_s=0.2)
    assert not live.completed and "connection lost" in live.recovered
    [apply_file, *_] = sorted(tmp_path.glob("*-apply.json"))
    exchanges = recording.load_operation(apply_file).exchanges
    # the shell's delete on the session's connection finds it lost too: a lost connection, not an HTTP 400 for a
    # message the host could not decrypt (the delete on a fresh session that follows is not this recording's)
    assert [(e.action, e.status, e.error) for e in exchanges if e.error or e.status != 200] == \
        [("Receive", 0, "ConnectionError"), ("Delete", 0, "ConnectionError")]
    operations = [recording.load_operation(apply_file)]
    with pytest.raises(TimedOut, match="connection lost after the command was sent"):
        recording.ReplayTransport(operations).run(operations[0].operation, operations[0].args)


def test_no_credential_header_or_ntlm_token_is_in_a_recording(simulated, credential, tmp_path):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    recording.record(target.transport, tmp_path)
    inspect_host(target)
    probe_host(target)
    data = b"".join(path.read_bytes() for path in tmp_path.glob("*.json"))
    assert len(list(tmp_path.glob("*.json"))) == 2 and b"<rsp:Receive" in data.replace(b"\\", b"")
    assert b"HTTP-SPNEGO-session-encrypted" not in data, "recorded above NTLM message encryption"
    for form, encoded in written_forms(credential.password).items():
        assert encoded not in data, f"the password is in a recording as {form}"
    for marker in (b"Authorization", b"NTLMSSP", b"TlRMTVNT", b"Negotiate ", credential.password.encode()):
        assert marker not in data


def test_a_credential_that_appears_in_an_answer_is_scrubbed_before_it_reaches_the_disk(simulated, credential,
                                                                                       tmp_path):
    node = simulated("ws2016_untouched")
    target = connect(node.url)
    recording.record(target.transport, tmp_path)
    change = {"path": "HKLM\\SOFTWARE\\Echo", "name": "Value", "type": "REG_SZ", "data": credential.password}
    target.run("apply", {"apply_id": "echo-1", "changes": [change]})  # the host echoes the data back
    data = b"".join(path.read_bytes() for path in tmp_path.glob("*.json"))
    assert [form for form, encoded in written_forms(credential.password).items() if encoded in data] == []
    assert b"[REDACTED]" in data


def test_cli_records_inspect_and_replays_it_to_a_verdict(simulated, credential, tmp_path):
    node = simulated("ws2016_tls12_disabled_by_admx")
    tool = [sys.executable, "-m", "runbook_lib.cli"]
    facts_file = tmp_path.parent / f"{tmp_path.name}-facts.json"
    inspect = subprocess.run([*tool, "inspect", node.url, "--record", str(tmp_path), "-o", str(facts_file)],
                             capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    [host_folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert host_folder.name == "127.0.0.1" and len(list(host_folder.glob("*-inspect.json"))) == 1
    replay = subprocess.run([*tool, "recordings", "replay", str(tmp_path), "--compare",
                             "ws2016_tls12_disabled_by_admx"], capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "inspect: verdict blocked (gpo.managed)" in replay.stdout and "same answers" in replay.stdout
    assert facts.load(facts_file).group_policy.rsop


def test_cli_make_writes_one_folder_per_simulated_host_and_replay_of_nothing_is_bad_input(tmp_path):
    tool = [sys.executable, "-m", "runbook_lib.cli", "recordings"]
    made = subprocess.run([*tool, "make", str(tmp_path), "--profile", "ws2022_healthy", "--operations", "inspect"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and made.stdout.startswith("SIMULATED: recorded inspect in"), made.stderr
    [operation] = recording.load_host(tmp_path / "ws2022-healthy")
    assert operation.note == "SIMULATED host: tls-runbook simulator profile ws2022_healthy"
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([*tool, "replay", str(tmp_path / "empty")], capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "no recordings" in empty.stderr


def test_a_broken_recording_is_one_line_of_bad_input(tmp_path):
    (tmp_path / "x-inspect.json").write_text(json.dumps({"schema": recording.SCHEMA, "operation": "inspect"}))
    with pytest.raises(recording.InputError, match="recording x-inspect.json") as caught:
        recording.load_host(tmp_path)
    assert "\n" not in str(caught.value)
