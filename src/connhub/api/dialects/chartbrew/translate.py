"""The Chartbrew dialect's translations: pure functions of dicts and domain values.

Same store and rules as the Reporter dialect; only two translations differ. A Chartbrew body is
turned into canonical fields (`canonical_fields`), and a connection is rendered in Chartbrew's
shape (`render`): integer `id`, `port` as a string, `password: null` with `hasPassword`, the
connection string masked, never a secret. Validation errors name Chartbrew's fields
(`in_chartbrew_terms`). No HTTP, no service, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from connhub.api.dialects.formats import rfc3339
from connhub.domain.connection import Connection, SslMode, stored_fields, validate_spec
from connhub.domain.engines import Engine
from connhub.domain.errors import TestFailed, ValidationFailed
from connhub.domain.reports import Table, TestReport
from connhub.domain.ssh import SshSummary

# Chartbrew's database types and ours. Its other sources (api, firestore, realtimedb,
# googleAnalytics, customerio, clickhouse...) are not databases Connhub keeps.
ENGINE_OF_TYPE = {engine.facts.chartbrew_name: engine for engine in Engine}
SUPPORTED_TYPES = ", ".join(ENGINE_OF_TYPE)

# Chartbrew fields that map one to one onto canonical fields.
RENAMED = {
    "name": "configName",
    "host": "host",
    "dbName": "databaseName",
    "username": "userName",
    "password": "password",
    "subType": "subType",
    "connectionString": "connectionString",
}
PEM_FIELDS = {"sslCa": "ca", "sslCert": "cert", "sslKey": "key"}
# Chartbrew's flat SSH tunnel fields -> the canonical `ssh` block's; its jump host's two apart.
# `sshHostKey` is Connhub's (Chartbrew has no host key check): the trusted key, to read or pin.
SSH_RENAMED = {
    "sshHost": "host",
    "sshPort": "port",
    "sshUsername": "userName",
    "sshPassword": "password",
    "sshPrivateKey": "privateKey",
    "sshPassphrase": "passphrase",
    "sshHostKey": "hostKey",
}
SSH_JUMP = {"sshJumpHost": "host", "sshJumpPort": "port"}
SSH_KEY_FILE = "sshPrivateKey"  # also a file part of /files and /test/files
TRANSLATED = frozenset(
    {"type", "port", "srv", "options", "ssl", "sslMode", *PEM_FIELDS, "useSsh", *SSH_RENAMED, *SSH_JUMP}
)
# Sent by Chartbrew clients (the seed's body, or our own responses echoed back on PUT) but
# meaningless here: accepted and ignored. `team_id` comes from the path; `schema` is read-only;
# `optionsArray` is the MongoDB form's own rows ({id, key, value}), which it also sends as `options`.
IGNORED = frozenset(
    {
        "team_id",
        "optionsArray",
        "authentication",
        "firebaseServiceAccount",
        "schema",
        "id",
        "project_ids",
        "oauth_id",
        "active",
        "hasPassword",
        "hasSslCa",
        "hasSslCert",
        "hasSslKey",
        "hasSshPassword",
        "hasSshPrivateKey",
        "hasSshPassphrase",
        "createdAt",
        "updatedAt",
        "health",
    }
)
KNOWN = frozenset({*RENAMED, *TRANSLATED, *IGNORED})
# Canonical field names (as the domain reports them) -> Chartbrew's.
CHARTBREW_NAMES = {
    "configName": "name",
    "databaseName": "dbName",
    "userName": "username",
    "ssl.mode": "sslMode",
    "ssl.ca": "sslCa",
    "ssl.cert": "sslCert",
    "ssl.key": "sslKey",
    **{f"ssh.{ours}": theirs for theirs, ours in SSH_RENAMED.items()},
    **{f"ssh.jumpHost.{ours}": theirs for theirs, ours in SSH_JUMP.items()},
}
# Values of a stored connection that a PUT may echo back unchanged.
ECHOABLE = ("configName", "type", "host", "port", "databaseName", "userName", "subType")

MAX_FILE_BYTES = 1024 * 1024  # each uploaded PEM file
# The parts of a test-with-files body (slices/connection.js testRequestWithFiles).
CONNECTION_PART = "connection"
TEST_FILE_PARTS = (CONNECTION_PART, *PEM_FIELDS, SSH_KEY_FILE)
# What a browser sends for `formData.append(name, null)`: a slot the user left empty (the form
# appends every slot of {...sslCerts, sshPrivateKey}).
UNPICKED_FILE = b"null"
UNSAVED_NAME = "unsaved connection"  # the domain wants a name; a test of an unsaved body has none


@contextmanager
def in_chartbrew_terms() -> Iterator[None]:
    """Validation errors raised inside name Chartbrew's fields, not the canonical ones."""
    try:
        yield
    except ValidationFailed as error:
        raise error.renamed(CHARTBREW_NAMES) from None


# -- Chartbrew body -> canonical fields ---------------------------------------------------------


def canonical_fields(body: Mapping[str, Any], current: Connection | None = None) -> dict[str, Any]:
    """The canonical fields of a Chartbrew body: a whole connection, or with `current` a patch.

    An empty string counts as absent (Chartbrew's forms send them for fields they do not use).
    Raises ValidationFailed in Chartbrew's field names.
    """
    problems = {name: "unknown field" for name in sorted(set(body) - KNOWN)}
    given = {name: None if value == "" else value for name, value in body.items() if name in KNOWN}
    fields = {ours: given[theirs] for theirs, ours in RENAMED.items() if theirs in given}
    if given.get("type") is not None:
        fields["type"] = _engine(given["type"], problems)
    if "port" in given:
        fields["port"] = _port(given["port"], problems)
    if current is None and given.get("srv") is True and fields.get("port") is None:
        fields["port"] = Engine.MONGODB.facts.default_port  # SRV records name the ports; the domain still wants one
    if (options := _options(given, current, problems)) is not _UNCHANGED:
        fields["options"] = options
    if (ssl := _ssl(given, current, problems)) is not None:
        fields["ssl"] = ssl
    if (ssh := _tunnel(given, current, problems)) is not _UNCHANGED:
        fields["ssh"] = ssh
    if current is None and fields.get("type") is None and fields.get("connectionString") is None:
        problems.setdefault("type", f"required: one of {SUPPORTED_TYPES}")
    if problems and current is None:
        raise ValidationFailed({**_domain_problems(_whole(fields)), **problems})
    if problems:
        raise ValidationFailed(problems)
    return _whole(fields) if current is None else _patch(fields, current)


def _domain_problems(fields: dict[str, Any]) -> dict[str, str]:
    """What the domain says of the rest of a body, so one 400 names every bad field."""
    try:
        validate_spec(fields, ssh_credentials_required=False)  # the form uploads the key file next
    except ValidationFailed as error:
        return error.renamed(CHARTBREW_NAMES).fields
    return {}


def _whole(fields: dict[str, Any]) -> dict[str, Any]:
    """On create, `null` is the same as absent."""
    return {name: value for name, value in fields.items() if value is not None}


def _patch(fields: dict[str, Any], current: Connection) -> dict[str, Any]:
    """A PUT as a canonical patch: absent keeps, `null` clears, as Reporter's PATCH.

    Three Chartbrew habits are not changes: `password: null` (what every read answers), the
    masked connection string echoed back, and any other value echoed unchanged. Dropping the
    echoes matters: a changed host or port would otherwise drop the stored connection string.
    """
    stored = stored_fields(current)
    patch = dict(fields)
    if patch.get("password") is None:
        patch.pop("password", None)
    if "connectionString" in patch and patch["connectionString"] == current.masked_connection_string:
        patch.pop("connectionString")
    for name in ECHOABLE:
        if name in patch and patch[name] == stored.get(name):
            patch.pop(name)
    return patch


def _engine(value: Any, problems: dict[str, str]) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ENGINE_OF_TYPE:
        return ENGINE_OF_TYPE[value.strip().lower()].value
    problems["type"] = (
        f"must be one of: {SUPPORTED_TYPES} (Chartbrew's other sources, such as api or firestore, "
        "are not databases Connhub keeps)"
    )
    return None


def _port(value: Any, problems: dict[str, str], name: str = "port") -> Any:
    """Chartbrew sends ports as strings; digits become an integer, the domain checks the range."""
    if not isinstance(value, str):
        return value  # an integer, null, or a wrong type the domain names
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 5:
        return int(text)
    problems[name] = "must be a number from 1 to 65535 (an integer or a string of digits)"
    return None


class _Unchanged:
    """Marks a field the body leaves alone (distinct from `None`, which clears it)."""


_UNCHANGED = _Unchanged()


def _options(given: Mapping[str, Any], current: Connection | None, problems: dict[str, str]) -> Any:
    """`options` (an object or Chartbrew's list of single-key objects) with `srv` folded in.

    `srv` is kept among the options (the MongoDB probe reads it there). On PUT, options sent
    without `srv` keep the stored `srv`, and `srv` sent alone keeps the stored options.
    """
    srv = given.get("srv")
    if "options" not in given and srv is None:
        return _UNCHANGED
    if srv is not None and not isinstance(srv, bool):
        problems["srv"] = "must be true or false"
        return _UNCHANGED
    raw = given.get("options", current.options if current else None)
    options = _one_object(raw if raw is not None else {})
    if not isinstance(options, Mapping):
        problems["options"] = "must be an object or a list of single-key objects"
        return _UNCHANGED
    if srv is None and current is not None and "srv" not in options:
        srv = current.options.get("srv") == "true"
    merged = {key: value for key, value in options.items() if key != "srv" or srv is None}
    if srv:
        merged["srv"] = "true"
    return merged or None


def _one_object(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(entry, Mapping) for entry in value):
        return {key: item for entry in value for key, item in entry.items()}
    return value


def _ssl(given: Mapping[str, Any], current: Connection | None, problems: dict[str, str]) -> dict[str, Any] | None:
    """Canonical `ssl` from Chartbrew's `ssl` (bool), `sslMode` and PEM fields; None: unchanged.

    `ssl: false` is mode `disable` (Chartbrew then connects without TLS) and keeps any uploaded
    files; `ssl: true` without `sslMode` keeps a stored secure mode, else means `require`.
    """
    flag, mode = given.get("ssl"), given.get("sslMode")
    pems = {ours: given[theirs] for theirs, ours in PEM_FIELDS.items() if theirs in given}
    if flag is not None and not isinstance(flag, bool):
        problems["ssl"] = "must be true or false"
        return None
    if flag is None and mode is None and not pems:
        return None
    if flag is False:
        if not pems and current is not None and not _ssl_on(current):
            return None  # already off: an echo of what a read answered
        return {"mode": SslMode.DISABLE.value, **pems}
    if flag is True and mode == SslMode.DISABLE.value:
        return {"mode": SslMode.DISABLE.value, **pems}  # the form offers Disable with the switch on
    stored = current.ssl.mode.value if current is not None and current.ssl is not None else None
    if flag is True and stored == SslMode.DISABLE.value:
        stored = None
    return {"mode": mode or stored or SslMode.REQUIRE.value, **pems}


def _tunnel(given: Mapping[str, Any], current: Connection | None, problems: dict[str, str]) -> Any:
    """Canonical `ssh` from `useSsh` and the flat ssh fields; _UNCHANGED when the body leaves it.

    `useSsh: false` is no tunnel (a stored one is removed). `useSsh: true`, or ssh fields sent for
    a stored tunnel, give the block: whole on create, a patch on PUT (absent keeps). A secret sent
    null or "" keeps the stored one, as `password` does: reads never answer them, so an echoed
    read sends none. Ssh fields while `useSsh` is off are ignored, as Chartbrew ignores them.
    """
    use_ssh = given.get("useSsh")
    if use_ssh is not None and not isinstance(use_ssh, bool):
        problems["useSsh"] = "must be true or false"
        return _UNCHANGED
    stored = current.ssh if current is not None else None
    if use_ssh is False or (use_ssh is None and stored is None):
        return None if use_ssh is False and stored is not None else _UNCHANGED
    block = {ours: given[theirs] for theirs, ours in SSH_RENAMED.items() if given.get(theirs) is not None}
    if "port" in block:
        block["port"] = _port(block["port"], problems, "sshPort")
    if (jump := _jump_host(given, stored, problems)) is not _UNCHANGED:
        block["jumpHost"] = jump
    return block if block or stored is None else _UNCHANGED


def _jump_host(given: Mapping[str, Any], stored: SshSummary | None, problems: dict[str, str]) -> Any:
    """`sshJumpHost`/`sshJumpPort` as the canonical jumpHost (it uses the bastion's credentials).

    Sent empty, the jump host is removed: the form's cleared field (and a read's echo of none)."""
    if "sshJumpHost" not in given and "sshJumpPort" not in given:
        return _UNCHANGED
    host = given.get("sshJumpHost")
    if host is None:
        return None if stored is not None and stored.jump_host is not None else _UNCHANGED
    jump: dict[str, Any] = {"host": host}
    if given.get("sshJumpPort") is not None:
        jump["port"] = _port(given["sshJumpPort"], problems, "sshJumpPort")
    return jump


def _ssl_on(connection: Connection) -> bool:
    return connection.ssl is not None and connection.ssl.mode != SslMode.DISABLE


# -- connection -> Chartbrew's shape ------------------------------------------------------------


def render(connection: Connection, tables: list[Table] | None, health: str = "unknown") -> dict[str, Any]:
    """A connection in Chartbrew's shape; `tables`: its cached discovered tables, if any; `health`:
    its scheduled health state (up, down, unknown)."""
    return {**render_stored(connection), **live_fields(tables, health)}


def render_stored(connection: Connection) -> dict[str, Any]:
    """The part of Chartbrew's shape that only a stored change (a new version) changes; a list
    keeps it rendered per version (`api/rendered.py`) and adds `live_fields` to each."""
    ssl = connection.ssl
    return {
        "id": connection.number,
        "team_id": _team_id(connection.tenant),
        "name": connection.config_name,
        "type": connection.engine.facts.chartbrew_name,
        "subType": connection.sub_type,
        "host": connection.host,
        "port": str(connection.port),
        "dbName": connection.database_name,
        "username": connection.user_name,
        "password": None,
        "hasPassword": True,  # validate_spec requires a password: every stored connection holds one
        "connectionString": connection.masked_connection_string,
        "srv": connection.options.get("srv") == "true",
        # As Chartbrew stores them, a list of single-key objects: its MongoDB form rebuilds its
        # rows from `Object.keys(option)[0]`, and a save sends them back the same way.
        "options": [{key: value} for key, value in connection.options.items() if key != "srv"],
        "ssl": _ssl_on(connection),
        "sslMode": ssl.mode.value if ssl else None,
        "hasSslCa": bool(ssl and ssl.has_ca),
        "hasSslCert": bool(ssl and ssl.has_cert),
        "hasSslKey": bool(ssl and ssl.has_key),
        **_tunnel_answer(connection.ssh),
        "createdAt": rfc3339(connection.created_at),
        "updatedAt": rfc3339(connection.updated_at),
    }


def live_fields(tables: list[Table] | None, health: str) -> dict[str, Any]:
    """The fields that change without a stored change: the cached schema and the health state."""
    return {"schema": schema_json(tables), "health": health}


def _tunnel_answer(ssh: SshSummary | None) -> dict[str, Any]:
    """The flat ssh fields, as Chartbrew answers them: no secret, only whether one is held."""
    jump = ssh.jump_host if ssh is not None else None
    return {
        "useSsh": ssh is not None,
        "sshHost": ssh.host if ssh else None,
        "sshPort": str(ssh.port) if ssh else None,
        "sshUsername": ssh.user_name if ssh else None,
        "sshHostKey": ssh.host_key if ssh else None,
        "hasSshPassword": bool(ssh and ssh.has_password),
        "hasSshPrivateKey": bool(ssh and ssh.has_private_key),
        "hasSshPassphrase": bool(ssh and ssh.has_passphrase),
        "sshJumpHost": jump.host if jump else None,
        "sshJumpPort": str(jump.port) if jump else None,
    }


def _team_id(tenant: str) -> int | str:
    """Chartbrew's team ids are integers; a tenant that is one is answered as one."""
    return int(tenant) if tenant.isascii() and tenant.isdigit() and len(tenant) < 19 else tenant


def schema_json(tables: list[Table] | None) -> dict[str, Any] | None:
    """Chartbrew's schema: table names, and each table's columns in order with their type, as its
    visual SQL builder reads them (`Object.keys(description[table])`, `...[column].type`)."""
    if tables is None:
        return None
    return {
        "tables": [table.name for table in tables],
        "description": {
            table.name: {
                column.name: {"type": column.type, "allowNull": column.nullable, "primaryKey": column.primary_key}
                for column in table.columns
            }
            for table in tables
        },
    }


def test_answer(report: TestReport, tables: list[Table] | None = None) -> dict[str, Any]:
    """A test's answer: the report, `success`, and the tables discovered after a successful one. The
    report's field to fix is named as Chartbrew names it (sshPassword, dbName...). A failed one is a
    400 (FAILED_TEST_STATUS), so it also carries the error shape's `code` and `title` (the report's
    `message` is the error's)."""
    report_json = report.to_json()
    if report_json["error"] is not None and report_json["error"]["field"] in CHARTBREW_NAMES:
        report_json["error"] = {**report_json["error"], "field": CHARTBREW_NAMES[report_json["error"]["field"]]}
    answer = {"success": report.ok, **report_json, "schema": schema_json(tables)}
    return answer if report.ok else {"code": TestFailed.code, "title": TestFailed.title, **answer}


FAILED_TEST_STATUS = 400  # Chartbrew's; its web client colours a result by status < 400


def duplicate_name(body: Mapping[str, Any], source: Connection) -> str:
    problems = {name: "unknown field" for name in sorted(set(body) - {"name", "team_id"})}
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        problems["name"] = "must be a string of 3-100 characters"
    if problems:
        raise ValidationFailed(problems)
    return name or f"{source.config_name} (copy)"


# -- uploaded certificate files -----------------------------------------------------------------


def pem_texts(files: Mapping[str, bytes]) -> dict[str, str]:
    """Uploaded files (by Chartbrew name: sslCa, sslCert, sslKey) as canonical PEM texts (ca, cert, key).

    Slots left unpicked (the text `null`) are skipped. Only that each is a non-empty text file is
    checked here; whether it is the right kind of PEM is the domain's call.
    """
    texts: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name, content in picked_files(files).items():
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            problems[name] = "must be a PEM text file (a DER or other binary file is not accepted)"
            continue
        if not text.strip():
            problems[name] = "is empty"
        texts[PEM_FIELDS[name]] = text
    if problems:
        raise ValidationFailed(problems)
    return texts


def picked_files(parts: Mapping[str, bytes]) -> dict[str, bytes]:
    """The PEM parts the user picked: the web client appends every slot, an empty one as `null`."""
    return {name: content for name, content in parts.items() if name in PEM_FIELDS and content != UNPICKED_FILE}


def uploaded_files(parts: Mapping[str, bytes]) -> tuple[dict[str, str], str | None]:
    """The PEM texts (canonical ca, cert, key) and the SSH private key text of an upload to a
    stored connection. Slots sent as the text `null` were not picked and are skipped."""
    picked = {name: content for name, content in parts.items() if content != UNPICKED_FILE}
    key = picked.pop(SSH_KEY_FILE, None)
    problems: dict[str, str] = {}
    if not picked and key is None:
        problems["body"] = f"no files were uploaded: send {', '.join((*PEM_FIELDS, SSH_KEY_FILE))}"
    key_text = None
    if key is not None:
        try:
            key_text = key.decode("utf-8-sig")
        except UnicodeDecodeError:
            problems[SSH_KEY_FILE] = "must be a private key text file (OpenSSH or PEM)"
        if key_text is not None and not key_text.strip():
            problems[SSH_KEY_FILE] = "is empty"
    if problems:
        raise ValidationFailed(problems)
    return (pem_texts(picked) if picked else {}), key_text


def test_with_files_body(parts: Mapping[str, bytes], type: str) -> dict[str, Any]:
    """The Chartbrew body of a test-with-files: the `connection` part (JSON), the picked PEM files as
    `sslCa`/`sslCert`/`sslKey` text fields, and a picked SSH key file as `sshPrivateKey` (whether
    it is used is the ssh rule's call: `useSsh` in the connection decides)."""
    try:
        connection = json.loads(parts.get(CONNECTION_PART, b""))
    except ValueError:
        connection = None
    if not isinstance(connection, dict):
        raise ValidationFailed({CONNECTION_PART: "required: the connection as a JSON object"})
    files = {name: content for name, content in parts.items() if name != CONNECTION_PART}
    if files.get(SSH_KEY_FILE, UNPICKED_FILE) != UNPICKED_FILE:
        texts, key = uploaded_files(files)
    else:
        texts, key = pem_texts(files), None
    body = {**connection, **{theirs: texts[ours] for theirs, ours in PEM_FIELDS.items() if ours in texts}}
    if key is not None:
        body[SSH_KEY_FILE] = key
    return unsaved_test_body(body, type)


def unsaved_test_body(body: Mapping[str, Any], type: str) -> dict[str, Any]:
    """A test of an unsaved connection: the path names the type; the domain wants a name."""
    return {**body, "type": type, "name": body.get("name") or UNSAVED_NAME}
