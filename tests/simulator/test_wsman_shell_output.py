"""Commands see what a WinRS shell would give them, and clients get output shaped as a real host sends it."""

from __future__ import annotations

import base64
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsman_testkit import RecordingHost, protocol, session

from runbook_lib.simulator import wsman_operations
from runbook_lib.simulator.wsman import CommandResult, clixml_error, clixml_progress_noise, decode_encoded_command


def _encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


def test_command_line_over_8191_characters_is_too_long_for_cmd(start_server, host):
    server = start_server(host, auth="basic")
    client = session(server, "basic")

    too_long = client.run_ps("#" * 3100)
    fits = client.run_ps("#" * 2900)

    assert too_long.status_code == 1
    assert too_long.std_err == b"The command line is too long.\r\n"
    assert too_long.std_out == b""
    assert fits.status_code == 0
    assert fits.std_out == b"ran:" + b"#" * 2900 + b"\r\n"
    assert len(host.calls) == 1  # the long one never reached the host


def test_command_line_of_exactly_8191_characters_runs(start_server, host):
    server = start_server(host, auth="basic")
    client = session(server, "basic")
    argument = "x" * (8191 - len("echo "))

    assert client.run_cmd("echo", [argument]).status_code == 0
    assert client.run_cmd("echo", [argument + "x"]).status_code == 1


def test_stdin_sent_before_the_first_receive_reaches_the_handler(start_server, host):
    server = start_server(host, auth="basic")
    client = protocol(server, "basic")
    shell_id = client.open_shell()
    command_id = client.run_command(shell_id, "findstr", ["x"])

    client.send_command_input(shell_id, command_id, b"first\r\n")
    client.send_command_input(shell_id, command_id, b"second\r\n", end=True)
    client.get_command_output(shell_id, command_id)

    assert host.calls == [("findstr x", b"first\r\nsecond\r\n")]


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_output_larger_than_one_receive_arrives_intact_over_several(start_server, transport):
    lines = "".join(f"line {number:06d} of a long listing\n" for number in range(8000))
    server = start_server(RecordingHost(lambda command, stdin: CommandResult(stdout=lines)), auth="basic")
    client = protocol(server, transport)
    shell_id = client.open_shell()
    command_id = client.run_command(shell_id, "dir", ["/s"])

    receives = [client.get_command_output_raw(shell_id, command_id)]
    while not receives[-1][3]:
        receives.append(client.get_command_output_raw(shell_id, command_id))

    expected = lines.replace("\n", "\r\n").encode()
    assert len(expected) > 4 * wsman_operations.RECEIVE_BUDGET
    assert len(receives) >= 4
    assert b"".join(receive[0] for receive in receives) == expected


TEXT = "Grüße – ✓ 日本\n"


def test_codepage_65001_carries_any_text_as_utf8(start_server):
    server = start_server(RecordingHost(lambda command, stdin: CommandResult(stdout=TEXT)), auth="basic")
    client = protocol(server, "basic")
    shell_id = client.open_shell(codepage=65001)

    stdout, _, _ = client.get_command_output(shell_id, client.run_command(shell_id, "type", ["note.txt"]))

    assert stdout.decode("utf-8") == TEXT.replace("\n", "\r\n")


def test_default_codepage_437_degrades_what_it_cannot_show(start_server):
    server = start_server(RecordingHost(lambda command, stdin: CommandResult(stdout=TEXT)), auth="basic")

    result = session(server, "basic").run_cmd("type", ["note.txt"])

    assert result.std_out == "Grüße ? ? ??\r\n".encode("cp437")


def test_clixml_error_is_cleaned_by_run_ps_into_the_message(start_server):
    def failing(command_line, stdin):
        return CommandResult(stdout="", stderr=clixml_error("Access is denied.\nAt line:1 char:1"), exit_code=1)

    server = start_server(RecordingHost(failing), auth="basic")

    result = session(server, "basic").run_ps("Set-ItemProperty HKLM:\\x -Name y -Value 1")

    assert result.status_code == 1
    assert result.std_err == b"Access is denied.\nAt line:1 char:1"


def test_progress_only_clixml_reaches_the_caller_undecoded(start_server):
    def noisy(command_line, stdin):
        return CommandResult(stdout="ok\n", stderr=clixml_progress_noise())

    server = start_server(RecordingHost(noisy), auth="basic")

    result = session(server, "basic").run_ps("Import-Module Foo; 'ok'")

    assert result.status_code == 0
    assert result.std_err.startswith(b"#< CLIXML\r\n")
    assert b'S="progress"' in result.std_err


def test_clixml_error_with_progress_noise_still_yields_the_message(start_server):
    def both(command_line, stdin):
        return CommandResult(stdout="", stderr=clixml_error("Boom", with_progress_noise=True), exit_code=1)

    server = start_server(RecordingHost(both), auth="basic")

    assert session(server, "basic").run_ps("throw 'Boom'").std_err == b"Boom"


def test_clixml_escapes_markup_and_lookalike_escapes():
    stderr = clixml_error("a < b & _x0041_")

    assert "a &lt; b &amp; _x005F_x0041_" in stderr


@pytest.mark.parametrize(
    "command_line",
    [
        "powershell -encodedcommand {}",
        "PowerShell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {}",
        "powershell -e {}",
        "POWERSHELL -ENC {}",
        "powershell -ec {}",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -enc {}",
    ],
)
def test_decode_encoded_command_recognises_the_spellings_of_powershell(command_line):
    assert decode_encoded_command(command_line.format(_encoded("Get-Date"))) == "Get-Date"


@pytest.mark.parametrize(
    "command_line",
    [
        "cmd /c powershell -enc {}",
        "pwsh -enc {}",
        "powershell -ExecutionPolicy {}",
        "powershell -enc not*base64",
        "powershell -Command Get-Date",
        "",
    ],
)
def test_decode_encoded_command_ignores_everything_else(command_line):
    assert decode_encoded_command(command_line.format(_encoded("Get-Date"))) is None


@given(st.text(min_size=1, max_size=200))
def test_decode_encoded_command_round_trips_any_script_as_run_ps_encodes_it(script):
    assert decode_encoded_command(f"powershell -encodedcommand {_encoded(script)}") == script


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_concurrent_callers_each_get_their_own_output(start_server, host, transport):
    server = start_server(host, auth="basic")
    failures: list[str] = []

    def caller(worker: int) -> None:
        client = session(server, transport)
        for call in range(15):
            script = f"'worker {worker} call {call}'"
            result = client.run_ps(script)
            if result.std_out != f"ran:{script}\r\n".encode():
                failures.append(f"{script!r} got {result.std_out!r}")

    threads = [threading.Thread(target=caller, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(host.calls) == 60
