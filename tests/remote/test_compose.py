"""Arguments travel as data: composed scripts carry caller text only inside one base64 literal."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib.core.errors import InputError
from runbook_lib.remote import compose, read_declaration, validate_args
from runbook_lib.remote.scripts import script_source

HOSTILE = [
    "it's \"quoted\"",
    "a; Remove-Item C:\\ -Recurse",
    "$(Stop-Computer -Force)",
    "`$env:PATH`n",
    "line1\nline2\r\n'@\n\"@",
    "\u00e9\u4e2d\u6587 \U0001f512 \u202e",
    "@'\n'@; & calc",
]

ARGS_LINE = re.compile(r"\$TlsRunbookArgs = '([A-Za-z0-9+/=]*)'")


def hostile_apply(text: str) -> dict:
    # Paths and names must be printable (the facts model's rule); data may hold anything but NUL.
    printable = "".join(ch for ch in text if ch.isprintable())
    return {
        "apply_id": "hostile-1",
        "changes": [
            {"path": "HKLM\\SOFTWARE\\Vendor\\" + printable.replace("\\", "/"), "name": printable, "type": "REG_SZ", "data": text},
            {"path": "HKLM\\SOFTWARE\\Vendor", "name": "multi", "type": "REG_MULTI_SZ", "data": [text, text]},
        ],
    }


def caller_text_outside_literal(script: str, text: str) -> bool:
    lines = script.split("\n")
    assert ARGS_LINE.fullmatch(lines[3])
    rest = "\n".join(lines[:3] + lines[4:])
    return any(len(piece) > 3 and piece in rest for piece in re.split(r"[\s\\]+", text))


def code_lines(*names: str) -> list[str]:
    """The packaged scripts as the block carries them: every line but the empty ones, in order."""
    return [line for name in names for line in script_source(name).split("\n") if line.strip()]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_argument_appears_only_inside_the_base64_literal(text):
    script = compose("apply", hostile_apply(text))
    assert script.split("\n")[4:-4] == code_lines("common", "apply")
    assert not caller_text_outside_literal(script, text)
    assert ARGS_LINE.fullmatch(script.split("\n")[3])


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_argument_round_trips_through_the_declaration(text):
    args = hostile_apply(text)
    assert read_declaration(compose("apply", args)) == ("apply", args)


def test_argument_literal_is_base64_of_utf8_json():
    script = compose("reboot", {"delay_s": 30})
    literal = ARGS_LINE.fullmatch(script.split("\n")[3]).group(1)
    assert base64.b64decode(literal).decode("utf-8") == '{"delay_s":30}'


def test_composed_script_starts_with_the_operation_declaration():
    assert compose("probe", {"endpoints": ["a.example:443"]}).startswith("# tls-runbook-operation: probe\n")


# --- hypothesis: any valid arguments round-trip ----------------------------------------------------------------
printable = st.text(min_size=1, max_size=30).filter(str.isprintable)
segment = printable.filter(lambda s: "\\" not in s and not s.isspace())
reg_path = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "HKLM\\" + "\\".join(parts))
data_by_type = {
    "REG_DWORD": st.integers(0, 0xFFFFFFFF),
    "REG_QWORD": st.integers(0, 0xFFFFFFFFFFFFFFFF),
    "REG_SZ": st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    "REG_EXPAND_SZ": st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    "REG_MULTI_SZ": st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10), max_size=4),
    "REG_BINARY": st.binary(max_size=16).map(bytes.hex),
}
change = st.sampled_from(sorted(data_by_type)).flatmap(
    lambda t: st.fixed_dictionaries({"path": reg_path, "name": printable, "type": st.just(t), "data": data_by_type[t]})
)
host = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True)
endpoint = st.builds(lambda h, p: f"{h}:{p}", host, st.integers(1, 65535))
valid_args = st.one_of(
    st.tuples(st.just("apply"), st.fixed_dictionaries({
        "apply_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True),
        "changes": st.lists(change, min_size=1, max_size=4)})),
    st.tuples(st.just("inspect"), st.fixed_dictionaries(
        {"host": host, "values": st.lists(st.fixed_dictionaries({"path": reg_path, "name": printable}), min_size=1, max_size=4)},
        optional={"endpoints": st.lists(endpoint, min_size=1, max_size=3), "timeout_ms": st.integers(100, 120_000)})),
    st.tuples(st.just("session_fix"), st.fixed_dictionaries(
        {"mode": st.sampled_from(["bor", "pin"]), "endpoints": st.lists(endpoint, min_size=1, max_size=3)})),
    st.tuples(st.just("reboot"), st.fixed_dictionaries({"delay_s": st.integers(5, 3600)})),
)


@settings(max_examples=150, deadline=None)
@given(valid_args)
def test_any_valid_arguments_round_trip_through_compose_and_read_declaration(case):
    operation, args = case
    script = compose(operation, args)
    assert read_declaration(script) == (operation, args)
    assert script.split("\n")[4:-4] == code_lines("common", operation)


# --- tampering is refused ---------------------------------------------------------------------------------------
def valid_script() -> str:
    return compose("apply", {"apply_id": "a1", "changes": [{"path": "HKLM\\SOFTWARE\\X", "name": "Y", "type": "REG_DWORD", "data": 1}]})


def reencode(script: str, json_text: str) -> str:
    lines = script.split("\n")
    lines[3] = f"$TlsRunbookArgs = '{base64.b64encode(json_text.encode()).decode()}'"
    return "\n".join(lines)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s.replace("Write-TrResult 'apply' $doc", "Write-TrResult 'apply' $doc; Remove-Item C:\\x"),
        lambda s: s + "\nStop-Computer",
        lambda s: s.replace("# tls-runbook-operation: apply", "# tls-runbook-operation: journal", 1),
        lambda s: s.replace("# tls-runbook-operation: apply", "# tls-runbook-operation: format", 1),
        lambda s: s.replace("$TlsRunbookArgs = '", "$TlsRunbookArgs = '$(calc)", 1),
        lambda s: s.replace("\n", "\r\n"),
        lambda s: s.replace("LanguageMode -ne 'FullLanguage'", "LanguageMode -eq 'NoLanguage'", 1),
        lambda s: s.rstrip("\n"),
        lambda s: reencode(s, '{"apply_id": "a1", "changes": [{"data":1,"name":"Y","path":"HKLM\\\\SOFTWARE\\\\X","type":"REG_DWORD"}]}'),
        lambda s: reencode(s, '{"apply_id":"a1","apply_id":"a1","changes":[]}'),
        lambda s: reencode(s, '{"apply_id":"a1"}'),
    ],
    ids=["code-added", "code-appended", "other-operation", "unknown-operation", "literal-broken",
         "line-endings", "language-check-changed", "closing-lines-missing", "same-args-other-formatting", "duplicate-key", "invalid-args"],
)
def test_tampered_script_is_rejected(tamper):
    script = valid_script()
    assert read_declaration(script)[0] == "apply"
    with pytest.raises(InputError):
        read_declaration(tamper(script))


# --- strict argument validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "operation, args, field",
    [
        ("reboot", {"delay_s": True}, "delay_s"),
        ("reboot", {"delay_s": 5.0}, "delay_s"),
        ("reboot", {"delay_s": 1}, "delay_s"),
        ("reboot", {"delay_s": 5, "force": True}, "unexpected"),
        ("probe", {}, "missing endpoints"),
        ("probe", {"endpoints": []}, "must not be empty"),
        ("probe", {"endpoints": ["login.microsoftonline.com"]}, "endpoints[0]"),
        ("probe", {"endpoints": ["a;b.example:443"]}, "endpoints[0]"),
        ("probe", {"endpoints": ["a.example:70000"]}, "endpoints[0]"),
        ("probe", {"endpoints": "a.example:443"}, "must be a list"),
        ("session_fix", {"mode": "replace", "endpoints": ["a.example:443"]}, "mode"),
        ("apply", {"apply_id": "../etc", "changes": []}, "apply_id"),
        ("apply", {"apply_id": "x", "changes": [{"path": "HKCU\\X", "name": "a", "type": "REG_SZ", "data": ""}]}, "path"),
        ("apply", {"apply_id": "x", "changes": [{"path": "HKLM\\X", "name": "a", "type": "REG_DWORD", "data": "1"}]}, "data"),
        ("apply", {"apply_id": "x", "changes": [{"path": "HKLM\\X", "name": "a", "type": "REG_DWORD", "data": 2**32}]}, "data"),
        ("apply", {"apply_id": "x", "changes": [{"path": "HKLM\\X", "name": "a", "type": "REG_BINARY", "data": "abc"}]}, "data"),
        ("apply", {"apply_id": "x", "changes": [{"path": "HKLM\\X", "name": "a", "type": "REG_SZ", "data": "a\x00b"}]}, "data"),
        ("apply", {"apply_id": "x", "changes": [{"path": "HKLM\\X", "name": "a", "type": "REG_NONE", "data": ""}]}, "type"),
        ("inspect", {"host": "a b", "values": [{"path": "HKLM\\X", "name": "a"}]}, "host"),
        ("inspect", {"host": "web01", "values": [{"path": "HKLM\\X", "name": "a", "type": "REG_SZ"}]}, "values[0]"),
        ("format", {}, "unknown operation"),
    ],
)
def test_invalid_arguments_are_refused_with_the_field_named(operation, args, field):
    with pytest.raises(InputError) as caught:
        validate_args(operation, args)
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)


def test_compose_refuses_invalid_arguments_before_building_anything():
    with pytest.raises(InputError):
        compose("reboot", {"delay_s": "5; Restart-Computer"})
