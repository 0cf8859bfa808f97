"""Ed25519 signatures over evidence manifests: who may have written a bundle, checkable by anyone with the key.

A run is signed either with the operator's own key, given by reference (``file:PATH`` to an OpenSSH or PEM private
key, ``env:NAME`` holding one), or with a key made for the run and forgotten when it ends. The public half goes
into the manifest and its fingerprint is printed for the change ticket; the private half never touches the disk.
A signature alone proves only that the manifest was not changed after whoever holds that key signed it: anyone can
re-sign an edited bundle with a new key, so ``evidence verify --expect-key`` compares the signer with the
fingerprint recorded in the ticket (or the operator's published key).

Fingerprints are OpenSSH's (``SHA256:`` and unpadded base64 of the key blob), so ``ssh-keygen -lf key.pub`` shows
the same text for an operator key.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.errors import InputError, one_line
from ..core.files import FileTooLarge, read_limited

ALGORITHM = "ed25519"
_CONTEXT = b"tls-runbook evidence manifest\n"  # a manifest signature can never be replayed as another kind
_MAX_KEY_FILE = 64 * 1024
PASSPHRASE_VARIABLE = "TLS_RUNBOOK_SIGNING_KEY_PASSPHRASE"


@dataclass(frozen=True)
class SigningKey:
    """A private key and where it came from ("per-run key" or the operator's reference)."""

    private: Ed25519PrivateKey = field(repr=False)
    origin: str

    @property
    def public_text(self) -> str:
        return public_text(self.private.public_key())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_text)

    @property
    def per_run(self) -> bool:
        return self.origin == "per-run key"

    def raw(self) -> bytes:
        """The 32 private bytes, for handing to a worker process over a pipe (never written to a file)."""
        return self.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption())

    @classmethod
    def from_raw(cls, raw: bytes, origin: str) -> "SigningKey":
        return cls(Ed25519PrivateKey.from_private_bytes(raw), origin)


def new_run_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate(), "per-run key")


def public_text(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")


def fingerprint(public: str) -> str:
    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def load_signing_key(reference: str) -> SigningKey:
    """The operator's key behind ``file:PATH`` or ``env:NAME``; a passphrase comes from the environment or a prompt."""
    scheme, _, where = reference.partition(":")
    if scheme == "file" and where:
        path = Path(where).expanduser()
        try:
            data = read_limited(path, _MAX_KEY_FILE)
        except FileTooLarge:
            raise InputError(f"--signing-key {path}: too large for a key file") from None
        except OSError as exc:
            raise InputError(f"--signing-key {path}: {exc.strerror or exc.__class__.__name__}") from None
    elif scheme == "env" and where:
        text = os.environ.get(where)
        if not text:
            raise InputError(f"--signing-key env:{where}: the variable is not set")
        data = text.encode("utf-8")
    else:
        raise InputError("--signing-key takes file:PATH or env:NAME (an Ed25519 private key, OpenSSH or PEM)")
    return SigningKey(_private_key(data, reference), f"operator key {reference}")


def _private_key(data: bytes, reference: str) -> Ed25519PrivateKey:
    passphrase = None
    for attempt in range(2):
        try:
            if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
                key = serialization.load_ssh_private_key(data, passphrase)
            else:
                key = serialization.load_pem_private_key(data, passphrase)
            break
        except TypeError:  # encrypted and no passphrase given, or a passphrase for a key without one
            if attempt or passphrase is not None:
                raise InputError(f"--signing-key {reference}: cannot decrypt the key") from None
            passphrase = _passphrase(reference)
        except UnsupportedAlgorithm:
            raise InputError(f"--signing-key {reference}: a passphrase-protected OpenSSH key needs the bcrypt "
                             "package; or convert it to PEM (ssh-keygen -p -m PKCS8)") from None
        except ValueError:
            problem = "wrong passphrase or not a private key" if passphrase else "not an OpenSSH or PEM private key"
            raise InputError(f"--signing-key {reference}: {problem}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"--signing-key {reference}: not an Ed25519 key (ssh-keygen -t ed25519 makes one)")
    return key


def _passphrase(reference: str) -> bytes:
    value = os.environ.get(PASSPHRASE_VARIABLE)
    if value is None and sys.stdin.isatty():
        value = getpass.getpass(f"Passphrase for {reference}: ")
    if not value:
        raise InputError(f"--signing-key {reference} is encrypted: set {PASSPHRASE_VARIABLE} or run in a terminal")
    return value.encode("utf-8")


# --- documents -----------------------------------------------------------------------------------------------
def canonical(doc: dict) -> bytes:
    """The bytes a signature covers: every field but the signature, in one spelling whatever the file's layout."""
    body = {key: value for key, value in doc.items() if key != "signature"}
    return _CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                                 allow_nan=False).encode("ascii")


def sign(doc: dict, key: SigningKey) -> dict:
    signature = key.private.sign(canonical(doc))
    return {**doc, "signature": {"algorithm": ALGORITHM, "public_key": key.public_text,
                                 "fingerprint": key.fingerprint, "signer": key.origin,
                                 "value": base64.b64encode(signature).decode("ascii")}}


@dataclass(frozen=True)
class SignatureCheck:
    """What the signature says, and what it could not say."""

    valid: bool
    fingerprint: str | None
    signer: str
    expected: str | None
    problem: str | None = None

    def line(self) -> str:
        if not self.valid:
            return f"signature: FAILED: {self.problem}"
        text = f"signature: valid, Ed25519 {self.fingerprint} ({self.signer})"
        if self.expected:
            return text + ", the expected key"
        return (text + "; not compared with an expected key: anyone can re-sign an edited bundle with a new key, so "
                       "pass --expect-key with the fingerprint from the change ticket")


def check(doc: dict, expected: str | None = None, subject: str = "the manifest") -> SignatureCheck:
    """Check ``doc``'s signature; with ``expected`` (a fingerprint), also that this key made it."""
    block = doc.get("signature")
    if not isinstance(block, dict):
        return SignatureCheck(False, None, "", expected, f"{subject} is not signed")
    signer = one_line(str(block.get("signer", "")), 80)
    try:
        if block.get("algorithm") != ALGORITHM:
            raise ValueError("algorithm")
        public = str(block["public_key"])
        key = serialization.load_ssh_public_key(public.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("key type")
        signature = base64.b64decode(str(block["value"]), validate=True)
        found = fingerprint(public)
    except (KeyError, ValueError, IndexError, UnsupportedAlgorithm, UnicodeError):
        return SignatureCheck(False, None, signer, expected, "the signature block is malformed")
    try:
        key.verify(signature, canonical(doc))
    except InvalidSignature:
        return SignatureCheck(False, found, signer, expected,
                              f"{subject} does not match its signature (key {found}): it was changed after signing")
    except ValueError:  # NaN and the like cannot be in a manifest this tool signed
        return SignatureCheck(False, found, signer, expected, f"{subject} holds values no signature covers")
    if expected and found != expected:
        return SignatureCheck(False, found, signer, expected,
                              f"signed with {found}, not with the expected key {expected}")
    return SignatureCheck(True, found, signer, expected)


def expected_fingerprint(text: str) -> str:
    """``--expect-key``: a fingerprint (SHA256:...), an OpenSSH public key line, or a file holding one (or PEM)."""
    text = text.strip()
    if text.startswith("SHA256:"):
        if len(text) != 50:
            raise InputError("--expect-key: a fingerprint is SHA256: and 43 base64 characters")
        return text
    if text.startswith("ssh-ed25519 "):
        return fingerprint(_checked_public(text.encode("ascii", "replace")))
    path = Path(text).expanduser()
    try:
        data = read_limited(path, _MAX_KEY_FILE)
    except (OSError, FileTooLarge):
        raise InputError("--expect-key takes a fingerprint (SHA256:...), an ssh-ed25519 public key or a "
                         "readable .pub/PEM file") from None
    return fingerprint(_checked_public(data))


def _checked_public(data: bytes) -> str:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_ssh_public_key(data.strip().split(b"\n")[0])
    except (ValueError, UnsupportedAlgorithm, IndexError):
        raise InputError("--expect-key: not an Ed25519 public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("--expect-key: not an Ed25519 public key")
    return public_text(key)
