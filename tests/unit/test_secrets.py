"""The key ring: AES-256-GCM, key id in every ciphertext, bound to its record."""

from __future__ import annotations

import base64
import os

import pytest

from connhub.secrets import Binding, KeyRing, KeyRingError, SecretUnreadable, key_id_of, new_key_entry

BINDING = Binding("acme", "0192-conn", "password")


def test_seal_then_open() -> None:
    ring = KeyRing.parse(new_key_entry("k1"))
    sealed = ring.seal("s3cret", BINDING)
    assert b"s3cret" not in sealed
    assert key_id_of(sealed) == "k1"
    assert ring.open(sealed, BINDING) == "s3cret"


def test_every_seal_uses_a_fresh_nonce() -> None:
    ring = KeyRing.parse(new_key_entry("k1"))
    assert ring.seal("same", BINDING) != ring.seal("same", BINDING)


@pytest.mark.parametrize(
    "other",
    [
        Binding("other", "0192-conn", "password"),
        Binding("acme", "0193-conn", "password"),
        Binding("acme", "0192-conn", "ssl.key"),
    ],
)
def test_a_ciphertext_moved_to_another_record_or_field_does_not_open(other: Binding) -> None:
    ring = KeyRing.parse(new_key_entry("k1"))
    with pytest.raises(SecretUnreadable):
        ring.open(ring.seal("s3cret", BINDING), other)


def test_tampering_is_detected() -> None:
    ring = KeyRing.parse(new_key_entry("k1"))
    sealed = bytearray(ring.seal("s3cret", BINDING))
    sealed[-1] ^= 1
    with pytest.raises(SecretUnreadable):
        ring.open(bytes(sealed), BINDING)


def test_older_keys_still_open_and_the_first_key_seals() -> None:
    entry_old = "old:" + base64.b64encode(os.urandom(32)).decode()
    ring_old = KeyRing.parse(entry_old)
    ring_both = KeyRing.parse(new_key_entry("new") + "," + entry_old)
    sealed = ring_old.seal("s3cret", BINDING)
    assert ring_both.open(sealed, BINDING) == "s3cret"
    assert ring_both.needs_rotation(sealed)
    assert key_id_of(ring_both.seal("s3cret", BINDING)) == "new"


def test_a_secret_under_an_unknown_key_names_the_key_not_the_secret() -> None:
    sealed = KeyRing.parse(new_key_entry("gone")).seal("s3cret", BINDING)
    with pytest.raises(SecretUnreadable) as caught:
        KeyRing.parse(new_key_entry("new")).open(sealed, BINDING)
    assert caught.value.key_id == "gone" and "s3cret" not in str(caught.value)


@pytest.mark.parametrize("text", ["", "nokey", "k1:not-base64!", "k1:" + base64.b64encode(b"short").decode()])
def test_malformed_key_configuration_is_refused_without_quoting_keys(text: str) -> None:
    with pytest.raises(KeyRingError) as caught:
        KeyRing.parse(text)
    assert "not-base64" not in str(caught.value)
