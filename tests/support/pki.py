"""Certificates and keys made in the test, with `cryptography` (nothing read from disk).

- `self_signed`: a lone self-signed certificate and its key, for fields that only need valid PEM.
- `CertificateAuthority`: a throwaway CA issuing server and client certificates for DNS names and IP
  addresses, so a test can build a chain a client trusts, or one it does not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class IssuedCert:
    """A PEM certificate and its unencrypted PEM private key."""

    cert_pem: str
    key_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    """Valid from five minutes ago for a day."""
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def self_signed(common_name: str = "connhub-test-ca") -> tuple[str, str]:
    """A self-signed certificate and its unencrypted private key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


class CertificateAuthority:
    """A self-signed test CA (EC P-256, valid for a day) that issues server and client certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, common_name: str = "Connhub Test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(common_name)
        cert = (
            _builder(self._name, self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = _pem(cert)

    def issue(self, names: str | Iterable[str], *, client: bool = False) -> IssuedCert:
        """A leaf certificate for `names` (DNS names or IP addresses, all in the SAN; the first is the CN)."""
        names = [names] if isinstance(names, str) else list(names)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            _builder(_name(names[0]), self._name, key.public_key())
            .add_extension(_san(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCert(_pem(cert), _key_pem(key))


def assert_expiry_of_a_test_certificate(expires_at: datetime | None) -> None:
    """`expires_at` is the notAfter of a certificate made here (valid for a day from now)."""
    assert expires_at is not None
    now = datetime.now(UTC)
    assert now < expires_at <= now + timedelta(days=1, minutes=1)
