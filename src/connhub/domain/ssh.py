"""SSH tunnel settings: how a connection reaches a database behind a bastion (issue 16).

One `SshSettings` type serves the bastion and its optional jump host. In the canonical field
vocabulary the block is `ssh: {host, port, userName, password?, privateKey?, passphrase?,
hostKey?, jumpHost?: {host, port, userName?, password?, privateKey?, passphrase?, hostKey?}}`;
errors name `ssh.<field>` and `ssh.jumpHost.<field>`.

Decisions:
- Credentials: a password, a private key, or both. Both is allowed because real bastions ask for
  both (OpenSSH `AuthenticationMethods publickey,password`); the client offers the key first, then
  the password. Neither is refused, unless the caller says the credentials come later
  (`credentials_required=False`): Chartbrew's form creates the connection first and uploads the
  key file in a second request, with the key's passphrase in the first; a stored tunnel is
  re-validated the same way. A test of a tunnel without a credential fails with SSH_AUTH_FAILED.
  A jump host that names no credential of its own uses the bastion's (and its user name when it
  names none).
- `hostKey` is a known_hosts line (`[host]:port ssh-ed25519 AAAA...`), a public key line
  (`ssh-ed25519 AAAA...`), or a `SHA256:` fingerprint. A key is kept as `type base64` (the host
  names and comment are dropped: the key is bound to this connection, not to a name); a
  fingerprint as given. When it is absent, the first successful test records the key the server
  showed (trust on first use), in the same field.
- Key parsing uses asyncssh (the library that will use the key); its error texts are never shown,
  because they could quote the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import asyncssh

from connhub.domain.fields import bounded_text, is_valid_host

MAX_KEY_BYTES = 64 * 1024
DEFAULT_PORT = 22

# Secret fields of the block, by the name that also binds their ciphertext (prefix "ssh." or
# "ssh.jumpHost.").
SECRET_NAMES = ("password", "privateKey", "passphrase")
SSH_SECRET_FIELDS = tuple(
    f"{prefix}{name}" for prefix in ("ssh.", "ssh.jumpHost.") for name in SECRET_NAMES
)
_HOP_FIELDS = frozenset({"host", "port", "userName", "password", "privateKey", "passphrase", "hostKey"})
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


@dataclass(frozen=True)
class SshSettings:
    """One SSH hop (the bastion, or its jump host), secrets included: repr hides them.

    `user_name` is None only on a jump host that uses the bastion's; see `jump_hop`.
    """

    host: str
    port: int = DEFAULT_PORT
    user_name: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    host_key: str | None = None
    jump_host: SshSettings | None = None

    @property
    def has_credentials(self) -> bool:
        return self.password is not None or self.private_key is not None

    def jump_hop(self) -> SshSettings | None:
        """The jump host as it is connected to: user name and credentials the bastion's unless its own."""
        jump = self.jump_host
        if jump is None:
            return None
        if not jump.has_credentials:
            jump = replace(jump, password=self.password, private_key=self.private_key, passphrase=self.passphrase)
        return replace(jump, user_name=jump.user_name or self.user_name)

    def secrets(self, prefix: str = "ssh.") -> dict[str, str]:
        """The secret fields that are set, by binding name."""
        values = {
            f"{prefix}password": self.password,
            f"{prefix}privateKey": self.private_key,
            f"{prefix}passphrase": self.passphrase,
        }
        found = {name: value for name, value in values.items() if value is not None}
        if self.jump_host is not None:
            found.update(self.jump_host.secrets(f"{prefix}jumpHost."))
        return found

    def fields(self) -> dict[str, Any]:
        """The canonical block: `validate_ssh(s.fields()) == s`."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "userName": self.user_name,
            "password": self.password,
            "privateKey": self.private_key,
            "passphrase": self.passphrase,
            "hostKey": self.host_key,
            "jumpHost": self.jump_host.fields() if self.jump_host else None,
        }
        return {name: value for name, value in values.items() if value is not None}

    @property
    def summary(self) -> SshSummary:
        return SshSummary(
            host=self.host,
            port=self.port,
            user_name=self.user_name,
            host_key=self.host_key,
            has_password=self.password is not None,
            has_private_key=self.private_key is not None,
            has_passphrase=self.passphrase is not None,
            jump_host=self.jump_host.summary if self.jump_host else None,
        )


@dataclass(frozen=True)
class SshSummary:
    """What may be shown and stored in the clear of ssh settings: never a secret, only whether one is held."""

    host: str
    port: int
    user_name: str | None
    host_key: str | None = None
    has_password: bool = False
    has_private_key: bool = False
    has_passphrase: bool = False
    jump_host: SshSummary | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored (and Reporter-shown) form."""
        shown: dict[str, Any] = {"host": self.host, "port": self.port, "userName": self.user_name}
        if self.host_key is not None:
            shown["hostKey"] = self.host_key
        shown |= {"hasPassword": self.has_password, "hasPrivateKey": self.has_private_key}
        shown["hasPassphrase"] = self.has_passphrase
        if self.jump_host is not None:
            shown["jumpHost"] = self.jump_host.to_json()
        return shown

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SshSummary:
        jump = value.get("jumpHost")
        return cls(
            host=value["host"],
            port=value["port"],
            user_name=value.get("userName"),
            host_key=value.get("hostKey"),
            has_password=bool(value.get("hasPassword")),
            has_private_key=bool(value.get("hasPrivateKey")),
            has_passphrase=bool(value.get("hasPassphrase")),
            jump_host=cls.from_json(jump) if jump else None,
        )

    def fields(self, secrets: Mapping[str, str], prefix: str = "ssh.") -> dict[str, Any]:
        """The canonical block rebuilt from this summary and the opened `secrets` (binding names)."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "userName": self.user_name,
            "hostKey": self.host_key,
            **{name: secrets.get(prefix + name) for name in SECRET_NAMES},
            "jumpHost": self.jump_host.fields(secrets, prefix + "jumpHost.") if self.jump_host else None,
        }
        return {name: value for name, value in values.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Validation


def validate_ssh(value: Any, errors: dict[str, str], *, credentials_required: bool = True) -> SshSettings | None:
    """The settings the `ssh` block describes; each problem goes into `errors` as `ssh.<field>`."""
    if value is None:
        return None
    return _hop(value, "ssh", errors, jump=False, credentials_required=credentials_required)


def _hop(
    value: Any, name: str, errors: dict[str, str], *, jump: bool, credentials_required: bool
) -> SshSettings | None:
    if not isinstance(value, Mapping):
        errors[name] = "must be an object with host and userName"
        return None
    allowed = _HOP_FIELDS if jump else _HOP_FIELDS | {"jumpHost"}
    for unknown in sorted(set(value) - allowed):
        errors[f"{name}.{unknown}"] = "unknown field" if unknown != "jumpHost" else "only one jump host is supported"
    before = len(errors)
    host = value.get("host")
    if not isinstance(host, str) or not host:
        errors[f"{name}.host"] = "required: a hostname or an IP address"
    elif not is_valid_host(host):
        errors[f"{name}.host"] = "must be a hostname (RFC 1123) or an IP address, without scheme, port, path or spaces"
    port = value.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errors[f"{name}.port"] = "must be an integer from 1 to 65535"
    user_name = bounded_text(f"{name}.userName", value.get("userName"), 128, errors, required=not jump)
    password = bounded_text(f"{name}.password", value.get("password"), 1024, errors, required=False, secret=True)
    passphrase = bounded_text(f"{name}.passphrase", value.get("passphrase"), 1024, errors, required=False, secret=True)
    private_key = value.get("privateKey")
    _check_private_key(name, private_key, passphrase, errors)
    if credentials_required and not jump and password is None and private_key is None:
        for credential in ("password", "privateKey"):
            errors.setdefault(f"{name}.{credential}", "one of ssh.password and ssh.privateKey is required (or both)")
    if credentials_required and passphrase is not None and private_key is None:
        errors.setdefault(f"{name}.passphrase", "only goes with a privateKey")
    host_key = _host_key(f"{name}.hostKey", value.get("hostKey"), errors)
    jump_host = None
    if not jump and value.get("jumpHost") is not None:
        jump_host = _hop(
            value["jumpHost"], f"{name}.jumpHost", errors, jump=True,
            credentials_required=credentials_required,
        )  # fmt: skip
    if len(errors) > before or not isinstance(host, str):
        return None
    return SshSettings(host, port, user_name, password, private_key, passphrase, host_key, jump_host)


def _check_private_key(name: str, key: Any, passphrase: str | None, errors: dict[str, str]) -> None:
    """A key must parse (OpenSSH or PEM); an encrypted one must be opened by the passphrase given."""
    if key is None:
        return
    if not isinstance(key, str) or not key.strip():
        errors[f"{name}.privateKey"] = "must be a private key text (OpenSSH or PEM)"
        return
    if len(key.encode()) > MAX_KEY_BYTES:
        errors[f"{name}.privateKey"] = f"must be at most {MAX_KEY_BYTES} bytes"
        return
    encrypted = False
    try:
        asyncssh.import_private_key(key)
    except asyncssh.KeyImportError as problem:
        # The only message relied on: asyncssh's own wording for "this key needs a passphrase".
        encrypted = "passphrase" in str(problem).lower()
        if not encrypted:
            errors[f"{name}.privateKey"] = "is not a private key asyncssh can read (OpenSSH or PEM)"
            return
    except Exception:  # a malformed key can fail deep in a parser; never show its text
        errors[f"{name}.privateKey"] = "is not a private key asyncssh can read (OpenSSH or PEM)"
        return
    if not encrypted:
        if passphrase is not None:
            errors[f"{name}.passphrase"] = "the private key is not encrypted: leave the passphrase out"
        return
    if passphrase is None:
        errors[f"{name}.passphrase"] = "required: the private key is encrypted"
    elif not _opens(key, passphrase):
        errors[f"{name}.passphrase"] = "does not open the private key"


_OPENED: dict[bytes, None] = {}  # digests of (key, passphrase) pairs that opened, newest last
_OPENED_MAX = 1024


def _opens(key: str, passphrase: str) -> bool:
    """Whether `passphrase` opens `key`. Opening runs the key's KDF (bcrypt for OpenSSH keys: a tenth
    of a second to seconds of CPU), and a stored connection is validated again at every test, so
    pairs that opened are remembered by a digest (never the texts) for the life of the process."""
    digest = hashlib.sha256(b"connhub ssh key\x00" + key.encode() + b"\x00" + passphrase.encode()).digest()
    if digest in _OPENED:
        return True
    try:
        asyncssh.import_private_key(key, passphrase)
    except Exception:
        return False
    _OPENED[digest] = None
    while len(_OPENED) > _OPENED_MAX:
        del _OPENED[next(iter(_OPENED))]
    return True


def _host_key(name: str, value: Any, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        errors[name] = "must be a known_hosts line, a public key line or a SHA256: fingerprint"
        return None
    try:
        return normalized_host_key(value)
    except ValueError as problem:
        errors[name] = str(problem)
        return None


def normalized_host_key(text: str) -> str:
    """`SHA256:<base64>` as given, or the public key of a known_hosts/public key line as `type base64`."""
    text = text.strip()
    if text.startswith("SHA256:"):
        if not _FINGERPRINT.match(text.rstrip("=")):
            raise ValueError("a SHA256 fingerprint is SHA256: and 43 base64 characters (as ssh-keygen -l shows)")
        return text.rstrip("=")
    tokens = text.split()
    if tokens and tokens[0].startswith("@"):
        raise ValueError("@cert-authority and @revoked lines are not supported: give the host's own key")
    for position in range(min(2, len(tokens) - 1)):  # `type key [comment]` or `hosts type key [comment]`
        candidate = f"{tokens[position]} {tokens[position + 1]}"
        try:
            base64.b64decode(tokens[position + 1], validate=True)
            key = asyncssh.import_public_key(candidate)
        except (asyncssh.KeyImportError, binascii.Error, ValueError):
            continue
        return key.export_public_key("openssh").decode().strip()
    raise ValueError("must be a known_hosts line, a public key line (ssh-ed25519 AAAA...) or a SHA256: fingerprint")


def fingerprint_of(host_key: str) -> str:
    """The SHA256 fingerprint a stored host key stands for."""
    if host_key.startswith("SHA256:"):
        return host_key
    return str(asyncssh.import_public_key(host_key).get_fingerprint("sha256"))


def apply_ssh_patch(current: Mapping[str, Any] | None, patch: Any) -> Any:
    """The ssh block after `patch` (absent keeps, null clears, one level deeper for jumpHost).

    A host key belongs to a host, so moving the host or port without naming a key forgets the
    stored one (the next test records the new one). A stored passphrase stays with a new key (the
    Chartbrew form sends it before the key file): validation says if it does not fit.
    """
    if not isinstance(patch, Mapping) or not isinstance(current, Mapping):
        return patch
    merged = dict(current)
    for name, value in patch.items():
        if name == "jumpHost":
            merged[name] = apply_ssh_patch(current.get("jumpHost"), value)
            if merged[name] is None:
                merged.pop(name)
        elif value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    moved = any(name in patch and patch[name] != current.get(name) for name in ("host", "port"))
    if moved and "hostKey" not in patch:
        merged.pop("hostKey", None)
    return merged


def trusting(ssh: SshSettings, bastion_key: str | None, jump_key: str | None) -> SshSettings:
    """`ssh` with the host keys a successful test saw recorded where none was trusted yet (trust
    on first use); a key already trusted is never replaced."""
    jump = ssh.jump_host
    if jump is not None and jump.host_key is None and jump_key is not None:
        jump = replace(jump, host_key=jump_key)
    host_key = ssh.host_key if ssh.host_key is not None else bastion_key
    return replace(ssh, host_key=host_key, jump_host=jump)
