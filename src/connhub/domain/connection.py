"""A connection: its types and every rule a stored one obeys (SPEC.md section 3).

Both API dialects translate their bodies into one mapping of canonical field names (the Reporter
dialect's names: configName, type, host, port, databaseName, userName, password, schema, ssl,
metadata, connectionString, options, subType) and call `validate_spec`. Errors name the fields in
that vocabulary; a dialect renames them on the way out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from connhub.domain import connstring, pem
from connhub.domain.engines import ENGINE_NAMES, Engine
from connhub.domain.errors import ValidationFailed
from connhub.domain.fields import bounded_text, is_valid_host
from connhub.domain.ssh import SSH_SECRET_FIELDS, SshSettings, SshSummary, apply_ssh_patch, validate_ssh
from connhub.domain.text import CONTROL, has_nul


class SslMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


# Secret fields, by the name that also binds their ciphertext to its record.
SECRET_FIELDS = ("password", "ssl.ca", "ssl.cert", "ssl.key", "connectionString", *SSH_SECRET_FIELDS)

# Fields a stored connection must have; the others are optional and `null` clears them.
REQUIRED_FIELDS = ("configName", "type", "host", "port", "databaseName", "userName", "password")
# What a connection string can supply in place of the explicit fields.
URI_FIELDS = ("host", "port", "databaseName", "userName", "password")


@dataclass(frozen=True)
class SslSettings:
    mode: SslMode
    ca: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)

    @property
    def summary(self) -> SslSummary:
        return SslSummary(self.mode, self.ca is not None, self.cert is not None, self.key is not None)


@dataclass(frozen=True)
class SslSummary:
    """What may be shown of ssl settings: the mode and which PEMs are held, never the PEMs."""

    mode: SslMode
    has_ca: bool = False
    has_cert: bool = False
    has_key: bool = False


@dataclass(frozen=True)
class ConnectionSpec:
    """A validated connection as a user asked for it, secrets included (never logged: repr hides them)."""

    config_name: str
    engine: Engine
    host: str
    port: int
    database_name: str
    user_name: str
    password: str = field(repr=False)
    schema_name: str | None = None  # canonical field `schema`: the one discovery reads
    ssl: SslSettings | None = None
    metadata: dict[str, str] | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub_type: str | None = None
    connection_string: str | None = field(default=None, repr=False)
    ssh: SshSettings | None = None

    def secrets(self) -> dict[str, str]:
        """The secret fields that are set, by binding name."""
        values = {
            "password": self.password,
            "ssl.ca": self.ssl.ca if self.ssl else None,
            "ssl.cert": self.ssl.cert if self.ssl else None,
            "ssl.key": self.ssl.key if self.ssl else None,
            "connectionString": self.connection_string,
        }
        found = {name: value for name, value in values.items() if value is not None}
        return found | (self.ssh.secrets() if self.ssh else {})


@dataclass(frozen=True)
class Connection:
    """A stored connection as every read sees it: no secret, only whether one is held."""

    id: UUID
    number: int  # the integer id of the Chartbrew dialect
    tenant: str
    product_name: str | None
    config_name: str
    engine: Engine
    host: str
    port: int
    database_name: str
    user_name: str
    schema_name: str | None  # canonical field `schema`
    ssl: SslSummary | None
    metadata: dict[str, str] | None
    options: dict[str, str]
    sub_type: str | None
    masked_connection_string: str | None
    ssh: SshSummary | None
    created_at: datetime
    updated_at: datetime
    version: int

    @property
    def etag(self) -> str:
        return f'"{self.id.hex}.{self.version}"'

    @property
    def stamp(self) -> Stamp:
        return Stamp(self.number, self.version)


class Versioned(Protocol):
    """Anything that names one version of one connection by its id (a `Connection`, a list's rendered row)."""

    @property
    def id(self) -> UUID: ...
    @property
    def version(self) -> int: ...


class Stamp(NamedTuple):
    """Which connection, at which version: what a list reads first, so that a copy already
    rendered at that version (every change bumps it) is used instead of reading the row again."""

    number: int
    version: int


# ---------------------------------------------------------------------------------------------
# Validation

PRODUCT_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
_KNOWN = frozenset(
    (*REQUIRED_FIELDS, "schema", "ssl", "metadata", "connectionString", "options", "subType", "ssh")
)


def validate_spec(fields: Mapping[str, Any], *, ssh_credentials_required: bool = True) -> ConnectionSpec:
    """The spec `fields` describe, or ValidationFailed naming every bad field.

    `fields` uses canonical names; values are as decoded from JSON. A `connectionString` fills the
    fields it carries that were not given explicitly. `ssh_credentials_required=False` accepts a
    tunnel whose credential comes in a later request (see `domain.ssh`).
    """
    errors: dict[str, str] = {}
    unknown = sorted(set(fields) - _KNOWN)
    errors.update({name: "unknown field" for name in unknown})
    values = _with_connection_string(fields, errors)

    config_name = _config_name(values.get("configName"), errors)
    engine = _engine(values.get("type"), errors)
    host = _host(values.get("host"), errors)
    port = _port(values.get("port"), errors)
    database_name = bounded_text("databaseName", values.get("databaseName"), 128, errors, required=True)
    user_name = bounded_text("userName", values.get("userName"), 128, errors, required=True)
    password = bounded_text("password", values.get("password"), 1024, errors, required=True, secret=True)
    schema_name = bounded_text("schema", values.get("schema"), 128, errors, required=False)
    ssl = _ssl(values.get("ssl"), errors)
    metadata = _metadata(values.get("metadata"), errors)
    options = _options(values.get("options"), errors)
    sub_type = bounded_text("subType", values.get("subType"), 64, errors, required=False)
    ssh = validate_ssh(
        values.get("ssh"), errors, credentials_required=ssh_credentials_required
    )
    if errors:
        raise ValidationFailed(errors)
    assert config_name and engine and host and port and database_name and user_name and password
    return ConnectionSpec(
        config_name=config_name,
        engine=engine,
        host=host,
        port=port,
        database_name=database_name,
        user_name=user_name,
        password=password,
        schema_name=schema_name,
        ssl=ssl,
        metadata=metadata,
        options=options,
        sub_type=sub_type,
        connection_string=values.get("connectionString"),
        ssh=ssh,
    )


def spec_fields(spec: ConnectionSpec) -> dict[str, Any]:
    """The canonical field mapping of `spec`: `validate_spec(spec_fields(s)) == s`. (`stored_fields`
    is the same mapping of a stored connection, which holds no secret.)"""
    fields: dict[str, Any] = {
        "configName": spec.config_name,
        "type": spec.engine.value,
        "host": spec.host,
        "port": spec.port,
        "databaseName": spec.database_name,
        "userName": spec.user_name,
        "password": spec.password,
        "schema": spec.schema_name,
        "metadata": spec.metadata,
        "options": spec.options or None,
        "subType": spec.sub_type,
        "connectionString": spec.connection_string,
        "ssl": None,
        "ssh": spec.ssh.fields() if spec.ssh else None,
    }
    if spec.ssl is not None:
        fields["ssl"] = {
            "mode": spec.ssl.mode.value,
            "ca": spec.ssl.ca,
            "cert": spec.ssl.cert,
            "key": spec.ssl.key,
        }
    return {name: value for name, value in fields.items() if value is not None}


def stored_fields(connection: Connection) -> dict[str, Any]:
    """The canonical field mapping of a stored connection, without a secret: `spec_fields` of its
    spec but for `password`, `connectionString`, the ssl PEMs and the tunnel's credentials (only the
    key ring opens those). `ssl` is `{mode}`; `ssh` the block with its host key, not its secrets."""
    fields: dict[str, Any] = {
        "configName": connection.config_name,
        "type": connection.engine.value,
        "host": connection.host,
        "port": connection.port,
        "databaseName": connection.database_name,
        "userName": connection.user_name,
        "schema": connection.schema_name,
        "metadata": connection.metadata,
        "options": connection.options or None,
        "subType": connection.sub_type,
        "ssl": {"mode": connection.ssl.mode.value} if connection.ssl is not None else None,
        "ssh": connection.ssh.fields({}) if connection.ssh is not None else None,
    }
    return {name: value for name, value in fields.items() if value is not None}


def apply_patch(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`current` updated by `patch`: a field absent is kept, `null` clears it.

    `ssl` merges one level deep by the same rule, so a patch can change the mode and keep the CA;
    `ssh` too (and its jumpHost one more level), see `apply_ssh_patch`.
    A connection string that is not repeated is dropped when a field it carried changes, so the
    stored string never disagrees with the stored fields.
    """
    merged = dict(current)
    for name, value in patch.items():
        if name == "ssl" and isinstance(value, Mapping) and isinstance(merged.get("ssl"), Mapping):
            merged["ssl"] = apply_patch(merged["ssl"], value)
        elif name == "ssh" and value is not None:
            merged["ssh"] = apply_ssh_patch(merged.get("ssh"), value)
        elif value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if "connectionString" not in patch and any(name in patch for name in URI_FIELDS):
        merged.pop("connectionString", None)
    for name in _carried_by(patch.get("connectionString")):
        if name not in patch:  # a new connection string replaces the stored fields it carries
            merged.pop(name, None)
    return merged


def _carried_by(uri: Any) -> list[str]:
    """The fields a connection string sets (none if it is not one: validation will say why)."""
    try:
        return list(connstring.parse(uri).fields()) if isinstance(uri, str) else []
    except ValueError:
        return []


MAX_IDEMPOTENCY_KEY = 200  # the store's key column


def validate_product_name(raw: str | None) -> str:
    """The X-Product-Name header, trimmed and lower-cased."""
    value = (raw or "").strip()
    if not PRODUCT_NAME.match(value):
        raise ValidationFailed(
            {"X-Product-Name": "required: 1-100 characters of letters, digits, '_' or '-'"}
        )
    return value.lower()


def validate_idempotency_key(raw: str | None) -> str | None:
    """The X-Idempotency header, when sent: at most 200 characters."""
    if raw is not None and len(raw) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed({"X-Idempotency": f"must be at most {MAX_IDEMPOTENCY_KEY} characters"})
    return raw or None


def _with_connection_string(fields: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    values = dict(fields)
    uri = values.get("connectionString")
    if uri is None:
        return values
    if not isinstance(uri, str) or not uri.strip():
        errors["connectionString"] = "must be a non-empty string"
        values.pop("connectionString")
        return values
    try:
        parsed = connstring.parse(uri)
    except ValueError as problem:
        errors["connectionString"] = str(problem)
        values.pop("connectionString")
        return values
    if values.get("type") is not None and _engine(values["type"], {}) not in (None, parsed.engine):
        # An explicit type that disagrees would send the URI's host to the wrong engine's driver.
        errors["connectionString"] = "its scheme does not match the given type"
    for name, value in parsed.fields().items():
        values.setdefault(name, value)
    if parsed.options:
        # The URI's options and the explicit ones merge (explicit ones win).
        values["options"] = {**parsed.options, **_options(values.get("options"), errors)}
    return values


def _config_name(value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        errors["configName"] = "required: a string of 3-100 characters"
        return None
    name = value.strip()
    if not 3 <= len(name) <= 100:
        errors["configName"] = "must be 3-100 characters after trimming"
    elif CONTROL.search(name):
        errors["configName"] = "must not contain control characters"
    elif any(unicodedata.category(char) == "Cf" for char in name):
        # Zero-width spaces and joiners, bidirectional controls, BOMs: a second name that looks
        # exactly like the first (or reads backwards) is a trap, not a name.
        errors["configName"] = "must not contain invisible characters (zero-width, bidirectional controls)"
    return name


def _engine(value: Any, errors: dict[str, str]) -> Engine | None:
    if isinstance(value, str) and value.strip().upper() in Engine.__members__:
        return Engine[value.strip().upper()]
    errors["type"] = "required: one of " + ENGINE_NAMES
    return None


def _host(value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str) or not value:
        errors["host"] = "required: a hostname or an IP address"
        return None
    if not is_valid_host(value):
        errors["host"] = (
            "must be a hostname (RFC 1123) or an IP address, without scheme, port, path or spaces"
        )
    return value


def _port(value: Any, errors: dict[str, str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors["port"] = "required: an integer from 1 to 65535"
        return None
    if not 1 <= value <= 65535:
        errors["port"] = "must be from 1 to 65535"
    return value


def _ssl(value: Any, errors: dict[str, str]) -> SslSettings | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors["ssl"] = "must be an object with a mode"
        return None
    for name in sorted(set(value) - {"mode", "ca", "cert", "key"}):
        errors[f"ssl.{name}"] = "unknown field"
    mode = value.get("mode")
    if not isinstance(mode, str) or mode not in SslMode._value2member_map_:
        errors["ssl.mode"] = "required: one of " + ", ".join(SslMode)
    ca, cert, key = (value.get(name) for name in ("ca", "cert", "key"))
    _pem("ssl.ca", ca, pem.certificate_problem, errors)
    _pem("ssl.cert", cert, pem.certificate_problem, errors)
    _pem("ssl.key", key, pem.private_key_problem, errors)
    if (cert is None) != (key is None):
        errors["ssl.cert" if cert is None else "ssl.key"] = "ssl.cert and ssl.key go together"
    if any(name.startswith("ssl") for name in errors) or not isinstance(mode, str):
        return None
    return SslSettings(SslMode(mode), ca, cert, key)


def _pem(name: str, value: Any, problem_of: Any, errors: dict[str, str]) -> None:
    if value is None:
        return
    problem = problem_of(value) if isinstance(value, str) else "must be a PEM string"
    if problem:
        errors[name] = problem


def _metadata(value: Any, errors: dict[str, str]) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors["metadata"] = "must be an object of string values"
        return None
    if len(value) > 50:
        errors["metadata"] = "must have at most 50 keys"
        return None
    for key, item in value.items():
        if not 1 <= len(key) <= 100:
            errors["metadata"] = "keys must be 1-100 characters"
        elif CONTROL.search(key):
            errors["metadata"] = "keys must not contain control characters"
        elif isinstance(item, str) and has_nul(item):
            errors[f"metadata.{key}"] = "must not contain a NUL character"
        elif not isinstance(item, str):
            errors[f"metadata.{key}"] = "must be a string (no object, array, number or null)"
        elif len(item) > 2000:
            errors[f"metadata.{key}"] = "must be at most 2000 characters"
    return dict(value)


def _options(value: Any, errors: dict[str, str]) -> dict[str, str]:
    """Driver options: an object of short scalars; values become strings.

    (Chartbrew's list of single-key objects is its dialect's form: its translator makes it one object.)
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors["options"] = "must be an object"
        return {}
    options: dict[str, str] = {}
    for key, item in list(value.items())[:50]:
        if not isinstance(item, str | int | float | bool) or len(str(key)) > 100 or len(str(item)) > 2000:
            errors["options"] = "each option must be a short scalar value"
            return {}
        if CONTROL.search(str(key)) or has_nul(str(item)):
            errors["options"] = "option names must not contain control characters, nor values a NUL"
            return {}
        options[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
    if any(connstring.is_secret_key(key) for key in options):
        # Options are stored and answered in clear; a secret among them would be shown to every reader.
        errors["options"] = connstring.SECRET_OPTION_HINT
        return {}
    if len(value) > 50:
        errors["options"] = "at most 50 options"
    return options


def normalized_text(value: str) -> str:
    """How names are compared for uniqueness: trimmed, case-folded, NFC."""
    return unicodedata.normalize("NFC", value.strip()).casefold()
