"""Helpers the engine probes share: what every probe needs regardless of its driver.

Only logic that is the same for every engine that uses it lives here. What a driver does its own
way (the noise it adds to error texts, the TLS rules it can honour, its type names) stays in the
engine's module and is passed in where a helper needs it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget

# libpq's sslmode vocabulary (see SslMaterial): the modes that insist on TLS, and those of them
# that also check the server's certificate.
TLS_REQUIRED_MODES = frozenset({"require", "verify-ca", "verify-full"})
VERIFYING_MODES = frozenset({"verify-ca", "verify-full"})

# errno values that name a network failure, for drivers whose errors carry the OSError (or its
# "[Errno N]" text) of a failed connect.
ERRNO_CATEGORIES = {
    errno.ECONNREFUSED: ErrorCategory.PORT_CLOSED,
    errno.EHOSTUNREACH: ErrorCategory.HOST_UNREACHABLE,
    errno.ENETUNREACH: ErrorCategory.HOST_UNREACHABLE,
    errno.ETIMEDOUT: ErrorCategory.TIMEOUT,
}


# --- private files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivateFiles:
    directory: Path
    paths: dict[str, str]  # name -> path, only for the texts that were given


@contextmanager
def private_files(**contents: str | None) -> Iterator[PrivateFiles]:
    """Writes each given text (PEMs) to its own file in a fresh private directory (0700, files
    0600) and deletes everything on exit. Drivers that only take file paths (libpq,
    ssl.SSLContext.load_cert_chain) get the stored material this way, never via a shared path."""
    directory = Path(tempfile.mkdtemp(prefix="connhub-probe-"))  # mkdtemp makes it 0700
    try:
        paths: dict[str, str] = {}
        for name, text in contents.items():
            if text is None:
                continue
            path = directory / f"{name}.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            paths[name] = str(path)
        yield PrivateFiles(directory, paths)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- TLS -----------------------------------------------------------------------------------------


def server_name(host: str) -> str:
    """The name TLS presents (SNI) and checks for `host`: an IPv6 literal without its brackets."""
    return host.removeprefix("[").removesuffix("]")


def load_client_certificate(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Loads a client certificate and its key (PEM texts) into `context`. load_cert_chain reads
    files only: they exist, private, for the duration of this call. ssl.SSLError propagates, for
    each probe to report in its own words."""
    with private_files(cert=cert, key=key) as files:
        context.load_cert_chain(files.paths["cert"], files.paths["key"])


def system_ca_file() -> str:
    """The operating system's CA bundle as a file, for drivers that take a CA file and nothing
    else (pytds) or whose own default store cannot be trusted: psycopg-binary bundles an OpenSSL
    whose default path does not exist on the host, so libpq's `sslrootcert=system` is not used."""
    paths = ssl.get_default_verify_paths()
    candidates = [
        os.environ.get(paths.openssl_cafile_env),
        paths.cafile,
        paths.openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise ProbeFailure(ErrorCategory.TLS_FAILED, "No system CA certificates found to verify the server: provide ssl.ca")


def record_tls(ctx: ProbeContext, handshakes: Sequence[ssl.SSLObject | ssl.SSLSocket]) -> None:
    """Marks the session encrypted and notes the protocol version and cipher of the last of
    `handshakes` (the connection that carried the probe); nothing when there was none."""
    if not handshakes:
        return
    ctx.tls.enabled = True
    with suppress(ValueError, AttributeError):  # a closed object may no longer know
        ctx.tls.version = handshakes[-1].version()
        cipher = handshakes[-1].cipher()
        ctx.tls.cipher = cipher[0] if cipher else None
        # The binary form is there even when the certificate was not verified (sslmode=require).
        ctx.tls.certificate_expires_at = certificate_expiry(handshakes[-1].getpeercert(binary_form=True))


def certificate_expiry(der: bytes | None) -> datetime | None:
    """The notAfter of a DER certificate the server sent; None when none was or it does not parse."""
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


# --- time ----------------------------------------------------------------------------------------


def time_left(deadline: float, minimum: float) -> float:
    """Seconds to `deadline` (time.monotonic), never less than `minimum`: drivers and sockets
    refuse a negative timeout and take 0 as non-blocking; the budget still bounds the whole call."""
    return max(minimum, deadline - time.monotonic())


# --- errors --------------------------------------------------------------------------------------


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was raised from (or while handling), outermost first: drivers wrap
    the socket or TLS error that names the failure in errors of their own."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:  # `not in`: a cycle ends the walk
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def first_line(text: str, noise: re.Pattern[str], fallback: str) -> str:
    """The first line of a driver's error text without the `noise` that driver appends to it
    (timeout settings, connection ids); `fallback` (the error's type name) when nothing is left."""
    return noise.sub("", text.split("\n", 1)[0]) or fallback


def where(target: ProbeTarget, ctx: ProbeContext) -> str:
    """host:port as the user typed it, with the address actually dialled when it is another (or
    the SSH server it is reached through)."""
    if ctx.via is not None:
        return f"{target.host}:{target.port} (through {ctx.via})"
    address = "" if ctx.address == target.host else f" ({ctx.address})"
    return f"{target.host}:{target.port}{address}"


def timed_out(target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The TIMEOUT failure of a probe that ran out of the budget it was given."""
    return ProbeFailure(ErrorCategory.TIMEOUT, f"No answer from {where(target, ctx)} within {ctx.timeout_s:g} s")


# --- the tables ----------------------------------------------------------------------------------


def tables_from_columns(columns: Iterable[tuple[str, Column]]) -> list[Table]:
    """(table name, column) pairs, ordered by table then position, as tables in that order."""
    tables: dict[str, list[Column]] = {}
    for table, column in columns:
        tables.setdefault(table, []).append(column)
    return [Table(name=name, columns=tuple(cols)) for name, cols in tables.items()]


def tables_from_catalog_rows(rows: Iterable[Sequence[Any]]) -> list[Table]:
    """Catalog rows of (table, column, type, nullable, primary key), ordered by table then
    position, as tables (the layout of the PostgreSQL and MySQL catalog queries)."""
    return tables_from_columns(
        (_text(table), Column(_text(name), _text(type_), bool(nullable), bool(primary_key)))
        for table, name, type_, nullable, primary_key in rows
    )


def _text(value: object) -> str:
    # MySQL's information_schema columns come back as bytes on some server/charset combinations.
    return value.decode() if isinstance(value, bytes) else str(value)
