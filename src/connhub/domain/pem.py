"""PEM checks for ssl material: parsed for real, so a typo is a 400 now, not a TLS failure later.

Parsing is pure (bytes in, verdict out); it uses `cryptography`'s parsers and opens no file.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

MAX_PEM_BYTES = 64 * 1024


def certificate_problem(text: str) -> str | None:
    """Why `text` is not one or more PEM certificates, or None when it is."""
    if len(text.encode()) > MAX_PEM_BYTES:
        return f"must be at most {MAX_PEM_BYTES} bytes"
    if "-----BEGIN CERTIFICATE-----" not in text:
        return "must be a PEM certificate (-----BEGIN CERTIFICATE-----)"
    try:
        x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        return "is not a valid PEM certificate"
    return None


def private_key_problem(text: str) -> str | None:
    """Why `text` is not an unencrypted PEM private key, or None when it is.

    The parser's own error text is never shown: it could quote the key.
    """
    if len(text.encode()) > MAX_PEM_BYTES:
        return f"must be at most {MAX_PEM_BYTES} bytes"
    if "PRIVATE KEY-----" not in text:
        return "must be a PEM private key (-----BEGIN PRIVATE KEY-----)"
    try:
        serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        return "must not be encrypted with a passphrase"
    except (ValueError, Exception):
        return "is not a valid PEM private key"
    return None
