"""Delivery: one command line when it fits cmd.exe's 8191 characters, otherwise a short loader plus stdin."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib.errors import InputError
from runbook_lib.remote import LOADER, MAX_COMMAND_LINE, compose, decode_invocation, invocation

PREFIX = "powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "


def script_of_length(n: int) -> str:
    return ("# " + "x" * n)[:n]


def test_short_script_runs_as_one_encoded_command_without_stdin():
    run = invocation("Write-Output 'hi'")
    assert run.stdin is None
    assert run.command_line.startswith(PREFIX)
    assert base64.b64decode(run.command_line[len(PREFIX):]).decode("utf-16-le") == "Write-Output 'hi'"


def test_longest_direct_command_line_is_exactly_the_limit():
    sizes = [n for n in range(3000, 3080) if invocation(script_of_length(n)).stdin is None]
    longest = invocation(script_of_length(max(sizes)))
    assert len(longest.command_line) <= MAX_COMMAND_LINE
    assert len(invocation(script_of_length(max(sizes) + 3)).command_line) < 1000  # the next size needs the loader


def test_script_past_the_limit_goes_through_the_stdin_loader():
    script = script_of_length(5000)
    run = invocation(script)
    assert run.stdin is not None
    assert base64.b64decode(run.command_line[len(PREFIX):]).decode("utf-16-le") == LOADER
    assert base64.b64decode(run.stdin.strip()).decode("utf-8") == script


def test_loader_command_line_is_short():
    assert len(invocation(compose("inspect", {"host": "h", "values": [{"path": "HKLM\\A", "name": "B"}]})).command_line) < 1000


def test_real_operation_scripts_are_delivered_by_the_loader():
    run = invocation(compose("probe", {"endpoints": ["login.microsoftonline.com:443"]}))
    assert run.stdin is not None and len(run.command_line) <= MAX_COMMAND_LINE


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6000))
def test_decode_invocation_inverts_both_delivery_paths(script):
    run = invocation(script)
    assert decode_invocation(run.command_line, run.stdin) == script


def test_both_paths_are_exercised_by_size():
    assert invocation("a" * 10).stdin is None
    assert invocation("a" * 4000).stdin is not None


def test_argv_keeps_the_encoded_command_as_one_argument():
    run = invocation("Write-Output 1")
    assert run.argv[:2] == ["powershell", "-NoProfile"]
    assert run.argv[-2] == "-EncodedCommand" and len(run.argv) == 7


@pytest.mark.parametrize(
    "command_line, stdin",
    [
        ("cmd /c dir", None),
        (PREFIX + "not*base64", None),
        (PREFIX + base64.b64encode("x".encode("utf-16-le")).decode() + " extra", None),
        (PREFIX + base64.b64encode("x".encode("utf-16-le")).decode(), b"c29tZXRoaW5n"),
        (PREFIX + base64.b64encode(LOADER.encode("utf-16-le")).decode(), None),
        (PREFIX + base64.b64encode(LOADER.encode("utf-16-le")).decode(), b"%%%"),
    ],
    ids=["other-command", "bad-base64", "trailing-argument", "direct-with-stdin", "loader-without-stdin", "loader-bad-stdin"],
)
def test_decode_invocation_refuses_what_invocation_never_produces(command_line, stdin):
    with pytest.raises(InputError):
        decode_invocation(command_line, stdin)
