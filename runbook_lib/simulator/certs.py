"""Throw-away TLS material for the simulator's HTTPS listener.

Each listener gets its own CA and leaf certificate so a test can trust exactly one simulated host (``ca_trust_path``)
and see validation fail without it, as against a real host with a self-signed listener certificate. Everything is
written to a private temporary directory, never inside the repository, and removed by the owner when it stops.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test run or demo, short enough that a leaked file is useless soon.
_VALIDITY = datetime.timedelta(days=2)
# Clocks of CI machines drift; a certificate valid "from now" can be rejected as not yet valid.
_BACKDATE = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class ListenerCertificate:
    """Paths of one listener's TLS files plus what NTLM channel binding needs."""

    directory: Path
    ca_path: Path
    cert_path: Path
    key_path: Path
    channel_binding_hash: bytes

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tls-runbook simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)  # harmless on Windows, where the temp dir is already per-user


def channel_binding_hash(cert: x509.Certificate) -> bytes:
    """The ``tls-server-end-point`` hash of RFC 5929: the certificate's own signature hash, but never weaker than SHA-256."""
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


def create_listener_certificate(ip_address: str, computer_name: str) -> ListenerCertificate:
    """Create a CA and a leaf for ``ip_address`` (SAN: the IP, ``localhost`` and the computer name).

    EC P-256 keys because generating RSA keys would dominate the start time of a fleet of HTTPS hosts.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{computer_name} simulator CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(computer_name))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address(ip_address)),
                    x509.DNSName("localhost"),
                    x509.DNSName(computer_name.lower()),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory = Path(tempfile.mkdtemp(prefix="wsman-tls-"))
    ca_path = directory / "ca.pem"
    cert_path = directory / "listener.pem"
    key_path = directory / "listener.key"
    pem = serialization.Encoding.PEM
    _write_private(ca_path, ca_cert.public_bytes(pem))
    _write_private(cert_path, leaf_cert.public_bytes(pem))
    _write_private(
        key_path,
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return ListenerCertificate(
        directory=directory,
        ca_path=ca_path,
        cert_path=cert_path,
        key_path=key_path,
        channel_binding_hash=channel_binding_hash(leaf_cert),
    )
