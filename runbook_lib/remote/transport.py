"""Run one operation on one host and return its parsed result, whatever carries the script there.

``WinRMTransport`` drives pywinrm's ``Protocol`` directly rather than ``Session.run_ps``: that gives a wall-clock
limit per command, stdin for scripts longer than one command line, and control over which failures may be retried
(only those before a command started: an ``apply`` whose command may have run is never sent twice).
``LocalTransport`` is for an operator whose JupyterLab runs on the Windows host itself.

Every error leaves here as one of the exceptions in :mod:`runbook_lib.errors`, with text built here, because
requests and pywinrm exceptions can carry URLs, headers and response bodies.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import requests
from winrm import transport as winrm_transport
from winrm.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from runbook_lib.errors import (
    AuthenticationFailed,
    CertificateInvalid,
    EncryptionRequired,
    HostUnreachable,
    InputError,
    RemoteError,
    TimedOut,
    one_line,
)
from runbook_lib.remote.credentials import Credential
from runbook_lib.remote.scripts import compose, invocation, read_output

AUTH_METHODS = ("ntlm", "kerberos", "credssp", "basic", "certificate")
# Each Send stays well inside WinRM's default MaxEnvelopeSize (150 KiB) after SOAP's own base64.
_STDIN_CHUNK = 32 * 1024
# WSManFault code for "Access is denied": authenticated, but not allowed to open a shell.
_ACCESS_DENIED = 5


@dataclass(frozen=True)
class OperationResult:
    """The parsed result of one operation, how long the round trip took, and what the script warned about."""

    data: dict
    duration_s: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RebootWait:
    """How long the host took to go down after the reboot was scheduled, and then to answer WinRM again."""

    down_after_s: float
    up_after_s: float


class Transport(ABC):
    """Runs runbook operations on one host."""

    host: str

    @abstractmethod
    def run(self, operation: str, args: dict) -> OperationResult:
        """Compose, deliver and run one operation; return its result or raise a RunbookError."""

    def secret_values(self) -> tuple[str, ...]:
        """The credential values this transport holds, so evidence about its host can be scrubbed of them."""
        return ()


def _mentions_encryption(text: str | None) -> bool:
    lowered = (text or "").lower()
    return "unencrypted" in lowered or "allowunencrypted" in lowered


class WinRMTransport(Transport):
    """WinRM (WS-Management) to a Windows host, NTLM with message encryption unless told otherwise."""

    def __init__(
        self,
        host: str,
        credential: Credential | None = None,
        *,
        auth: str = "ntlm",
        https: bool = False,
        port: int | None = None,
        path: str = "wsman",
        validate_certificate: bool = True,
        ca_trust_path: str | None = None,
        cert_pem: str | None = None,
        cert_key_pem: str | None = None,
        allow_unencrypted: bool = False,
        proxy: str | None = None,
        operation_timeout_s: int = 20,
        read_timeout_s: int = 30,
        command_timeout_s: float = 600.0,
        connect_retries: int = 3,
        retry_backoff_s: float = 2.0,
    ):
        if not host or any(ch.isspace() or ch in "/?#@" for ch in host):
            raise InputError("winrm: host must be a name or address")
        if auth not in AUTH_METHODS:
            raise InputError(f"winrm: auth must be one of {', '.join(AUTH_METHODS)}")
        if auth == "kerberos" and not winrm_transport.HAVE_KERBEROS:
            raise InputError("winrm: auth kerberos needs the pykerberos (or winkerberos) package")
        if auth == "credssp" and not winrm_transport.HAVE_CREDSSP:
            raise InputError("winrm: auth credssp needs the requests-credssp package")
        if auth == "certificate" and not (https and cert_pem and cert_key_pem):
            raise InputError("winrm: auth certificate needs https and both cert_pem and cert_key_pem")
        if auth == "basic" and not https and not allow_unencrypted:
            raise InputError("winrm: basic over http sends the password unencrypted; use https or allow_unencrypted")
        if auth in ("ntlm", "credssp", "basic") and credential is None:
            raise InputError(f"winrm: auth {auth} needs a credential")
        if not 1 <= operation_timeout_s < read_timeout_s:
            raise InputError("winrm: read_timeout_s must exceed operation_timeout_s, both at least 1")
        if connect_retries < 0 or retry_backoff_s < 0 or command_timeout_s <= 0:
            raise InputError("winrm: retries, backoff and command timeout must not be negative")
        self.host = host
        self.auth = auth
        self.https = https
        self.port = port or (5986 if https else 5985)
        address = f"[{host}]" if ":" in host else host
        self.endpoint = f"{'https' if https else 'http'}://{address}:{self.port}/{path.strip('/')}"
        self.operation_timeout_s = int(operation_timeout_s)
        self.read_timeout_s = int(read_timeout_s)
        self.command_timeout_s = command_timeout_s
        self.connect_retries = connect_retries
        self.retry_backoff_s = retry_backoff_s
        self._credential = credential
        self._options = dict(
            transport=auth,
            server_cert_validation="validate" if validate_certificate else "ignore",
            ca_trust_path=ca_trust_path,
            cert_pem=cert_pem,
            cert_key_pem=cert_key_pem,
            message_encryption="auto",
            proxy=proxy,
        )
        self._sleep = time.sleep
        self._clock = time.monotonic

    def __repr__(self) -> str:
        return f"WinRMTransport({self.endpoint!r}, auth={self.auth!r})"

    def secret_values(self) -> tuple[str, ...]:
        return (self._credential.password,) if self._credential is not None and self._credential.password else ()

    def _protocol(self) -> Protocol:
        credential = self._credential
        return Protocol(
            self.endpoint,
            username=credential.username if credential else None,
            password=credential.password if credential else None,
            read_timeout_sec=self.read_timeout_s,
            operation_timeout_sec=self.operation_timeout_s,
            **self._options,
        )

    def _open_shell(self, protocol: Protocol) -> str:
        """Open a shell, retrying connection failures: no command has been sent yet, so nothing can run twice."""
        attempt = 0
        while True:
            try:
                return protocol.open_shell()
            except requests.exceptions.SSLError:
                raise
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                if attempt >= self.connect_retries:
                    raise
                protocol.transport.close_session()
                self._sleep(self.retry_backoff_s * 2**attempt)
                attempt += 1

    def _collect(self, protocol: Protocol, shell_id: str, command_id: str, operation: str) -> tuple[bytes, bytes, int]:
        deadline = self._clock() + self.command_timeout_s
        stdout, stderr = [], []
        while True:
            if self._clock() > deadline:
                raise TimedOut(self.host, f"{operation} did not finish within {self.command_timeout_s:g} s; remote state unknown")
            try:
                out, err, code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue
            stdout.append(out)
            stderr.append(err)
            if done:
                return b"".join(stdout), b"".join(stderr), code

    def run(self, operation: str, args: dict) -> OperationResult:
        """Run one operation; a failure after the command was sent is reported as TimedOut (state unknown)."""
        started_at = self._clock()
        run = invocation(compose(operation, args))
        protocol = self._protocol()
        started = False
        try:
            shell_id = self._open_shell(protocol)
            try:
                started = True
                command_id = protocol.run_command(shell_id, run.command_line, console_mode_stdin=run.stdin is None)
                if run.stdin:
                    chunks = [run.stdin[i : i + _STDIN_CHUNK] for i in range(0, len(run.stdin), _STDIN_CHUNK)]
                    for index, chunk in enumerate(chunks):
                        protocol.send_command_input(shell_id, command_id, chunk, end=index == len(chunks) - 1)
                stdout, stderr, exit_code = self._collect(protocol, shell_id, command_id, operation)
                with contextlib.suppress(Exception):
                    protocol.cleanup_command(shell_id, command_id)
            finally:
                # Best effort: the result (or the original error) matters more than a failed shell teardown.
                with contextlib.suppress(Exception):
                    protocol.close_shell(shell_id)
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - every library error is translated, none passes through raw
            raise self._translate(exc, operation, started) from None
        finally:
            with contextlib.suppress(Exception):
                protocol.transport.close_session()
        output = read_output(operation, stdout, stderr, exit_code, host=self.host)
        return OperationResult(output.data, self._clock() - started_at, output.warnings)

    def _translate(self, exc: Exception, operation: str, started: bool) -> RemoteError:
        """Map a pywinrm/requests error onto the project's exceptions, with text that holds no secret."""
        host = self.host
        unknown = "; remote state unknown" if started else ""
        if isinstance(exc, AuthenticationError):
            return AuthenticationFailed(host, f"the credentials or the {self.auth} method were refused")
        if isinstance(exc, requests.exceptions.SSLError):
            text = str(exc).lower()
            if "certificate" in text or "hostname" in text:
                return CertificateInvalid(host, f"the certificate of {self.endpoint} did not validate; pass ca_trust_path")
            return HostUnreachable(host, f"TLS handshake with {self.endpoint} failed")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return TimedOut(host, f"{operation}: no answer within {self.read_timeout_s} s{unknown}")
        if isinstance(exc, requests.exceptions.ConnectionError):
            if started:
                return TimedOut(host, f"{operation}: connection lost after the command was sent{unknown}")
            return HostUnreachable(host, f"cannot connect to {self.endpoint}")
        if isinstance(exc, WSManFaultError):
            if _mentions_encryption(exc.reason) or _mentions_encryption(exc.response):
                return EncryptionRequired(host, "the host refuses unencrypted WinRM; use ntlm/kerberos or https")
            if exc.wsman_fault_code == _ACCESS_DENIED:
                return AuthenticationFailed(host, "access denied: the account may not open a WinRM shell (local administrators)")
            code = exc.wsman_fault_code if exc.wsman_fault_code is not None else exc.fault_subcode
            return RemoteError(host, f"{operation}: WS-Management fault {code}: {one_line(exc.reason, 200)}")
        if isinstance(exc, WinRMTransportError):
            if exc.code == 500 and _mentions_encryption(exc.response_text):
                return EncryptionRequired(host, "the host refuses unencrypted WinRM; use ntlm/kerberos or https")
            return RemoteError(host, f"{operation}: HTTP {exc.code} from {self.endpoint}{unknown}")
        if isinstance(exc, WinRMError):
            return RemoteError(host, f"{operation}: WinRM client error ({type(exc).__name__}){unknown}")
        return RemoteError(host, f"{operation}: unexpected {type(exc).__name__} talking to WinRM{unknown}")

    def _port_open(self, timeout_s: float) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout_s):
                return True
        except OSError:
            return False

    def _answers(self) -> bool:
        """True when WinRM opens a shell; errors that waiting cannot cure are raised instead."""
        protocol = self._protocol()
        try:
            protocol.close_shell(protocol.open_shell())
            return True
        except Exception as exc:  # noqa: BLE001 - classified below
            error = self._translate(exc, "reboot", False)
            if isinstance(error, (AuthenticationFailed, CertificateInvalid, EncryptionRequired)):
                raise error from None
            return False

    def wait_for_reboot(self, down_timeout_s: float = 600, up_timeout_s: float = 1800, poll_s: float = 5) -> RebootWait:
        """Wait until the listener stops answering and then until WinRM opens a shell again."""
        start = self._clock()
        while self._port_open(poll_s):
            if self._clock() - start > down_timeout_s:
                raise TimedOut(self.host, f"still up {down_timeout_s:g} s after the reboot was scheduled; it may not have happened")
            self._sleep(poll_s)
        down = self._clock()
        while not (self._port_open(poll_s) and self._answers()):
            if self._clock() - down > up_timeout_s:
                raise TimedOut(self.host, f"WinRM did not come back within {up_timeout_s:g} s of going down")
            self._sleep(poll_s)
        return RebootWait(down - start, self._clock() - down)


class LocalTransport(Transport):
    """Runs operations on this machine through a Windows PowerShell process."""

    def __init__(self, executable: str | Sequence[str] = "powershell.exe", *, timeout_s: float = 600.0, host: str = "localhost"):
        self.command = [executable] if isinstance(executable, str) else list(executable)
        if not self.command or not all(isinstance(part, str) and part for part in self.command):
            raise InputError("local: executable must be a path or a non-empty list of arguments")
        self.timeout_s = timeout_s
        self.host = host

    def run(self, operation: str, args: dict) -> OperationResult:
        """The script goes in as stdin behind the encoded loader (or as -EncodedCommand when it is short)."""
        started_at = time.monotonic()
        run = invocation(compose(operation, args))
        argv = self.command + run.argv[1:]
        try:
            proc = subprocess.run(
                argv,
                input=run.stdin if run.stdin is not None else b"",
                capture_output=True,
                timeout=self.timeout_s,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except subprocess.TimeoutExpired:
            raise TimedOut(self.host, f"{operation} did not finish within {self.timeout_s:g} s; state unknown") from None
        except OSError as exc:
            raise HostUnreachable(self.host, f"cannot start {self.command[0]}: {type(exc).__name__}") from None
        output = read_output(operation, proc.stdout, proc.stderr, proc.returncode, host=self.host)
        return OperationResult(output.data, time.monotonic() - started_at, output.warnings)
