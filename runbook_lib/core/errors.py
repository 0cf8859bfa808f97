"""Exceptions grouped by cause.

Every exception here is meant to be shown to an operator as one line, so ``str(exc)`` is always a single line
that names what was wrong and never contains a credential. The CLI maps ``InputError`` to exit code 2 and every
other ``RunbookError`` to exit code 1.
"""

from __future__ import annotations


def one_line(text: str, limit: int = 300) -> str:
    """Fold any text (remote error output, hostile input) into one printable line of bounded length."""
    folded = " ".join(str(text).split())
    printable = "".join(ch if ch.isprintable() else "?" for ch in folded)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


class RunbookError(Exception):
    """Base of every error the runbook reports."""

    def __str__(self) -> str:
        return one_line(super().__str__())


# --- bad input: nothing has been done yet -------------------------------------------------------------------
class InputError(RunbookError):
    """Bad input from the operator: a file, a parameter, an argument. Exit code 2."""


class FactsError(InputError):
    """A host-facts document that does not follow tls-runbook/host-facts/v1."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"facts: {field}: {problem}" if field else f"facts: {problem}")


class VerdictError(InputError):
    """A verdict document that does not follow tls-runbook/verdict/v1 (core/schemas/verdict.schema.json)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"verdict: {field}: {problem}" if field else f"verdict: {problem}")


class RegFileError(InputError):
    """A .reg file the runbook cannot read back (rollback from evidence)."""


# --- reaching a host ------------------------------------------------------------------------------------------
class RemoteError(RunbookError):
    """Something went wrong between the runbook and a Windows host."""

    def __init__(self, host: str, message: str):
        self.host = host
        super().__init__(f"{host}: {message}")


class HostUnreachable(RemoteError):
    """The host did not answer (DNS, TCP, WinRM listener down): safe to retry, nothing ran."""


class QuotaExceeded(HostUnreachable):
    """The host's WinRM quota for this user (MaxShellsPerUser) stayed used up: no shell opened, nothing ran."""


class AuthenticationFailed(RemoteError):
    """The host refused the credentials or the authentication method."""


class EncryptionRequired(RemoteError):
    """The host refuses unencrypted WinRM (AllowUnencrypted=false): use NTLM/Kerberos or HTTPS."""


class RedirectRefused(RemoteError):
    """The listener answered with an HTTP redirect. WinRM endpoints do not redirect; following one would send the
    logon to, and read facts from (or apply changes to), a host other than the one the evidence names."""


class CertificateInvalid(RemoteError):
    """The HTTPS listener's certificate did not validate against the trusted CAs."""


class TlsVersionMismatch(RemoteError):
    """The HTTPS listener offers only TLS versions this machine refuses (1.0, 1.1): nothing ran."""


class TimedOut(RemoteError):
    """An operation exceeded its time limit or lost its connection after its command was sent: the remote state is
    unknown. ``started`` is True when the host had acknowledged the command (its process ran, and may still run),
    None when the command request itself got no answer (it may or may not have started)."""

    def __init__(self, host: str, message: str, *, started: bool | None = None):
        self.started = started
        super().__init__(host, message)


class RebootFailed(RemoteError):
    """A restart the runbook asked for did not happen (the host still reports its old boot time), or was not
    scheduled because another shutdown already was."""


class ApplyIncomplete(RemoteError):
    """An apply stopped part-way (dropped connection, a value that would not write); the journal says where."""


class RemoteScriptFailed(RemoteError):
    """A runbook script ran on the host and reported an error (its own text, never the credentials)."""


class CredentialError(InputError):
    """A credential reference could not be resolved (missing environment variable, keyring entry): what the operator
    set up is what needs fixing, so it is bad input (exit code 2) like any other."""


# --- warnings -------------------------------------------------------------------------------------------------
class SecurityWarning(UserWarning):
    """A connection setting that is allowed but exposes the credential or the host's identity (Basic
    authentication, certificate validation off). Said every time such a connection is set up; one line."""
