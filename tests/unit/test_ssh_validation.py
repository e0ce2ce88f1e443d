"""The `ssh` block's rules: what a user typing bastion settings gets back, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from connhub.domain.connection import apply_patch, spec_fields, validate_spec
from connhub.domain.errors import ValidationFailed
from tests.conftest import seed_body
from tests.support.ssh_server import client_key, fingerprint, host_key, public_line

KEY = client_key()
ENCRYPTED = client_key(passphrase="open-sesame-42")
PEM = client_key("ecdsa-sha2-nistp256", fmt="pkcs8-pem")
HOST = host_key()


def ssh(**fields: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"host": "bastion.example.com", "userName": "ops", "password": "ssh-secret-pw"}
    for name, value in fields.items():
        if value is None:
            block.pop(name, None)
        else:
            block[name] = value
    return block


def problems(block: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(seed_body(ssh=block))
    return caught.value.fields


def test_a_password_tunnel_defaults_to_port_22_and_round_trips() -> None:
    spec = validate_spec(seed_body(ssh=ssh()))
    assert spec.ssh is not None and spec.ssh.port == 22 and spec.ssh.user_name == "ops"
    assert validate_spec(spec_fields(spec)) == spec
    assert spec.secrets()["ssh.password"] == "ssh-secret-pw"
    assert "ssh-secret-pw" not in repr(spec)


@pytest.mark.parametrize("key", [KEY, ENCRYPTED, PEM], ids=["openssh", "openssh-encrypted", "pkcs8-pem"])
def test_openssh_and_pem_keys_are_accepted(key: Any) -> None:
    spec = validate_spec(seed_body(ssh=ssh(password=None, privateKey=key.private_key, passphrase=key.passphrase)))
    assert spec.ssh is not None and spec.ssh.private_key == key.private_key
    assert key.private_key.splitlines()[1] not in repr(spec)


def test_both_credentials_are_allowed_for_bastions_that_ask_for_both() -> None:
    spec = validate_spec(seed_body(ssh=ssh(privateKey=KEY.private_key)))
    assert spec.ssh is not None and spec.ssh.password and spec.ssh.private_key


def test_neither_credential_names_both_fields() -> None:
    found = problems(ssh(password=None))
    assert set(found) == {"ssh.password", "ssh.privateKey"}


@pytest.mark.parametrize(
    ("block", "field", "reason"),
    [
        (ssh(privateKey="-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n"), "ssh.privateKey", "OpenSSH or PEM"),
        (ssh(password=None, privateKey=ENCRYPTED.private_key), "ssh.passphrase", "encrypted"),
        (ssh(password=None, privateKey=ENCRYPTED.private_key, passphrase="wrong"), "ssh.passphrase", "does not open"),
        (ssh(privateKey=KEY.private_key, passphrase="x"), "ssh.passphrase", "not encrypted"),
        (ssh(passphrase="x"), "ssh.passphrase", "privateKey"),
        (ssh(host="ssh://bastion"), "ssh.host", "hostname"),
        (ssh(host=None), "ssh.host", "required"),
        (ssh(port=0), "ssh.port", "65535"),
        (ssh(port="22"), "ssh.port", "integer"),
        (ssh(userName=None), "ssh.userName", "required"),
        (ssh(hostKey="SHA256:short"), "ssh.hostKey", "43"),
        (ssh(hostKey="not a key at all"), "ssh.hostKey", "known_hosts"),
        (ssh(hostKey="@cert-authority *.example.com " + public_line(HOST)), "ssh.hostKey", "cert-authority"),
        (ssh(proxyCommand="nc"), "ssh.proxyCommand", "unknown"),
        (ssh(jumpHost={"host": "jump.example.com", "jumpHost": {"host": "x"}}), "ssh.jumpHost.jumpHost", "one jump"),
        (ssh(jumpHost={"port": 22}), "ssh.jumpHost.host", "required"),
        ("bastion:22", "ssh", "object"),
    ],
)
def test_each_rule_names_its_field(block: Any, field: str, reason: str) -> None:
    found = problems(block)
    assert field in found, found
    assert reason in found[field]


def test_reasons_never_quote_a_secret() -> None:
    found = problems(ssh(password=None, privateKey=ENCRYPTED.private_key, passphrase="wrong-passphrase"))
    assert "wrong-passphrase" not in str(found)
    found = problems(ssh(privateKey=KEY.private_key[:200]))
    assert KEY.private_key.splitlines()[1][:30] not in str(found)


@pytest.mark.parametrize(
    "typed",
    [
        public_line(HOST),
        public_line(HOST) + " root@bastion",
        "[bastion.example.com]:2222 " + public_line(HOST),
        "bastion.example.com,10.0.0.5 " + public_line(HOST) + " comment",
    ],
)
def test_a_host_key_line_is_kept_as_its_public_key(typed: str) -> None:
    spec = validate_spec(seed_body(ssh=ssh(hostKey=typed)))
    assert spec.ssh is not None and spec.ssh.host_key == public_line(HOST)


def test_a_fingerprint_is_kept_as_given() -> None:
    spec = validate_spec(seed_body(ssh=ssh(hostKey=fingerprint(HOST))))
    assert spec.ssh is not None and spec.ssh.host_key == fingerprint(HOST)


def test_a_jump_host_without_credentials_uses_the_bastions() -> None:
    spec = validate_spec(seed_body(ssh=ssh(jumpHost={"host": "jump.example.com", "port": 2222})))
    assert spec.ssh is not None
    jump = spec.ssh.jump_hop()
    assert jump is not None
    assert (jump.host, jump.port, jump.user_name, jump.password) == ("jump.example.com", 2222, "ops", "ssh-secret-pw")
    assert "ssh.jumpHost.password" not in spec.secrets()  # inherited, not stored twice


def test_a_jump_host_with_its_own_key_keeps_it() -> None:
    jump_block = {"host": "jump.example.com", "userName": "hop", "privateKey": KEY.private_key}
    spec = validate_spec(seed_body(ssh=ssh(jumpHost=jump_block)))
    assert spec.ssh is not None
    jump = spec.ssh.jump_hop()
    assert jump is not None and (jump.user_name, jump.password, jump.private_key) == ("hop", None, KEY.private_key)
    assert spec.secrets()["ssh.jumpHost.privateKey"] == KEY.private_key


def test_a_patch_merges_into_the_ssh_block() -> None:
    current = seed_body(ssh=ssh(hostKey=public_line(HOST), privateKey=ENCRYPTED.private_key,
                                passphrase=ENCRYPTED.passphrase))  # fmt: skip
    kept = apply_patch(current, {"ssh": {"userName": "admin"}})
    assert kept["ssh"]["hostKey"] == public_line(HOST) and kept["ssh"]["password"] == "ssh-secret-pw"
    # A host key belongs to a host: moving the bastion forgets it (the next test records the new one).
    moved = apply_patch(current, {"ssh": {"host": "bastion2.example.com"}})
    assert "hostKey" not in moved["ssh"]
    # A stored passphrase stays with a new key; validation says when it does not fit.
    rekeyed = apply_patch(current, {"ssh": {"privateKey": KEY.private_key}})
    assert rekeyed["ssh"]["passphrase"] == ENCRYPTED.passphrase
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(rekeyed)
    assert "not encrypted" in caught.value.fields["ssh.passphrase"]
    assert "ssh" not in apply_patch(current, {"ssh": None})
    cleared = apply_patch(seed_body(ssh=ssh(jumpHost={"host": "j.example.com"})), {"ssh": {"jumpHost": None}})
    assert "jumpHost" not in cleared["ssh"]


def test_credentials_may_come_later_when_the_caller_says_so() -> None:
    # Chartbrew's form: the create carries the passphrase, the key file follows in another request.
    pending = seed_body(ssh=ssh(password=None, passphrase=ENCRYPTED.passphrase))
    with pytest.raises(ValidationFailed):
        validate_spec(pending)
    spec = validate_spec(pending, ssh_credentials_required=False)
    assert spec.ssh is not None and not spec.ssh.has_credentials
    completed = apply_patch(pending, {"ssh": {"privateKey": ENCRYPTED.private_key}})
    assert validate_spec(completed).ssh is not None  # the passphrase sent first opens the key
