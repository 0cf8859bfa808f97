"""Delivery: one fixed command line, the script as plain ASCII text on stdin, read as PowerShell's console reads it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib.core.errors import InputError
from runbook_lib.remote import OPERATIONS, POWERSHELL_COMMAND, compose, decode_invocation, invocation
from runbook_lib.simulator.wsman_shells import CMD_LINE_LIMIT, console_statements, statement_parses

from test_ps_scripts import SAMPLE_ARGS

# The shapes endpoint-protection products flag as "decode and run": none may appear in what travels.
DECODE_AND_RUN = ("-encodedcommand", "[scriptblock]::create", "invoke-expression", "iex ", "frombase64string(($input")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_travels_as_plain_text_on_stdin_of_one_fixed_command_line(operation):
    run = invocation(compose(operation, SAMPLE_ARGS[operation]))
    assert run.command_line == POWERSHELL_COMMAND == "powershell.exe -NoProfile -NonInteractive -Command -"
    assert len(run.command_line) < CMD_LINE_LIMIT
    text = run.stdin.decode("ascii")
    assert "function ConvertTo-TrJson($Value) {" in text  # the code itself, readable, not an encoding of it
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_nothing_is_decoded_and_then_run(operation):
    delivered = (POWERSHELL_COMMAND + "\n" + compose(operation, SAMPLE_ARGS[operation])).lower()
    assert [shape for shape in DECODE_AND_RUN if shape in delivered] == []
    assert "-executionpolicy" not in delivered  # console input is not subject to it; asking to bypass only alarms


@pytest.mark.parametrize("operation", OPERATIONS)
def test_the_console_runs_the_script_as_three_statements_the_block_last_and_whole(operation):
    statements, never_ran = console_statements(compose(operation, SAMPLE_ARGS[operation]))
    assert never_ran == ""
    assert len(statements) == 3
    declaration, guard, block = statements
    assert declaration == f"# tls-runbook-operation: {operation}"
    assert "\n" not in guard and guard.startswith("if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage')")
    assert block.startswith("& {\n$TlsRunbookArgs = '") and block.endswith("\n}") and statement_parses(block)


def test_an_empty_line_inside_the_block_would_cut_it_into_a_parse_error():
    text = compose("probe", SAMPLE_ARGS["probe"]).replace("\nfunction ConvertTo-TrJson(", "\n\nfunction ConvertTo-TrJson(", 1)
    statements, _ = console_statements(text)
    assert not statement_parses(statements[2])


def test_without_the_closing_empty_lines_the_block_would_never_run():
    text = compose("probe", SAMPLE_ARGS["probe"]).rstrip("\n")
    statements, never_ran = console_statements(text)
    assert len(statements) == 2 and never_ran.startswith("& {")


def test_console_model_follows_powershell_quoting_and_continuation_rules():
    finished = ["$a = 'it''s { open'", '$b = "a $(Get-Date) }"', "Write-Output 1 # { comment", "<# { #> $c = 1"]
    unfinished = ["if ($a) {", '$b = "a $(Get-Date', "Get-Process |", "$x = 1 + `", "$s = @'", "<# open"]
    assert [console_statements(line)[0] for line in finished] == [[line] for line in finished]
    assert [console_statements(line)[1] for line in unfinished] == unfinished


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=2000))
def test_decode_invocation_inverts_invocation_for_any_ascii_script(script):
    run = invocation(script)
    assert decode_invocation(run.command_line, run.stdin) == script


def test_a_script_that_is_not_ascii_is_refused_before_it_travels():
    with pytest.raises(InputError, match="ASCII"):
        invocation("Write-Output 'caf\u00e9'")


@pytest.mark.parametrize(
    "command_line, stdin",
    [
        ("cmd /c dir", b"x\r\n"),
        ("powershell -EncodedCommand VwByAGkAdABlAA==", b"x\r\n"),
        (POWERSHELL_COMMAND + " extra", b"x\r\n"),
        (POWERSHELL_COMMAND, b""),
        (POWERSHELL_COMMAND, "caf\u00e9\r\n".encode("utf-8")),
    ],
    ids=["other-command", "encoded-command", "trailing-argument", "no-stdin", "not-ascii"],
)
def test_decode_invocation_refuses_what_invocation_never_produces(command_line, stdin):
    with pytest.raises(InputError):
        decode_invocation(command_line, stdin)
