"""Run one operation on one host and return its parsed result, whatever carries the script there.

``WinRMTransport`` drives pywinrm's ``Protocol`` directly rather than ``Session.run_ps``: that gives a wall-clock
limit per command, the script on stdin (never on the command line), and control over which failures may be retried
(only those before a command started: an ``apply`` whose command may have run is never sent twice).
``LocalTransport`` (:mod:`.local_transport`) is for an operator whose JupyterLab runs on the Windows host itself.

Every error leaves here as one of the exceptions in :mod:`runbook_lib.core.errors`, with text built here, because
requests and pywinrm exceptions can carry URLs, headers and response bodies.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
import threading
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from winrm import transport as winrm_transport
from winrm.exceptions import (AuthenticationError, WSManFaultError, WinRMError, WinRMOperationTimeoutError,
                              WinRMTransportError)
from winrm.protocol import Protocol

from runbook_lib.core.errors import (AuthenticationFailed, CertificateInvalid, EncryptionRequired, HostUnreachable,
                                     InputError, QuotaExceeded, RedirectRefused, RemoteError, SecurityWarning, TimedOut,
                                     TlsVersionMismatch, one_line)
from runbook_lib.remote.credentials import Credential
from runbook_lib.remote.scripts import compose, invocation, read_output

AUTH_METHODS = ("ntlm", "kerberos", "credssp", "basic", "certificate")
# Each Send stays well inside WinRM's default MaxEnvelopeSize (150 KiB) after SOAP's own base64.
_STDIN_CHUNK = 32 * 1024
# The largest envelope the runbook sends: a full stdin chunk in base64 plus the SOAP headers around it (under 2 KiB;
# 4 allowed). A host's MaxEnvelopeSizekb below this answers a Send with HTTP 413.
LARGEST_REQUEST_KB = math.ceil((4 * math.ceil(_STDIN_CHUNK / 3) + 4096) / 1024)
# WSManFault code for "Access is denied": authenticated, but not allowed to open a shell.
_ACCESS_DENIED = 5
# ERROR_WSMAN_QUOTA_MAX_SHELLS: the user already holds MaxShellsPerUser shells on the host.
_QUOTA_MAX_SHELLS = 2150859173
# WinRM 2.0 (Windows 7 / 2008 R2 as installed) lets a user hold 5 shells on a host and deletes one left idle for
# 180 s; later versions allow 30 and 2 hours. The 2.0 numbers are the safe assumption for a host not yet known.
DEFAULT_MAX_SHELLS = 5
_SHELL_IDLE_TIMEOUT_S = 180.0
# The console code page the shell is opened with (WINRS_CODEPAGE): what PowerShell writes its output in, so what
# stdout and stderr are decoded with. 437 keeps PowerShell 2.0 working (it misbehaves under 65001).
_CODEPAGE, _CODEPAGE_CODEC = 437, "cp437"
# What OpenSSL calls the versions a default client refuses, and how Windows names them.
_OLD_TLS = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1"}
# Where run() was when something failed: nothing sent yet, the command request sent, the command acknowledged.
_CONNECTING, _SENDING, _RUNNING = "connecting", "sending", "running"


@dataclass(frozen=True)
class OperationResult:
    """The parsed result of one operation, how long the round trip took, and what the script warned about."""

    data: dict
    duration_s: float
    warnings: tuple[str, ...] = ()


class ShellSlots:
    """The shells one user may hold on one host at once, shared by every transport of this process.

    A shell that could not be deleted keeps its slot until the host's idle timeout has surely ended it; a quota
    fault from the host (other sessions of the user hold shells there too) lowers the limit to what this process
    holds. So threads and repeated operations never open more shells than the host allows."""

    def __init__(self, limit: int, idle_timeout_s: float = _SHELL_IDLE_TIMEOUT_S, clock=time.monotonic):
        self.limit, self.idle_timeout_s, self._clock = limit, idle_timeout_s, clock
        self.held = 0
        self._leaked: list[float] = []  # when each shell left behind will have timed out on the host
        self._changed = threading.Condition()

    def _in_use(self) -> int:
        now = self._clock()
        self._leaked = [until for until in self._leaked if until > now]
        return self.held + len(self._leaked)

    def acquire(self, timeout_s: float) -> bool:
        deadline = self._clock() + timeout_s
        with self._changed:
            while self._in_use() >= self.limit:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
            self.held += 1
            return True

    def release(self, *, left_behind: bool = False) -> None:
        with self._changed:
            self.held -= 1
            if left_behind:
                self._leaked.append(self._clock() + self.idle_timeout_s)
            self._changed.notify_all()

    def host_refused(self) -> None:
        """The host said the user's shells are used up: others hold the rest, so use no more than held now."""
        with self._changed:
            self.limit = max(1, self.held)


_SLOTS: dict[tuple[str, int, str], ShellSlots] = {}
_SLOTS_LOCK = threading.Lock()


def shell_slots(host: str, port: int, user: str, limit: int = DEFAULT_MAX_SHELLS) -> ShellSlots:
    """The slots of one user on one host in this process (created with ``limit`` on first use)."""
    with _SLOTS_LOCK:
        return _SLOTS.setdefault((host.casefold(), port, user.casefold()), ShellSlots(limit))


class Transport(ABC):
    """Runs runbook operations on one host."""

    host: str

    @abstractmethod
    def run(self, operation: str, args: dict) -> OperationResult:
        """Compose, deliver and run one operation; return its result or raise a RunbookError."""

    def secret_values(self) -> tuple[str, ...]:
        """The credential values this transport holds, so evidence about its host can be scrubbed of them."""
        return ()


# requests sets os.environ["no_proxy"] for a moment while pywinrm builds a session: two threads doing it at once
# (boot watches) failed with a KeyError. Sessions are built one at a time; the NTLM handshake at the end is not.
# Every request sent afterwards did the same while requests looked for proxies in the environment (200 hosts in
# threads, one in a few thousand requests): a session that uses no proxy no longer looks (see build_session).
_SESSION_BUILD_LOCK = threading.Lock()


class _NoRedirectTransport(winrm_transport.Transport):
    """pywinrm's HTTP transport with redirects refused: requests raises TooManyRedirects at the first 3xx answer,
    before anything (a logon included) is sent to the URL it points at."""

    _handshake_for: requests.Session | None = None

    def build_session(self) -> requests.Session:
        if self.session:
            return self.session
        with _SESSION_BUILD_LOCK:
            session = super().build_session()
        if self.proxy is None:  # pywinrm's "no proxy": requests would otherwise check the environment at each send
            session.trust_env = False
        deferred, self._handshake_for = self._handshake_for, None
        if deferred is not None:
            super().setup_encryption(deferred)
        return session

    def setup_encryption(self, session: requests.Session) -> None:
        self._handshake_for = session  # pywinrm calls this at the end of build_session: run once the lock is free

    def _send_message_request(self, session: requests.Session, prepared_request: requests.PreparedRequest):
        session.max_redirects = 0
        if self.encryption is not None and prepared_request.body:  # not the empty POST that logs the session on
            prepared_request.hooks["response"].insert(0, _lost_connection_if_challenged)  # before requests_ntlm's
        return super()._send_message_request(session, prepared_request)


def _lost_connection_if_challenged(response: requests.Response, **_) -> None:
    """NTLM over http logs on the TCP connection, and each message is encrypted for that logon. A 401 to one means it
    went out on a new connection (urllib3 silently reopens a dropped one): the session's own was lost. Left alone,
    requests_ntlm logs on again and resends the message, which the host cannot decrypt for the new logon, and the
    failure reads as "HTTP 400", a bad request, when it is a lost connection with the command's state unknown."""
    if response.status_code == 401:
        response.close()
        raise requests.exceptions.ConnectionError("the connection was lost: the message went out on a new one, "
                                                  "which the host had not logged on", response=response)


def _redirect_target(response: requests.Response | None, endpoint: str) -> str:
    """Where a redirect pointed, absolute, without user info, as one bounded line (the header is untrusted)."""
    location = response.headers.get("Location", "") if response is not None else ""
    try:
        parts = urlsplit(urljoin(endpoint, location))
        shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    except ValueError:
        shown = location
    return one_line(shown, 200) or "(no Location)"


def _mentions_encryption(text: str | None) -> bool:
    lowered = (text or "").lower()
    return "unencrypted" in lowered or "allowunencrypted" in lowered


class WinRMTransport(Transport):
    """WinRM (WS-Management) to a Windows host, NTLM with message encryption unless told otherwise."""

    recorder = None  # a runbook_lib.remote.recording.Recorder: every operation's SOAP exchanges are saved

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
        max_shells: int = DEFAULT_MAX_SHELLS,
        quota_wait_s: float = 240.0,
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
        if connect_retries < 0 or retry_backoff_s < 0 or command_timeout_s <= 0 or quota_wait_s < 0:
            raise InputError("winrm: retries, backoff, quota wait and command timeout must not be negative")
        if max_shells < 1:
            raise InputError("winrm: max_shells must be at least 1")
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
        self.quota_wait_s = quota_wait_s
        self._credential = credential
        self.slots = shell_slots(host, self.port, credential.username if credential else "", max_shells)
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
        if auth == "basic":
            protection = "only TLS protects it" if https else "over http nothing protects it"
            warnings.warn(f"{self.endpoint}: Basic authentication sends the password itself with every request; "
                          f"{protection}", SecurityWarning, stacklevel=2)
        if https and not validate_certificate:
            warnings.warn(f"{self.endpoint}: certificate validation is off, so any machine on the path can pose as "
                          "this host and receive the logon", SecurityWarning, stacklevel=2)

    def __repr__(self) -> str:
        return f"WinRMTransport({self.endpoint!r}, auth={self.auth!r})"

    def secret_values(self) -> tuple[str, ...]:
        return (self._credential.password,) if self._credential is not None and self._credential.password else ()

    def _protocol(self) -> Protocol:
        credential = self._credential
        protocol = Protocol(
            self.endpoint,
            username=credential.username if credential else None,
            password=credential.password if credential else None,
            read_timeout_sec=self.read_timeout_s,
            operation_timeout_sec=self.operation_timeout_s,
            **self._options,
        )
        if isinstance(protocol.transport, winrm_transport.Transport):
            protocol.transport.__class__ = _NoRedirectTransport
        return protocol

    def _open_shell(self, protocol: Protocol) -> str:
        """Open a shell, retrying connection failures and a used-up shell quota: no command has been sent yet, so
        nothing can run twice. A quota stays used up until other shells are closed or time out (180 s on WinRM
        2.0), so that wait is longer: ``quota_wait_s``."""
        attempt, quota_deadline = 0, self._clock() + self.quota_wait_s
        while True:
            try:
                return protocol.open_shell(codepage=_CODEPAGE)
            except requests.exceptions.SSLError:
                raise
            except WSManFaultError as exc:
                if exc.wsman_fault_code != _QUOTA_MAX_SHELLS:
                    raise
                self.slots.host_refused()
                if self._clock() >= quota_deadline:
                    raise QuotaExceeded(self.host, f"{one_line(exc.reason, 160)} (MaxShellsPerUser; waited "
                                                   f"{self.quota_wait_s:g} s, nothing ran): close other sessions of "
                                                   "this account or raise the quota") from None
                self._sleep(min(self.retry_backoff_s * 2**min(attempt, 4), 15.0))
                attempt += 1
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
                raise TimedOut(self.host, f"{operation} did not finish within {self.command_timeout_s:g} s; remote state "
                                          "unknown", started=True)
            try:
                out, err, code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue
            stdout.append(out)
            stderr.append(err)
            if done:
                return b"".join(stdout), b"".join(stderr), code

    def run(self, operation: str, args: dict) -> OperationResult:
        """Run one operation. A failure before a shell opened is HostUnreachable (nothing ran, safe to retry); one
        after the command was sent is TimedOut, whose ``started`` says whether the host had acknowledged it."""
        started_at = self._clock()
        run = invocation(compose(operation, args))
        protocol = self._protocol()
        phase = _CONNECTING
        if not self.slots.acquire(self.quota_wait_s):
            raise QuotaExceeded(self.host, f"{operation}: this process already holds the {self.slots.limit} WinRM "
                                           f"shell(s) the host allows this user; waited {self.quota_wait_s:g} s, "
                                           "nothing ran")
        left_behind = False
        if self.recorder is not None:
            self.recorder.attach(protocol, self, operation, args)
        try:
            shell_id = self._open_shell(protocol)
            try:
                phase = _SENDING
                # stdin as a pipe, not a console: PowerShell reads the script from it line by line.
                command_id = protocol.run_command(shell_id, run.command_line, console_mode_stdin=False)
                phase = _RUNNING
                chunks = [run.stdin[i : i + _STDIN_CHUNK] for i in range(0, len(run.stdin), _STDIN_CHUNK)]
                for index, chunk in enumerate(chunks):
                    protocol.send_command_input(shell_id, command_id, chunk, end=index == len(chunks) - 1)
                stdout, stderr, exit_code = self._collect(protocol, shell_id, command_id, operation)
                with contextlib.suppress(Exception):
                    protocol.cleanup_command(shell_id, command_id)
            finally:
                left_behind = not self._close_shell(protocol, shell_id)
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - every library error is translated, none passes through raw
            raise self._translate(exc, operation, phase) from None
        finally:
            self.slots.release(left_behind=left_behind)
            with contextlib.suppress(Exception):
                protocol.transport.close_session()
        output = read_output(operation, stdout, stderr, exit_code, host=self.host, encoding=_CODEPAGE_CODEC)
        return OperationResult(output.data, self._clock() - started_at, output.warnings)

    def _close_shell(self, protocol: Protocol, shell_id: str) -> bool:
        """Delete the shell, on a fresh connection when the first one broke (an encrypted NTLM session does not
        survive its TCP connection). Deleting ends any process still running in it, as WinRS ends the shell's job;
        a shell left behind would hold one of the user's few shells (5 on WinRM 2.0) until its idle timeout.
        Best effort: the result, or the original error, matters more than a failed teardown. True when deleted."""
        try:
            protocol.close_shell(shell_id)
            return True
        except Exception:  # noqa: BLE001 - retried below on a new session
            pass
        fresh = self._protocol()
        try:
            fresh.close_shell(shell_id)
            return True
        except Exception:  # noqa: BLE001 - the host may be unreachable now; the shell times out there
            return False
        finally:
            with contextlib.suppress(Exception):
                fresh.transport.close_session()

    def listener_tls_version(self) -> str | None:
        """What the listener negotiates when old versions are allowed: a bare handshake, no request, no credential,
        so a refused handshake can be explained ("TLSv1") rather than left as OpenSSL's "unsupported protocol"."""
        if self._options["proxy"]:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            with socket.create_connection((self.host, self.port), timeout=10) as raw, \
                    context.wrap_socket(raw, server_hostname=self.host) as tls:
                return tls.version()
        except (OSError, ValueError):
            return None

    def _translate(self, exc: Exception, operation: str, phase: str) -> RemoteError:
        """Map a pywinrm/requests error onto the project's exceptions, with text that holds no secret."""
        host = self.host
        sent = phase != _CONNECTING
        started = True if phase == _RUNNING else None
        unknown = "; remote state unknown" if sent else ""
        if isinstance(exc, AuthenticationError):
            return AuthenticationFailed(host, f"the credentials or the {self.auth} method were refused")
        if isinstance(exc, requests.exceptions.TooManyRedirects):
            response = exc.response
            status = response.status_code if response is not None else "3xx"
            return RedirectRefused(host, f"{self.endpoint} answered HTTP {status} redirecting to "
                                         f"{_redirect_target(response, self.endpoint)}; redirects are refused and "
                                         f"nothing was sent there{unknown}")
        if isinstance(exc, requests.exceptions.SSLError):
            text = str(exc).lower()
            if "certificate" in text or "hostname" in text:
                return CertificateInvalid(host, f"the certificate of {self.endpoint} did not validate; pass ca_trust_path")
            offered = self.listener_tls_version()
            if offered in _OLD_TLS:
                return TlsVersionMismatch(host, f"{self.endpoint} offers only {_OLD_TLS[offered]}, which this machine's "
                                                "OpenSSL refuses: the host's Schannel has no TLS 1.2 for servers yet "
                                                "(Windows 7 / Server 2008 R2 as installed). Connect over http:// "
                                                "(port 5985, NTLM with message encryption); the runbook's fix enables "
                                                "TLS 1.2 for the listener after the reboot")
            return HostUnreachable(host, f"TLS handshake with {self.endpoint} failed")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            if not sent:
                return HostUnreachable(host, f"{operation}: no answer within {self.read_timeout_s} s to opening a "
                                             "shell; nothing ran")
            return TimedOut(host, f"{operation}: no answer within {self.read_timeout_s} s{unknown}", started=started)
        if isinstance(exc, requests.exceptions.ConnectionError):
            if sent:
                what = "the command was sent" if started else "the command request was sent (it may not have started)"
                return TimedOut(host, f"{operation}: connection lost after {what}{unknown}", started=started)
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

