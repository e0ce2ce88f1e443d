"""The key ring: every secret at rest is sealed here with AES-256-GCM, and nowhere else.

A sealed secret is `version(1) | len(key_id)(1) | key_id | nonce(12) | ciphertext+tag`. The
associated data binds it to (tenant, connection id, field name) and to its key id, so a
ciphertext copied into another record, another field or under another key id fails to open.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import secrets as random
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32


@dataclass(frozen=True)
class Binding:
    """What a secret belongs to; part of the AEAD associated data."""

    tenant: str
    connection_id: str
    field: str

    def associated_data(self, key_id: str) -> bytes:
        return "\x1f".join(("connhub", key_id, self.tenant, self.connection_id, self.field)).encode()


class SecretUnreadable(Exception):
    """A sealed secret could not be opened. The text names the key id, never the content."""

    def __init__(self, key_id: str, reason: str, *, key_loaded: bool) -> None:
        super().__init__(f"secret under key {key_id!r} cannot be opened: {reason}")
        self.key_id = key_id
        # False: no such key in the ring; True: the key is there but the ciphertext does not open
        # with it for this record (sealed for another record, or altered).
        self.key_loaded = key_loaded


class KeyRingError(ValueError):
    """The key configuration is malformed (the message never quotes key material)."""


class KeyRing:
    """Keys by id; the first one seals, all of them open."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError("at least one key is needed")
        # A repeated id would make two keys answer to one name: secrets sealed under one open with the other.
        repeated = sorted(key_id for key_id, count in Counter(key_id for key_id, _ in keys).items() if count > 1)
        if repeated:
            raise KeyRingError(f"key id {repeated[0]!r} appears more than once (each key needs its own id)")
        for key_id, key in keys:
            if not key_id or len(key_id.encode()) > 255 or ":" in key_id or "," in key_id:
                raise KeyRingError(f"invalid key id {key_id!r}")
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} must be {KEY_BYTES} bytes, base64-encoded")
        self.active_id = keys[0][0]
        self._active_key = keys[0][1]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """From `KEY_ID:BASE64_32_BYTES[,KEY_ID:BASE64...]` (the CONNHUB_ENCRYPTION_KEYS format)."""
        keys = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyRingError("each key must be KEY_ID:BASE64")
            try:
                keys.append((key_id.strip(), base64.b64decode(encoded.strip(), validate=True)))
            except (binascii.Error, ValueError):
                raise KeyRingError(f"key {key_id.strip()!r} is not valid base64") from None
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, plaintext: str, binding: Binding) -> bytes:
        key_id = self.active_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext.encode(), binding.associated_data(key_id))
        header = bytes([FORMAT_VERSION, len(key_id.encode())]) + key_id.encode()
        return header + nonce + sealed

    def open(self, blob: bytes, binding: Binding) -> str:
        key_id, nonce, sealed = _split(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretUnreadable(key_id, "unknown key id", key_loaded=False)
        try:
            return cipher.decrypt(nonce, sealed, binding.associated_data(key_id)).decode()
        except InvalidTag:
            raise SecretUnreadable(key_id, "authentication failed (wrong key or record)", key_loaded=True) from None

    def subkey(self, purpose: bytes) -> bytes:
        """A key for `purpose` derived from the active key (HKDF-SHA256)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(self._active_key)

    def needs_rotation(self, blob: bytes) -> bool:
        return key_id_of(blob) != self.active_id


def key_id_of(blob: bytes) -> str:
    return _split(blob)[0]


def _split(blob: bytes) -> tuple[str, bytes, bytes]:
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise SecretUnreadable("?", "unknown format", key_loaded=False)
    end = 2 + blob[1]
    key_id = blob[2:end].decode(errors="replace")
    return key_id, blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


def new_key_entry(key_id: str | None = None, taken: Collection[str] = ()) -> str:
    """A fresh `KEY_ID:BASE64` entry whose id is none of `taken` (the ids of the ring in force).

    The default id carries the time for easy rotation, with a suffix when that id is taken. An
    explicit `key_id` that is taken is refused: reusing an id is how secrets become unreadable.
    """
    if key_id is None:
        stamp = "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        key_id = next(candidate for candidate in _numbered(stamp) if candidate not in taken)
    elif key_id in taken:
        raise KeyRingError(f"key id {key_id!r} is already in the key ring in force; choose another")
    return f"{key_id}:{base64.b64encode(random.token_bytes(KEY_BYTES)).decode()}"


def _numbered(stem: str) -> Iterator[str]:
    yield stem
    yield from (f"{stem}-{number}" for number in itertools.count(2))


def development_key_ring(path: Path) -> KeyRing:
    """The key ring kept in `path` (mode 0600), generated on first use. For development only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(new_key_entry("dev1") + "\n")
    return KeyRing.parse(path.read_text().strip())


def request_digest(ring: KeyRing, data: bytes) -> str:
    """A keyed digest of a request body (which may hold a password) for idempotency checks.

    Keyed with a subkey of the active key, so the store holds nothing a password can be guessed
    from offline.
    """
    from cryptography.hazmat.primitives import hashes, hmac

    mac = hmac.HMAC(ring.subkey(b"connhub idempotency"), hashes.SHA256())
    mac.update(data)
    return mac.finalize().hex()
