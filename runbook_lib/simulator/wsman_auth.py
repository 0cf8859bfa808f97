"""Authentication and message encryption of the simulated WinRM listener.

Negotiate/NTLM is accepted with pyspnego, whose NTLM acceptor reads accounts only from the file named by the
process-global ``NTLM_USER_FILE``. One such file per process serves every simulated host: it holds NT hashes (never
a plain password) in the smbpasswd format, written, under a lock, just for one acceptor step with the accounts of
the host that is authenticating (so hosts of a fleet keep separate credentials even for equal user names) and
emptied right after.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hmac
import os
import re
import shutil
import struct
import tempfile
import threading
from dataclasses import dataclass, field

import spnego
from spnego.channel_bindings import GssChannelBindings

from runbook_lib.remote.ntlm_hash import nt_hash

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"


# --- accounts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A user of the simulated host: local (no domain) or of a domain, as ``DOMAIN\\user`` or ``user@domain``."""

    domain: str | None
    name: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, user: str, password: str) -> Account:
        if "\\" in user:
            domain, name = user.split("\\", 1)
            return cls(None if domain == "." else domain, name, password)
        if "@" in user:
            name, domain = user.rsplit("@", 1)
            return cls(domain, name, password)
        return cls(None, user, password)

    def user_forms(self, computer_name: str) -> list[str]:
        """The spellings a client may send for this account; a local account is also ``.\\``, ``HOST\\`` and UPN."""
        domains = [self.domain] if self.domain else [".", computer_name]
        forms = [] if self.domain else [self.name]
        for domain in domains:
            forms += [f"{domain}\\{self.name}", f"{self.name}@{domain}"]
        return forms

    def accepts(self, user: str, password: str, computer_name: str) -> bool:
        known = {form.lower() for form in self.user_forms(computer_name)}
        return user.lower() in known and hmac.compare_digest(password.encode(), self.password.encode())


# --- the process-wide NTLM user file ----------------------------------------------------------------------------


def ntlm_user_lines(accounts: list[Account], computer_name: str) -> str:
    """smbpasswd lines (USER:UID:LM:NT:FLAGS:LCT): hashes only, and no ':' trouble with passwords."""
    lines = []
    for account in accounts:
        hash_hex = nt_hash(account.password).hex().upper()
        for form in account.user_forms(computer_name):
            lines.append(f"{form}:1000:{'0' * 32}:{hash_hex}:[U]:LCT-00000000\n")
    return "".join(lines)


def _memory_file() -> tuple[int, str] | None:
    """An anonymous file in memory (Linux memfd), opened by path through /proc/self/fd: never on a disk, and gone
    with the process however it ends, SIGKILL included."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    descriptor = os.memfd_create("wsman-ntlm-users")  # close-on-exec: no child process inherits it
    return descriptor, f"/proc/self/fd/{descriptor}"


def _private_file() -> tuple[int, str]:
    """Elsewhere: a file in a private temporary folder, removed at exit."""
    directory = tempfile.mkdtemp(prefix="wsman-ntlm-")
    path = os.path.join(directory, "ntlm_users")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def remove() -> None:
        os.close(descriptor)
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return descriptor, path


class _NtlmUserFile:
    """The one NTLM_USER_FILE of this process. It holds a host's accounts only while a logon to that host is being
    checked (under the lock) and is empty otherwise, so a killed process leaves no hash in it; on Linux it is a
    memory file that never reaches a disk at all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._descriptor: int | None = None
        self._path = ""
        self._pid = 0

    def _ensure(self) -> None:
        if self._descriptor is None or self._pid != os.getpid():  # a forked child gets a file of its own
            self._descriptor, self._path = _memory_file() or _private_file()
            self._pid = os.getpid()
        # Set on every use: another library in the process may have pointed it elsewhere.
        os.environ["NTLM_USER_FILE"] = self._path

    def _fill(self, text: str) -> None:
        assert self._descriptor is not None
        os.ftruncate(self._descriptor, 0)
        os.lseek(self._descriptor, 0, os.SEEK_SET)
        os.write(self._descriptor, text.encode("utf-8"))

    def new_acceptor(self, channel_binding_hash: bytes | None) -> spnego.ContextProxy:
        bindings = (
            GssChannelBindings(application_data=b"tls-server-end-point:" + channel_binding_hash)
            if channel_binding_hash
            else None
        )
        with self.lock:
            self._ensure()
            # use_negotiate keeps an installed GSSAPI out; NegotiateProxy still accepts the raw NTLM requests_ntlm sends.
            return spnego.server(
                protocol="negotiate",
                options=spnego.NegotiateOptions.use_negotiate,
                channel_bindings=bindings,
            )

    def step(self, user_lines: str, context: spnego.ContextProxy, token: bytes) -> bytes | None:
        """One acceptor step with ``user_lines`` (the authenticating host's accounts) in the file meanwhile."""
        with self.lock:
            self._ensure()
            self._fill(user_lines)
            try:
                return context.step(token)
            finally:
                self._fill("")


NTLM_USER_FILE = _NtlmUserFile()


# --- Authorization headers --------------------------------------------------------------------------------------


class BadAuthorization(ValueError):
    """An Authorization header this listener cannot read; answered with 401 like any failed logon."""


def split_authorization(header: str) -> tuple[str, bytes]:
    scheme, _, payload = header.strip().partition(" ")
    try:
        return scheme.lower(), base64.b64decode(payload.strip(), validate=True)
    except binascii.Error:
        raise BadAuthorization(f"{scheme} credentials are not base64") from None


def basic_credentials(payload: bytes) -> tuple[str, str]:
    user, separator, password = payload.decode("utf-8", errors="replace").partition(":")
    if not separator:
        raise BadAuthorization("Basic credentials lack the ':' separator")
    return user, password


# --- MS-WSMV message encryption ---------------------------------------------------------------------------------


class EncryptedBodyInvalid(ValueError):
    """An encrypted body that does not follow MS-WSMV 2.2.9.1.1 or does not decrypt to its announced length."""


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/encrypted") and ENCRYPTED_PROTOCOL.lower() in content_type.lower()


def decrypt_body(context: spnego.ContextProxy, body: bytes) -> bytes:
    length_match = re.search(rb"Length=(\d+)", body)
    start = body.find(b"application/octet-stream\r\n")
    end = body.rfind(_BOUNDARY + b"--")
    if length_match is None or start < 0 or end < start:
        raise EncryptedBodyInvalid("the encrypted body is not a MS-WSMV multipart message")
    payload = body[start + len(b"application/octet-stream\r\n") : end]
    if len(payload) < 4:
        raise EncryptedBodyInvalid("the encrypted payload is truncated")
    signature_length = struct.unpack("<I", payload[:4])[0]
    signature = payload[4 : 4 + signature_length]
    sealed = payload[4 + signature_length :]
    try:
        plain = context.unwrap_winrm(signature, sealed)
    except spnego.exceptions.SpnegoError as exc:
        raise EncryptedBodyInvalid(f"the encrypted payload does not verify: {type(exc).__name__}") from None
    if len(plain) != int(length_match.group(1)):
        raise EncryptedBodyInvalid("the decrypted length differs from the announced Length")
    return plain


def encrypt_body(context: spnego.ContextProxy, plain: bytes) -> bytes:
    wrapped = context.wrap_winrm(plain)
    return b"".join(
        (
            _BOUNDARY + b"\r\n",
            b"\tContent-Type: " + ENCRYPTED_PROTOCOL.encode() + b"\r\n",
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(plain)).encode() + b"\r\n",
            _BOUNDARY + b"\r\n",
            b"\tContent-Type: application/octet-stream\r\n",
            struct.pack("<I", len(wrapped.header)),
            wrapped.header,
            wrapped.data,
            _BOUNDARY + b"--\r\n",
        )
    )
