"""Getting runbook operations onto Windows hosts and their results back: scripts, transports, credentials."""

from runbook_lib.remote.credentials import DEFAULT_REFERENCE, Credential, resolve_credential
from runbook_lib.remote.scripts import (
    LANGUAGE_MODE_ERROR,
    OPERATIONS,
    POWERSHELL_COMMAND,
    Invocation,
    ScriptOutput,
    compose,
    decode_invocation,
    invocation,
    parse_output,
    read_declaration,
    read_output,
    render_output,
    validate_args,
)
from runbook_lib.remote.local_transport import LocalTransport
from runbook_lib.remote.transport import (
    AUTH_METHODS,
    OperationResult,
    Transport,
    WinRMTransport,
)

__all__ = [
    "AUTH_METHODS",
    "DEFAULT_REFERENCE",
    "LANGUAGE_MODE_ERROR",
    "OPERATIONS",
    "POWERSHELL_COMMAND",
    "Credential",
    "Invocation",
    "LocalTransport",
    "OperationResult",
    "ScriptOutput",
    "Transport",
    "WinRMTransport",
    "compose",
    "decode_invocation",
    "invocation",
    "parse_output",
    "read_declaration",
    "read_output",
    "render_output",
    "resolve_credential",
    "validate_args",
]
