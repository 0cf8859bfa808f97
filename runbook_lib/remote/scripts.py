"""Compose the PowerShell that runs on a target, deliver it as plain text, and read back its one result.

A composed script is, line for line::

    # tls-runbook-operation: <operation>
    if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { <ok:false result>; exit 1 }
    & {
    $TlsRunbookArgs = '<base64 of UTF-8 JSON>'
    <common.ps1 without blank lines>
    <operation>.ps1 without blank lines
    }
    <two empty lines>

It travels as ASCII on the stdin of ``powershell.exe -NoProfile -NonInteractive -Command -``: no script on the
command line (so no length limit), nothing decoded and then invoked. PowerShell reads ``-Command -`` input like a
console prompt (Windows PowerShell 2.0 through 5.1 and PowerShell 7 alike): a complete one-line statement runs at
once, a multi-line statement runs only when an empty line follows it, an empty line inside it cuts it off, and an
unfinished one at the end of the input is silently dropped. Hence the shape: the language check is one line and
runs first (under Constrained Language Mode it is the only thing that can still answer); everything else is one
``& { ... }`` block with no empty line inside, ended by empty lines.

Only ``[A-Za-z0-9+/=]`` from the caller's arguments ever reaches the code; the base64 literal is decoded as data
and parsed as JSON, never run, so a host name or registry value cannot change what runs. The simulator answers by
calling :func:`decode_invocation` and :func:`read_declaration`, which accept only exactly what :func:`compose`
produces, so any drift between the two sides fails loudly.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Callable

from runbook_lib.core.errors import InputError, RemoteScriptFailed, one_line
from runbook_lib.core.facts import host_problem
from runbook_lib.remote.contract import contract_problem
from runbook_lib.core.registry import REG_TYPES, data_problem, name_problem, path_problem

OPERATIONS = ("inspect", "apply", "probe", "session_fix", "reboot", "last_boot", "journal", "restore", "preflight")
RESULT_START = "<<<TLS-RUNBOOK-RESULT"
RESULT_END = "TLS-RUNBOOK-RESULT>>>"
RESULT_SCHEMA = "tls-runbook/result/v1"
HOST_FACTS_SCHEMA = "tls-runbook/host-facts/v1"
# The one process every operation starts; the script is its stdin.
POWERSHELL_COMMAND = "powershell.exe -NoProfile -NonInteractive -Command -"
LANGUAGE_MODE_ERROR = "Constrained Language Mode: the runbook needs FullLanguage or a signed script"

_DECLARATION = "# tls-runbook-operation: "
_BLOCK_OPEN, _BLOCK_CLOSE = "& {", "}"
_ARGS_LINE = re.compile(r"\$TlsRunbookArgs = '([A-Za-z0-9+/=]*)'")


@dataclass(frozen=True)
class Invocation:
    """One process start on the target: the command line, and the script to feed its stdin."""

    command_line: str
    stdin: bytes

    @property
    def argv(self) -> list[str]:
        """The command line as arguments; every token is free of spaces and quotes by construction."""
        return self.command_line.split(" ")


# --- arguments -------------------------------------------------------------------------------------------------
def _fail(operation: str, field: str, problem: str) -> InputError:
    return InputError(f"{operation} arguments: {field}: {problem}")


def _text(op: str, field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(op, field, "must be a string")
    if "\x00" in value:
        raise _fail(op, field, "must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(op, field, "is not valid Unicode text") from None
    return value


def _integer(op: str, field: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int:
        raise _fail(op, field, "must be an integer")
    if not low <= value <= high:
        raise _fail(op, field, f"must be between {low} and {high}")
    return value


def _list(op: str, field: str, value: Any, *, empty: bool = False) -> list:
    if not isinstance(value, list):
        raise _fail(op, field, "must be a list")
    if not empty and not value:
        raise _fail(op, field, "must not be empty")
    return value


def _keys(op: str, field: str, value: Any, required: set[str], optional: frozenset[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise _fail(op, field, "must be an object")
    missing = sorted(required - value.keys())
    extra = sorted(value.keys() - required - optional, key=str)
    if missing:
        raise _fail(op, field, f"missing {', '.join(missing)}")
    if extra:
        raise _fail(op, field, f"unexpected key(s) {', '.join(repr(k) for k in extra)}")
    return value


# Paths, names and host names follow the facts model's rules, so whatever inspect reports loads back cleanly.
def _registry_value(op: str, field: str, item: dict) -> None:
    for key, problem in (("path", path_problem), ("name", name_problem)):
        _text(op, f"{field}.{key}", item[key])
        text = problem(item[key])
        if text:
            raise _fail(op, f"{field}.{key}", text)


def _endpoints(op: str, field: str, value: Any) -> None:
    for i, endpoint in enumerate(_list(op, field, value)):
        where = f"{field}[{i}]"
        name, sep, port = _text(op, where, endpoint).rpartition(":")
        if not sep or host_problem(name):
            raise _fail(op, where, "must be name:port with a DNS name or IPv4 address")
        if not re.fullmatch(r"\d{1,5}", port, re.ASCII) or not 1 <= int(port) <= 65535:
            raise _fail(op, where, "port must be 1-65535")


def _timeout(op: str, args: dict) -> None:
    if "timeout_ms" in args:
        _integer(op, "timeout_ms", args["timeout_ms"], 100, 120_000)


_APPLY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _apply_id(op: str, value: Any) -> None:
    if not isinstance(value, str) or not _APPLY_ID.fullmatch(value):
        raise _fail(op, "apply_id", "must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit")


def _registry_data(op: str, field: str, reg_type: str, data: Any) -> None:
    if isinstance(data, list):
        _list(op, field, data, empty=True)
        for i, item in enumerate(data):
            _text(op, f"{field}[{i}]", item)
    elif isinstance(data, str):
        _text(op, field, data)
    elif type(data) is not int:
        raise _fail(op, field, "must be an integer, a string or a list of strings")
    problem = data_problem(reg_type, data)
    if problem:
        raise _fail(op, field, problem)


def _check_inspect(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"host", "values"}, frozenset({"endpoints", "timeout_ms"}))
    problem = host_problem(args["host"])
    if problem:
        raise _fail(op, "host", problem)
    for i, item in enumerate(_list(op, "values", args["values"])):
        _registry_value(op, f"values[{i}]", _keys(op, f"values[{i}]", item, {"path", "name"}))
    if "endpoints" in args:
        _endpoints(op, "endpoints", args["endpoints"])
    _timeout(op, args)


def _check_apply(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"apply_id", "changes"})
    _apply_id(op, args["apply_id"])
    for i, change in enumerate(_list(op, "changes", args["changes"])):
        where = f"changes[{i}]"
        _registry_value(op, where, _keys(op, where, change, {"path", "name", "type", "data"}))
        if change["type"] not in REG_TYPES:
            raise _fail(op, f"{where}.type", f"must be one of {', '.join(REG_TYPES)}")
        _registry_data(op, f"{where}.data", change["type"], change["data"])


def _check_journal(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"apply_id"}, frozenset({"claim_if_absent"}))
    _apply_id(op, args["apply_id"])
    if not isinstance(args.get("claim_if_absent", False), bool):
        raise _fail(op, "claim_if_absent", "must be true or false")


def _check_restore(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"apply_id", "values"})
    _apply_id(op, args["apply_id"])
    for i, item in enumerate(_list(op, "values", args["values"])):
        _registry_value(op, f"values[{i}]", _keys(op, f"values[{i}]", item, {"path", "name"}))


def _check_probe(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"endpoints"}, frozenset({"timeout_ms"}))
    _endpoints(op, "endpoints", args["endpoints"])
    _timeout(op, args)


def _check_session_fix(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"mode", "endpoints"}, frozenset({"timeout_ms"}))
    if args["mode"] not in ("bor", "pin"):
        raise _fail(op, "mode", "must be 'bor' or 'pin'")
    _endpoints(op, "endpoints", args["endpoints"])
    _timeout(op, args)


def _check_reboot(op: str, args: dict) -> None:
    _keys(op, "arguments", args, {"delay_s"})
    _integer(op, "delay_s", args["delay_s"], 5, 3600)


def _no_arguments(op: str, args: dict) -> None:
    _keys(op, "arguments", args, set())


_CHECKS: dict[str, Callable[[str, dict], None]] = {
    "inspect": _check_inspect,
    "apply": _check_apply,
    "probe": _check_probe,
    "session_fix": _check_session_fix,
    "reboot": _check_reboot,
    "last_boot": _no_arguments,
    "journal": _check_journal,
    "restore": _check_restore,
    "preflight": _no_arguments,
}


def validate_args(operation: str, args: Any) -> None:
    """Refuse anything but the exact argument shape an operation documents, before it can reach a host."""
    if operation not in _CHECKS:
        raise InputError(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
    _CHECKS[operation](operation, args)


# --- composing and reading back --------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def script_source(name: str) -> str:
    """Text of one packaged .ps1 file (``common`` or an operation)."""
    return resources.files("runbook_lib.remote").joinpath("ps", f"{name}.ps1").read_text(encoding="utf-8")


def _encode_args(args: dict) -> str:
    text = json.dumps(args, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@lru_cache(maxsize=None)
def _block_lines(name: str) -> tuple[str, ...]:
    """A .ps1 file as lines for the ``& { }`` block: an empty line there would end the block early."""
    return tuple(line for line in script_source(name).splitlines() if line.strip())


def language_mode_lines(operation: str) -> tuple[str, ...]:
    """What the language check prints: the operation's ok:false result, one line between the markers."""
    return (RESULT_START, _envelope_json(operation, error=LANGUAGE_MODE_ERROR), RESULT_END)


def _language_guard(operation: str) -> str:
    # Only what Constrained Language Mode permits: a property read, a comparison, string output and exit.
    said = "; ".join(f"'{line}'" for line in language_mode_lines(operation))
    return f"if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') {{ {said}; exit 1 }}"


def compose(operation: str, args: dict) -> str:
    """The complete script for one operation as it travels (LF line ends here, CRLF on the wire)."""
    validate_args(operation, args)
    return "\n".join(
        [
            _DECLARATION + operation,
            _language_guard(operation),
            _BLOCK_OPEN,
            f"$TlsRunbookArgs = '{_encode_args(args)}'",
            *_block_lines("common"),
            *_block_lines(operation),
            _BLOCK_CLOSE,
            "",
            "",
            "",
        ]
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def read_declaration(script_text: str) -> tuple[str, dict]:
    """The operation and arguments of a composed script; anything :func:`compose` would not produce is refused."""
    lines = script_text.split("\n", 4)
    first = lines[0]
    operation = first[len(_DECLARATION) :] if first.startswith(_DECLARATION) else ""
    match = _ARGS_LINE.fullmatch(lines[3]) if len(lines) > 4 else None
    if operation not in OPERATIONS or match is None:
        raise InputError("script: not a tls-runbook script (declaration or argument line missing)")
    try:
        args = json.loads(base64.b64decode(match.group(1), validate=True).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"script: argument literal does not decode: {type(exc).__name__}") from None
    if compose(operation, args) != script_text:
        raise InputError(f"script: {operation} script differs from what compose() produces for its arguments")
    return operation, args


def invocation(script: str) -> Invocation:
    """The fixed PowerShell command line, with the script as ASCII text with CRLF line ends on its stdin."""
    try:
        body = script.replace("\n", "\r\n").encode("ascii")
    except UnicodeEncodeError:
        raise InputError("script: only ASCII travels unchanged through every console code page") from None
    return Invocation(POWERSHELL_COMMAND, body)


def decode_invocation(command_line: str, stdin: bytes | None) -> str:
    """The script an :func:`invocation` delivers (the simulator's view of a process start)."""
    if command_line != POWERSHELL_COMMAND:
        raise InputError("command line: not the tls-runbook PowerShell invocation")
    if not stdin:
        raise InputError("stdin: empty; the script travels on stdin")
    try:
        return stdin.decode("ascii").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise InputError("stdin: not ASCII text") from None


# --- output ----------------------------------------------------------------------------------------------------
def _envelope_json(operation: str, result: dict | None = None, *, error: str | None = None,
                   warnings: tuple[str, ...] = ()) -> str:
    envelope: dict[str, Any] = {"schema": RESULT_SCHEMA, "operation": operation}
    if error is None:
        envelope.update(ok=True, result=result, warnings=list(warnings))
    else:
        envelope.update(ok=False, error=error)
    return json.dumps(envelope, ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def render_output(
    operation: str, result: dict | None = None, *, error: str | None = None, warnings: tuple[str, ...] = ()
) -> str:
    """Stdout exactly as the scripts write it, for the simulator and for tests (CRLF, ASCII only)."""
    doc = _envelope_json(operation, result, error=error, warnings=warnings)
    return f"\r\n{RESULT_START}\r\n{doc}\r\n{RESULT_END}\r\n"


_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def clixml_errors(stderr: str) -> str:
    """The error text in PowerShell's CLIXML stderr (progress records and unparsable parts are ignored)."""
    if not stderr.startswith("#< CLIXML"):
        return stderr
    messages = []
    for doc in re.findall(r"<Objs\b.*?</Objs>", stderr, flags=re.S):
        try:
            root = ET.fromstring(doc)
        except ET.ParseError:
            continue
        for node in root:
            if node.tag.rsplit("}", 1)[-1] == "S" and node.get("S") == "Error" and node.text:
                messages.append(_CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), node.text))
    return "".join(messages)


def _decode(data: bytes | str, encoding: str) -> str:
    return data.decode(encoding, errors="replace") if isinstance(data, bytes) else data


@dataclass(frozen=True)
class ScriptOutput:
    """A result document and the warnings the script reported beside it."""

    data: dict
    warnings: tuple[str, ...] = ()


def read_output(operation: str, stdout: bytes | str, stderr: bytes | str, exit_code: int, *, host: str = "target",
                encoding: str = "utf-8") -> ScriptOutput:
    """The result and warnings of one operation run, or RemoteScriptFailed carrying the script's one-line error.

    ``encoding`` is the console code page the output was written in: the result block is ASCII whatever it is,
    but PowerShell's own error text (localized on most hosts) is not."""
    out = _decode(stdout, encoding)
    blocks = re.findall(re.escape(RESULT_START) + r"\r?\n(.*?)\r?\n" + re.escape(RESULT_END), out, flags=re.S)
    if not blocks:
        text = one_line(clixml_errors(_decode(stderr, encoding))) or f"no result and no error output (exit code {exit_code})"
        raise RemoteScriptFailed(host, f"{operation}: {text}")
    if len(blocks) > 1:
        raise RemoteScriptFailed(host, f"{operation}: {len(blocks)} result blocks in the output, expected one")
    try:
        # Console hosts may wrap long lines; the JSON itself never holds a raw line break.
        envelope = json.loads("".join(blocks[0].split("\n")).replace("\r", ""))
    except ValueError:
        raise RemoteScriptFailed(host, f"{operation}: the result block is not JSON") from None
    if not isinstance(envelope, dict) or envelope.get("schema") != RESULT_SCHEMA or envelope.get("operation") != operation:
        raise RemoteScriptFailed(host, f"{operation}: the result block is not a {operation} result")
    if envelope.get("ok") is not True:
        raise RemoteScriptFailed(host, f"{operation}: {envelope.get('error') or 'failed without an error text'}")
    if not isinstance(envelope.get("result"), dict):
        raise RemoteScriptFailed(host, f"{operation}: the result is not an object")
    problem = contract_problem("result", envelope)
    if problem:
        raise RemoteScriptFailed(host, one_line(f"{operation}: the result envelope breaks the contract: {problem}"))
    result = envelope["result"]
    if operation == "inspect" and result.get("schema") != HOST_FACTS_SCHEMA:
        raise RemoteScriptFailed(host, f"inspect: result schema is not {HOST_FACTS_SCHEMA}")
    problem = contract_problem(operation, result)
    if problem:
        raise RemoteScriptFailed(host, one_line(f"{operation}: result field {problem} (breaks the contract in "
                                                f"runbook_lib/remote/schemas/{operation}.schema.json)"))
    return ScriptOutput(result, tuple(one_line(w) for w in envelope.get("warnings", [])))


def parse_output(operation: str, stdout: bytes | str, stderr: bytes | str, exit_code: int, *, host: str = "target") -> dict:
    """The result document of one operation run (see :func:`read_output` for the warnings too)."""
    return read_output(operation, stdout, stderr, exit_code, host=host).data
